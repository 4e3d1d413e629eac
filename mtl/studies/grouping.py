"""Section "Task grouping" (seed 000 App. B.2, Fig. 1; claim C11).

The 40 tasks of ``attributes40`` are split into 3 clusters by a random division, by k-means on
warm-up task gradients and by EXTRA's spectral clustering of the gradient cosine matrix
(:func:`mtl.grouping.cluster_tasks`); EXTRA-L (3 control points, 1 trainable) is trained with each
grouping as (E1, E2, E3) (:func:`mtl.grouping.assign_roles`). Unlike the paper we know the true
grouping (8 planted groups): each clustering's adjusted Rand index (ARI) against it is reported,
plus a spectral clustering with k = 8 as a check that the gradients carry the planted structure.
Baseline: uniform MTL (same seed and epochs), not single-task learning (40 STL
networks per seed would cost more than the whole section); Δm% in EXTRA's drop convention.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import claims, profiles
from . import _common as study
from ..grouping import assign_roles, cluster_tasks, task_gradients
from ..metrics import delta_m, mean_se, paired_difference
from . import _extra_curves as X


@dataclass(frozen=True)
class Params:
    """Top-level keys of ``book/sections/grouping.yaml``."""

    spec: dict  # the base run spec of every network
    seeds: list[int]
    warmup_epochs: int  # uniform-MTL epochs before the task gradients are taken
    other_weight: float  # stage-1 LS weight of the tasks outside an end point's cluster
    stage2: dict  # EXTRA stage-2 training
    ts: list[float]  # points of t evaluated
    k: int = 3  # clusters
    grad_batches: int = 4  # batches averaged into the gradients
    bn_batches: int = 4  # batches for BatchNorm recalibration


def setup(profile: str, out_dir: str = "") -> tuple[dict, Path]:
    """This section's parameters at ``profile`` (checked against :class:`Params`) and its output folder."""
    return profiles.setup("grouping", Params, profile, out_dir)


STRATEGIES = ("random", "kmeans", "spectral")
LABELS = {"random": "Random", "kmeans": "K-means", "spectral": "Spectral (EXTRA)"}

# seed 000 (EXTRA), App. B.2 and Fig. 1 (CelebA, 40 tasks, 3 clusters). The figure's bar heights did
# not survive in our copy of the paper; the text gives the ordering and the k-means cluster sizes.
PAPER_FIG1 = {
    "source": "seed 000, App. B.2, Fig. 1 (CelebA, 40 tasks into 3 clusters)",
    "rows": {"random": "uniform division; worse than spectral",
             "kmeans": "two of three clusters are single tasks; worst",
             "spectral": "best overall MTL performance"},
}


def planted_labels(data) -> np.ndarray:
    """[T] the planted group index of each task (the ground truth the paper did not have)."""
    return np.array([data.task(t).info["group"] for t in [x.name for x in data.tasks]])


def labels_of(groups: Sequence[Sequence[int]], n: int) -> np.ndarray:
    """[n] cluster label per task from a list of groups of task indices."""
    lab = np.full(n, -1)
    for k, g in enumerate(groups):
        lab[list(g)] = k
    return lab


def ari(groups: Sequence[Sequence[int]], truth: np.ndarray) -> float:
    """Adjusted Rand index of a grouping against the planted labels (1: identical, ≈0: chance)."""
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(truth, labels_of(groups, len(truth))))


def warmup_spec(spec: dict, seed: int, epochs: int) -> dict:
    """The uniform-MTL warm-up run whose task gradients are clustered (saves its network)."""
    return study.derive(spec, name=f"warmup-s{seed}", save_model=True, weighting="ew", weighting_kw={},
                        train={"seed": seed, "epochs": epochs})


def warmup_gradients(spec: dict, rec: dict, seed: int, batches: int, batch_size: int):
    """G [T, d]: per-task gradients of the recorded warm-up network ``rec`` (:func:`warmup_spec`)."""
    net = X.load_network(spec, rec)
    return task_gradients(net, X.bundle_of(spec), batches=batches, batch_size=batch_size, seed=seed)


def groupings(G, k: int, n_planted: int, seed: int) -> dict[str, list[list[int]]]:
    """Every strategy's k clusters, plus ``spectral-k<n_planted>`` (the sanity check)."""
    out = {m: cluster_tasks(G, k, m, seed=seed) for m in STRATEGIES}
    out[f"spectral-k{n_planted}"] = cluster_tasks(G, n_planted, "spectral", seed=seed)
    return out


