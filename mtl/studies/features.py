"""Section "Feature similarity" (seed 004 §V-F(1), Fig. 6; Tables II–III URL rows; claim C7).

For each method (uniform, grid search, CAGrad, Nash-MTL, AvgNorm, URL) and seed: the run's Δm
against single-task learning and, per task, the distance between its shared feature and the
single-task network's feature of the same seed (:func:`mtl.diagnostics.feature_distance`, URL's
adapter protocol fitted post hoc on the train split, measured on the test split).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from .. import claims, diagnostics, profiles, sweep
from ..metrics import paired_difference
from . import _common as study
from . import _paper as reference
from ..experiment import load_data, load_model
from ..paths import portable
from ..runs import run_or_load
from .imbalance import vanilla_imbalance


@dataclass(frozen=True)
class Params:
    """Top-level keys of ``book/sections/features.yaml``."""

    spec: dict  # the base run spec (mtl.experiment.train_run)
    seeds: list[int]
    grid: dict  # task -> candidate loss weights, searched at the first seed
    methods: dict  # label -> {weighting, weighting_kw}: the MTO methods besides uniform and grid
    url: dict  # URL's weighting_kw (base weighting, lam)
    diagnostic: dict  # mtl.diagnostics.feature_distance arguments


def setup(profile: str, out_dir: str = "") -> tuple[dict, Path]:
    """This section's parameters at ``profile`` (checked against :class:`Params`) and its output folder."""
    return profiles.setup("features", Params, profile, out_dir)


# seed 004, Tables II and III (NYUD-v2): the rows of the methods this section runs (mtl.studies._paper).
SEED004_TABLE2_NYUD_R18_MTO = {"source": "seed 004, Table II, NYUD-v2, ResNet-18 (AvgNorm is not in Table II)",
                               "columns": reference.SEED004_NYUD_COLUMNS,
                               "rows": reference.SEED004_TABLE2_NYUD_R18_ROWS}
SEED004_TABLE3_NYUD_R50_URL = {"source": "seed 004, Table III, NYUD-v2, ResNet-50",
                               "columns": reference.SEED004_NYUD_COLUMNS,
                               "rows": reference.SEED004_TABLE3_NYUD_R50_ROWS}
# seed 004 §V-F(1): the methods Fig. 6 singles out as closer to STL and better than Uniform.
PAPER_C7 = ("Grid Search, CAGrad and Nash-MTL do better than Uniform (worst Δm) and their features are closer "
            "to the single-task features (Fig. 6, L2 after an adapter, NYUD-v2 and PASCAL-Context).")


def teacher_dirs(stl: dict, i: int) -> dict[str, str]:
    """task -> the run folder of seed index ``i``'s single-task network (portable path)."""
    return {t: portable(recs[i]["run_dir"]) for t, recs in stl.items()}


def run_methods(out_dir, cfg: dict, executor=None) -> dict:
    """STL (saved), uniform and grid search (:func:`mtl.studies.imbalance.vanilla_imbalance`), the
    MTO methods of ``cfg["methods"]`` (in its first stage) and URL over a base weighting (in its
    second: URL's teachers are the single-task networks); every spec saves its model for the diagnostic."""
    spec = study.derive(cfg["spec"], save_model=True)
    seeds = list(cfg["seeds"])
    stage1 = {name: study.train_jobs(out_dir, study.seed_specs(
                  study.derive(spec, weighting=m["weighting"], weighting_kw=m.get("weighting_kw", {})),
                  seeds, name.lower().replace(" ", "_")))
              for name, m in cfg["methods"].items()}
    url = cfg["url"]

    def stage2(res):
        return {"URL": study.train_jobs(out_dir, [
            study.derive(spec, name=f"url-s{s}", weighting="url", train={"seed": s},
                         weighting_kw={"teachers": teacher_dirs(res["stl"], i), **url}) for i, s in enumerate(seeds)])}

    res = vanilla_imbalance(out_dir, {"spec": spec, "seeds": seeds, "grid": cfg["grid"]}, executor,
                            stage1=stage1, stage2=stage2)
    res["methods"].update(res.pop("stage1"))
    res["methods"].update(res.pop("stage2"))
    return res


def distance_record(out_dir, run: dict, teachers: dict[str, str], cfg: dict) -> dict[str, float]:
    """The diagnostic of one multi-task run against its seed's teachers (recorded, loaded when done)."""
    params = {"name": f"distance-{run['params']['name']}", "run": portable(run["run_dir"]),
              "teachers": teachers, **cfg}

    def compute():
        spec = run["params"]
        bundle = load_data(spec["dataset"], **spec.get("dataset_kw", {}))
        model = load_model(run["run_dir"])
        d = diagnostics.feature_distance(model, {t: load_model(p) for t, p in teachers.items()}, bundle, **cfg)
        return {"metrics": d}

    return run_or_load(Path(out_dir) / "distances", params, compute)["metrics"]


