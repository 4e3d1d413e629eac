"""Section "Trade-off fronts on MultiMNIST" (seed 000 App. A.2 protocol; properties F1, F2 of this section).

Per seed, :func:`multimnist_fronts` trains EXTRA-L (3 control points), PaMaL (window 4,
p = 1, λ = 0) and a linear-scalarisation (LS) sweep on ``multimnist`` with LeNet, Adam 1e-3 and
batch 256, and evaluates EXTRA on a grid of t, PaMaL on a grid of α and each LS model once. A seed's
run is recorded with :func:`mtl.runs.run_or_load` (the grid points, losses and errors are its
metrics), so a re-run loads it. The section has no CLAIMS.md id; it checks two stated properties:

* F1 — EXTRA's curve is order-aware: task 1's (left digit) loss rises with t and task 2's (right
  digit) falls (seed 000 Eq. 2, R_o), measured by Spearman's ρ between t and each loss.
* F2 — EXTRA's front has a hypervolume at least PaMaL's (paired over seeds, same reference point).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from .. import profiles, sweep
from ._common import run_groups
from ..claims import verdict
from ..metrics import paired_difference
from ..curves import simplex_grid, train_extra, train_ls_sweep, train_pamal
from ..data import load
from ..fronts import GridEval, evaluate_at, evaluate_grid, hypervolume, pareto_front
from ..metrics import mean_se
from ..models import create_model
from ..runs import run_or_load
from ..train import TrainConfig


@dataclass(frozen=True)
class Params:
    """Top-level keys of ``book/sections/fronts.yaml``."""

    seeds: list[int]
    n_train: int
    n_val: int
    n_test: int
    epochs: int  # per EXTRA stage, and of PaMaL and each LS model
    n_grid: int  # grid points of t (EXTRA) and α (PaMaL)
    n_sweep: int  # LS models
    batch_size: int = 256
    lr: float = 1e-3
    extra_endpoint_weights: list | None = None  # LS weights of EXTRA's two end points (None: equal)
    hv_ref: list | None = None  # hypervolume reference point (None: 1.1 × the worst point)
    max_steps_per_epoch: int | None = None
    device: str = "auto"


def setup(profile: str, out_dir: str = "") -> tuple[dict, Path]:
    """This section's parameters at ``profile`` (checked against :class:`Params`) and its output folder."""
    return profiles.setup("fronts", Params, profile, out_dir)


METHODS = ("extra", "pamal", "ls")
LABELS = {"extra": "EXTRA-L (curve)", "pamal": "PaMaL (simplex)", "ls": "LS sweep"}
FRONT_KW = ("n_train", "n_val", "n_test", "epochs", "n_grid", "n_sweep", "batch_size", "lr", "max_steps_per_epoch",
            "extra_endpoint_weights")

#: Seed 000 reports no MultiMNIST numbers in the text we could read (App. A.2 gives only the protocol).
SEED000_MULTIMNIST_SOURCE = "seed 000 App. A.2 (protocol only; no MultiMNIST front or hypervolume is reported)"


def _grid_record(ev, data) -> dict:
    pts = [p if isinstance(p, (int, float)) else list(np.asarray(p, float).ravel()) for p in ev.points]
    return {"points": pts, "losses": ev.losses.tolist(), "errors": ev.objectives("error", data).tolist()}