def endpoint_weights(roles: Sequence[Sequence[int]], n: int, other: float) -> list[dict]:
    """LS weights of the two end points: 1 on E1's (resp. E2's) tasks, ``other`` on the rest. Seed 000
    §5.3 pretrains each end point on its cluster; keeping a small weight on the other tasks (our
    choice) trains every head, so the curve's interior is not built on untrained heads."""
    out = []
    for g in roles[:2]:
        w = np.full(n, float(other))
        w[list(g)] = 1.0
        out.append({"weights": w.tolist()})
    return out


def mean_acc(metrics: dict) -> float:
    return float(np.mean([m["acc"] for m in metrics.values()]))


def pick_t(rec: dict) -> int:
    """Index of the recorded t with the best mean validation accuracy (seed 000 App. A.1 chooses t on
    validation data for classification; the criterion, mean accuracy, is our choice)."""
    return int(np.argmax([mean_acc(m) for m in rec["metrics"]["val"]["metrics"]]))


def drop(metrics: dict, base: dict) -> float:
    """Δm% over the 40 accuracies against ``base``, EXTRA's drop convention (lower is better)."""
    keys = list(metrics)
    return delta_m({t: metrics[t]["acc"] for t in keys}, {t: base[t]["acc"] for t in keys},
                   {t: True for t in keys}, convention="drop")


def run_study(out_dir, cfg: dict, executor=None) -> dict:
    """Per seed: uniform MTL and the warm-up network (stage 1), warm-up gradients and groupings (in
    this process), every strategy's end points (stage 2) and its EXTRA-L curve (stage 3)."""
    spec, k, seeds = cfg["spec"], int(cfg.get("k", 3)), list(cfg["seeds"])
    data = X.bundle_of(spec)
    truth = planted_labels(data)
    n_planted = len(set(truth.tolist()))
    recs = study.run_groups({
        "uniform": study.train_jobs(out_dir, [study.derive(spec, name=f"uniform-s{s}", weighting="ew", weighting_kw={},
                                                           train={"seed": s}) for s in seeds]),
        "warmup": study.train_jobs(out_dir, [warmup_spec(spec, s, cfg["warmup_epochs"]) for s in seeds])}, executor)
    cells = []                                    # (seed, strategy, groups, roles or None)
    for s, warm in zip(seeds, recs["warmup"]):
        G = warmup_gradients(spec, warm, s, cfg.get("grad_batches", 4), spec["train"]["batch_size"])
        cells += [(s, m, g, assign_roles(g, G) if m in STRATEGIES else None)
                  for m, g in groupings(G, k, n_planted, s).items()]
    curved = [c for c in cells if c[3] is not None]
    ends = study.run_groups({(s, m): study.train_jobs(out_dir, X.endpoint_specs(
                                 study.derive(spec, weighting="ls"), s,
                                 endpoint_weights(roles, len(truth), cfg["other_weight"]), tag=f"-{m}"))
                             for s, m, _, roles in curved}, executor)
    curves = study.run_groups({(s, m): [X.curve_job(out_dir, spec, ends[s, m], f"{m}-s{s}", 3,
                                                    {**cfg["stage2"], "seed": s},
                                                    groups=roles, ts=cfg["ts"], bn_batches=cfg.get("bn_batches", 4),
                                                    save_curve=False)]
                               for s, m, _, roles in curved}, executor)
    rows = []
    for s, base in zip(seeds, (r["metrics"] for r in recs["uniform"])):
        for _, method, groups, roles in [c for c in cells if c[0] == s]:
            row = {"seed": s, "strategy": method, "sizes": sorted(map(len, groups), reverse=True),
                   "ari": ari(groups, truth), "groups": groups}
            if roles is not None:
                rec = curves[s, method][0]
                i = pick_t(rec)
                test = rec["metrics"]["test"]["metrics"][i]
                row.update(t=rec["metrics"]["t"][i], mean_acc=mean_acc(test), delta_m=drop(test, base),
                           roles=[len(g) for g in roles], run=rec["run_dir"])
            rows.append(row)
        rows.append({"seed": s, "strategy": "uniform", "mean_acc": mean_acc(base), "delta_m": 0.0})
    return {"rows": pd.DataFrame(rows), "seeds": seeds, "k": k, "n_planted": n_planted,
            "planted": [list(g) for g in data.info["groups"]]}