def feature_similarity(out_dir, cfg: dict, executor=None) -> dict:
    """Run everything (:func:`run_methods`), then the distance diagnostic of every multi-task run (one stage)."""
    res = run_methods(out_dir, cfg, executor)
    runs = [(name, i, rec) for name, recs in res["methods"].items() if name != "Single-task"
            for i, rec in enumerate(recs)]
    jobs = [sweep.Job(distance_record, str(out_dir), (rec, teacher_dirs(res["stl"], i), cfg["diagnostic"]),
                      label=f"distance-{rec['params']['name']}") for name, i, rec in runs]
    rows = []
    for (name, i, rec), d in zip(runs, study.run_groups({"distances": jobs}, executor)["distances"]):
        imp = study.per_task_improvement(rec["metrics"], res["base"], res["dirs"])
        rows += [{"method": name, "seed": res["seeds"][i], "task": t, "distance": v,
                  "improvement": imp[t], "delta_m": study.overall_delta(rec["metrics"], res["base"], res["dirs"])}
                 for t, v in d.items()]
    res["distances"] = pd.DataFrame(rows)
    return res


def per_run(distances: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, seed): mean distance over tasks and Δm."""
    return distances.groupby(["method", "seed"], sort=False).agg(distance=("distance", "mean"),
                                                                  delta_m=("delta_m", "first")).reset_index()


def distance_table(distances: pd.DataFrame) -> pd.DataFrame:
    """Per method: each task's distance (mean over seeds), their mean, and Δm% mean ± SE."""
    per_task = distances.pivot_table(index="method", columns="task", values="distance", aggfunc="mean", sort=False)
    per_task.columns = [f"dist {t}" for t in per_task.columns]
    runs = per_run(distances)
    agg = runs.groupby("method", sort=False).agg(
        dist_mean=("distance", "mean"), delta_m=("delta_m", "mean"),
        delta_m_se=("delta_m", lambda v: float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0),
        seeds=("seed", "nunique"))
    return per_task.join(agg)


def rank_correlation(runs: pd.DataFrame, exclude: tuple = ()) -> dict:
    """Spearman ρ of mean distance vs Δm: pooled over runs (with p) and within each seed across methods."""
    r = runs[~runs["method"].isin(exclude)]
    pooled = spearmanr(r["distance"], r["delta_m"])
    within = [float(spearmanr(g["distance"], g["delta_m"]).statistic) for _, g in r.groupby("seed") if len(g) > 2]
    return {"rho": float(pooled.statistic), "p": float(pooled.pvalue), "n": len(r),
            "rho_per_seed": [x for x in within if np.isfinite(x)]}


def c7_verdict(distances: pd.DataFrame, setting: str, z: float = 2.0) -> dict:
    """C7 (seed 004 §V-F(1), Fig. 6): methods whose features stay closer to STL do better.

    Per seed, Spearman ρ between each method's mean feature distance and its Δm across methods;
    supports if the mean ρ over seeds is below 0 by more than ``z`` SE, contradicts if above 0 by
    that margin, else inconclusive (one seed: inconclusive). The pooled ρ (all runs) and the ρ
    without URL (which minimises the distance by construction) are reported as evidence.
    """
    runs = per_run(distances)
    allm, nourl = rank_correlation(runs), rank_correlation(runs, exclude=("URL",))
    side, mu, se = paired_difference(allm["rho_per_seed"], [0.0] * len(allm["rho_per_seed"]), z)
    v = {"less": "supports", "greater": "contradicts", "undecided": "inconclusive"}[side]
    means = runs.groupby("method", sort=False)[["distance", "delta_m"]].mean()
    order = ", ".join(f"{m} {r.distance:.3f}/{r.delta_m:+.2f}%" for m, r in means.sort_values("distance").iterrows())
    return claims.verdict(
        "C7", v, paper=PAPER_C7,
        ours=(f"{setting}: within-seed Spearman ρ(distance, Δm) = {mu:+.2f} ± {se:.2f} (SE, "
              f"{len(allm['rho_per_seed'])} seeds); mean distance/Δm by method, closest first: {order}"),
        evidence=(f"mean within-seed ρ vs 0 at {z:g} SE → {side}; pooled ρ = {allm['rho']:+.2f} "
                  f"(p = {allm['p']:.3f}, n = {allm['n']} runs); without URL pooled ρ = {nourl['rho']:+.2f} "
                  f"(p = {nourl['p']:.3f}); negative ρ = closer features, higher Δm"),
        setting=setting)