def multimnist_fronts(n_train: int = 6000, n_val: int = 1000, n_test: int = 1000, epochs: int = 10,
                      seed: int = 0, n_grid: int = 11, n_sweep: int = 5, batch_size: int = 256, lr: float = 1e-3,
                      device: str = "auto", max_steps_per_epoch: int | None = None, split: str = "test",
                      extra_endpoint_weights: Sequence[Sequence[float]] | None = None) -> dict:
    """EXTRA-L, PaMaL and an LS sweep on ``multimnist`` (seed 000 App. A.2: LeNet, Adam 1e-3, batch 256).

    Returns ``{method: GridEval}`` plus ``"extra_val"`` (the curve on the validation split, for
    choosing t). EXTRA: 3 control points, stage 1 and stage 2 each ``epochs`` epochs, t on
    ``n_grid`` points; PaMaL: window 4, p = 1, λ = 0, α on ``n_grid`` points; LS: ``n_sweep``
    weights w ∈ (0, 1) as [w, 1 − w]. ``extra_endpoint_weights`` (e.g. ((0.9, 0.1), (0.1, 0.9)))
    trains EXTRA's end points with those LS weights instead of equal ones (README: plain LS).
    """
    data = load("multimnist", n_train=n_train, n_val=n_val, n_test=n_test, seed=seed)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
                      max_steps_per_epoch=max_steps_per_epoch)
    make = lambda: create_model("hps", "lenet", data.tasks)                     # noqa: E731
    ekw = None if extra_endpoint_weights is None else [{"weights": list(w)} for w in extra_endpoint_weights]
    extra = train_extra(make, data, cfg, n_points=3, endpoint_kw=ekw)
    ts = np.linspace(0, 1, n_grid).tolist()
    out = {"extra": evaluate_grid(extra.curve, data, ts, split),
           "extra_val": evaluate_grid(extra.curve, data, ts, "val")}
    pamal, _ = train_pamal(make, data, cfg, window=4, concentration=1.0, reg=0.0)
    out["pamal"] = evaluate_grid(pamal, data, simplex_grid(2, n_grid), split)
    ws = np.linspace(0, 1, n_sweep + 2)[1:-1]
    runs = train_ls_sweep(make, data, cfg, [[w, 1 - w] for w in ws])
    evals = [evaluate_at(m, data, split) for _, m, _ in runs]
    out["ls"] = GridEval([w for w, _, _ in runs], [t.name for t in data.tasks],
                         np.stack([e[0] for e in evals]), [e[1] for e in evals])
    return out


def run_seed(out: Path, P: dict, seed: int, progress: bool = False) -> dict:
    """One seed of the three methods (recorded; loaded when already finished)."""
    kw = {k: P[k] for k in FRONT_KW if k in P}
    params = {"name": f"multimnist-fronts-s{seed}", "seed": seed, **kw}

    def fn():
        res = multimnist_fronts(seed=seed, device=P.get("device", "auto"), **kw)
        data = load("multimnist", n_train=kw["n_train"], n_val=kw["n_val"], n_test=kw["n_test"], seed=seed)
        return {"metrics": {m: _grid_record(res[m], data) for m in (*METHODS, "extra_val")},
                "info": {"tasks": res["extra"].tasks}}
    return run_or_load(Path(out) / "runs", params, fn)


def run(out: Path, P: dict, progress: bool = False, executor=None) -> dict:
    """``{seed: metrics}`` over the profile's seeds (one stage: one :func:`run_seed` job per seed)."""
    jobs = [sweep.Job(run_seed, str(out), (P, s), label=f"multimnist-fronts-s{s}") for s in P["seeds"]]
    return {s: rec["metrics"] for s, rec in zip(P["seeds"], run_groups({"seeds": jobs}, executor)["seeds"])}


def reference_point(results: dict, kind: str, ref=None) -> np.ndarray:
    """The stated reference point: ``ref`` when given, else 1.1 × the worst value of every method, grid
    point and seed per objective (one fixed point for all methods and seeds, so hypervolumes compare)."""
    if ref is not None:
        return np.asarray(ref, float)
    allp = np.concatenate([np.asarray(r[m][kind]) for r in results.values() for m in METHODS])
    return 1.1 * allp.max(0)


def hypervolumes(results: dict, kind: str, ref: np.ndarray) -> pd.DataFrame:
    """Rows (seed, method, hypervolume) of each method's points against ``ref``."""
    rows = [(s, m, hypervolume(np.asarray(r[m][kind]), ref)) for s, r in results.items() for m in METHODS]
    return pd.DataFrame(rows, columns=["seed", "method", "hypervolume"])


def hv_table(hv: pd.DataFrame) -> pd.DataFrame:
    """Mean, SE and per-seed hypervolume per method (higher is better)."""
    rows = {}
    for m in METHODS:
        v = hv[hv.method == m].sort_values("seed")["hypervolume"].to_numpy()
        mu, se = mean_se(v)
        rows[LABELS[m]] = {"HV mean ↑": mu, "HV SE": se,
                           **{f"seed {s}": x for s, x in zip(sorted(hv.seed.unique()), v)}}
    return pd.DataFrame(rows).T