def seed_values(result: dict, strategy: str, col: str) -> np.ndarray:
    r = result["rows"]
    return r[r.strategy == strategy].sort_values("seed")[col].to_numpy(dtype=float)


def smallest(result: dict, strategy: str) -> np.ndarray:
    """Per seed: size of the smallest cluster."""
    r = result["rows"]
    return np.array([min(s) for s in r[r.strategy == strategy].sort_values("seed")["sizes"]], dtype=float)


def table(result: dict) -> pd.DataFrame:
    """One row per strategy: cluster sizes per seed, ARI, mean test accuracy and Δm% (drop) ± SE."""
    out = {}
    for m in [*STRATEGIES, f"spectral-k{result['n_planted']}", "uniform"]:
        r = result["rows"][result["rows"].strategy == m].sort_values("seed")
        row = {}
        if "sizes" in r and r["sizes"].notna().all():
            row["cluster sizes (per seed)"] = "; ".join("/".join(map(str, s)) for s in r["sizes"])
            row["ARI"], row["ARI SE"] = mean_se(r["ari"].to_numpy(float))
        if "mean_acc" in r and r["mean_acc"].notna().all():
            row["mean acc ↑"] = float(r["mean_acc"].mean())
            row["Δm% ↓ (drop vs uniform MTL)"], row["Δm SE"] = mean_se(r["delta_m"].to_numpy(float))
        out[LABELS.get(m, "Uniform MTL (baseline)" if m == "uniform"
                       else f"Spectral, k = {result['n_planted']} (check)")] = row
    return pd.DataFrame(out).T


def c11_grouping(result: dict, z: float = 2.0) -> dict:
    """C11 (seed 000 App. B.2): spectral grouping beats random and k-means; k-means gives unbalanced clusters.

    Part 1: Δm (drop) of spectral minus random and minus k-means, paired by seed: supports if both are
    below 0 by > ``z`` SE, contradicts if either is above by > ``z`` SE. Part 2: the smallest k-means
    cluster minus the smallest spectral cluster, paired: supports if below 0 by > ``z`` SE (or below at
    every seed when the difference does not vary), contradicts if above. ARIs are listed.
    """
    sp = seed_values(result, "spectral", "delta_m")
    sides = {m: paired_difference(sp, seed_values(result, m, "delta_m"), z) for m in ("random", "kmeans")}
    ss = [s for s, *_ in sides.values()]
    part1 = "supports" if all(s == "less" for s in ss) else ("contradicts" if "greater" in ss else "inconclusive")
    d = smallest(result, "kmeans") - smallest(result, "spectral")
    side, dm, dse = paired_difference(d, np.zeros_like(d), z)
    if dse == 0 and len(d) > 1:
        side = "less" if dm < 0 else ("greater" if dm > 0 else "undecided")
    part2 = {"less": "supports", "greater": "contradicts", "undecided": "inconclusive"}[side]
    aris = ", ".join(f"{LABELS.get(m, m)} {seed_values(result, m, 'ari').mean():.2f}"
                     for m in [*STRATEGIES, f"spectral-k{result['n_planted']}"])
    dms = ", ".join(f"{LABELS[m]} {seed_values(result, m, 'delta_m').mean():+.2f}" for m in STRATEGIES)
    return claims.verdict(
        "C11", claims.combine(part1, part2),
        paper="CelebA: spectral grouping gives the best MTL result; k-means the worst, with two singleton clusters",
        ours=(f"Δm% (drop vs uniform MTL, lower better): {dms}; smallest cluster k-means "
              f"{smallest(result, 'kmeans').mean():.1f} vs spectral {smallest(result, 'spectral').mean():.1f} tasks; "
              f"ARI vs planted groups: {aris}"),
        evidence=(f"part 1 ({part1}): spectral − random {sides['random'][1]:+.2f} ± {sides['random'][2]:.2f}, "
                  f"spectral − k-means {sides['kmeans'][1]:+.2f} ± {sides['kmeans'][2]:.2f} (SE over "
                  f"{len(result['seeds'])} seeds, decided at {z:g} SE); part 2 ({part2}): smallest-cluster size "
                  f"k-means − spectral {dm:+.2f} ± {dse:.2f}"),
        setting="attributes40, 40 tasks into 3 clusters, EXTRA-L")