def order_correlations(results: dict, split: str = "extra") -> pd.DataFrame:
    """Spearman ρ between t and each task's loss along EXTRA's curve, per seed (F1 wants ρ₁ > 0 > ρ₂)."""
    rows = []
    for s, r in results.items():
        t = np.asarray(r[split]["points"], float)
        L = np.asarray(r[split]["losses"])
        rows.append({"seed": s, "ρ(t, L_task1)": float(spearmanr(t, L[:, 0])[0]),
                     "ρ(t, L_task2)": float(spearmanr(t, L[:, 1])[0])})
    return pd.DataFrame(rows).set_index("seed")


def losses_along_t(results: dict) -> pd.DataFrame:
    """Long frame (seed, t, task, loss) of EXTRA's test losses along the curve."""
    rows = []
    for s, r in results.items():
        for t, L in zip(r["extra"]["points"], r["extra"]["losses"]):
            rows += [{"seed": s, "t": float(t), "task": f"task {k + 1}", "loss": float(v)} for k, v in enumerate(L)]
    return pd.DataFrame(rows)


def front_points(results: dict, kind: str, seed) -> dict:
    """``{method: (all points [P, 2], non-dominated front [F, 2])}`` of one seed."""
    out = {}
    for m in METHODS:
        p = np.asarray(results[seed][m][kind])
        out[m] = (p, pareto_front(p))
    return out


def f1_order_aware(corr: pd.DataFrame, z: float = 2.0) -> dict:
    """F1: task 1's loss rises with t (ρ₁ > 0) and task 2's falls (ρ₂ < 0), each beyond z SE over seeds."""
    r1, r2 = corr.iloc[:, 0].to_numpy(), corr.iloc[:, 1].to_numpy()
    (m1, s1), (m2, s2) = mean_se(r1), mean_se(r2)
    ok1, ok2 = m1 - z * s1 > 0 and len(r1) > 1, m2 + z * s2 < 0 and len(r2) > 1
    bad = (m1 + z * s1 < 0 or m2 - z * s2 > 0) and len(r1) > 1
    out = "supports" if ok1 and ok2 else "contradicts" if bad else "inconclusive"
    return verdict("F1", out,
                   paper=("EXTRA's curve is order-aware: task 1's loss rises with t, task 2's falls "
                          "(seed 000 Eq. 2, R_o)."),
                   ours=f"Spearman ρ(t, L₁) = {m1:.2f} ± {s1:.2f}, ρ(t, L₂) = {m2:.2f} ± {s2:.2f}",
                   evidence=f"mean ± SE over {len(r1)} seeds of Spearman's ρ along the t grid (test losses); "
                            f"supports when ρ₁ > 0 and ρ₂ < 0 each by more than {z} SE",
                   setting="multimnist, LeNet, EXTRA-L with 3 control points")


def f2_hypervolume(hv: pd.DataFrame, ref: np.ndarray, kind: str, z: float = 2.0) -> dict:
    """F2: EXTRA's hypervolume ≥ PaMaL's (paired over seeds; 'less' beyond z SE contradicts)."""
    e = hv[hv.method == "extra"].sort_values("seed")["hypervolume"].to_numpy()
    p = hv[hv.method == "pamal"].sort_values("seed")["hypervolume"].to_numpy()
    sign, m, se = paired_difference(e, p, z)
    out = {"greater": "supports", "less": "contradicts"}.get(sign, "inconclusive")
    return verdict("F2", out,
                   paper=("EXTRA's front has a hypervolume at least PaMaL's "
                          "(our property; seed 000 reports no MultiMNIST front)."),
                   ours=f"HV(EXTRA) − HV(PaMaL) = {m:.4g} ± {se:.2g} (paired over seeds, {kind})",
                   evidence=f"{len(e)} seeds; reference point {np.round(ref, 4).tolist()} ({kind} of task 1, task 2); "
                            f"supports when the paired difference exceeds {z} SE, contradicts when below −{z} SE",
                   setting="multimnist, LeNet; EXTRA on the t grid, PaMaL on the α grid")
