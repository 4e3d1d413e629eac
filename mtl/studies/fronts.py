"""Section "Trade-off fronts on MultiMNIST" (seed 000 App. A.2 protocol; properties F1, F2 of this section).

Per seed, :func:`multimnist_fronts` trains EXTRA-L (3 control points), its α = 0 control (the same
end points, stage 2 without R_o), PaMaL (window 4, p = 1, λ = 0) and a linear-scalarisation (LS)
sweep on ``multimnist`` with LeNet, Adam 1e-3 and batch 256, and evaluates both curves on a grid of
t, PaMaL on a grid of α and each LS model once. A seed's run is recorded with
:func:`mtl.runs.run_or_load` (the grid points, losses and errors, and every training run's validation
history per epoch, are its metrics), so a re-run loads it. The section has no CLAIMS.md id; it checks
two stated properties:

* F1 — EXTRA's curve is order-aware: task 1's (left digit) loss rises with t and task 2's (right
  digit) falls, and the order comes from R_o (seed 000 Eq. 2): Spearman's ρ between t and each loss
  on the α = 0.5 curve, and its order strength (:func:`order_strength`) against the α = 0 control.
* F2 — EXTRA's front has a hypervolume at least PaMaL's (paired over seeds, same reference point).

The scale gate judges every evaluated point by its test accuracy and the validation history of the
training run that made it (:func:`point_history`): a curve's interior points by stage 2's history at
t = ½ (``fit`` evaluates the curve at its default point each epoch), its end points t = 0 and t = 1
(frozen in stage 2) by their stage-1 histories, PaMaL's points by its history at the simplex's centre,
an LS model by its own.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from .. import adequacy as A
from .. import profiles, sweep
from .. import stats as ST
from .. import weighting as W
from . import _extra_curves as X
from ._common import run_groups
from ..claims import verdict
from ..curves import ExtraStep, curve_model, simplex_grid, train_endpoints, train_ls_sweep, train_pamal
from ..data import load
from ..fronts import GridEval, evaluate_at, evaluate_grid, front_indicators, hypervolume, pareto_front
from ..metrics import mean_se
from ..models import create_model
from ..runs import run_or_load
from ..train import TrainConfig, fit, reduction_info, seed_everything


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
    rules: dict = field(default_factory=dict)  # preregistered rules of F1, F2 (mtl.stats.Rule), under common:


def setup(profile: str, out_dir: str = "") -> tuple[dict, Path]:
    """This section's parameters at ``profile`` (checked against :class:`Params`) and its output folder."""
    return profiles.setup("fronts", Params, profile, out_dir)


METHODS = ("extra", "pamal", "ls")
LABELS = {"extra": "EXTRA-L (curve)", "pamal": "PaMaL (simplex)", "ls": "LS sweep"}
EXTRA_ALPHA = 0.5        # weight of R_o in stage 2 (seed 000 App. B.6 default)
CONTROL_ALPHA = 0.0      # F1's control: stage 2 without R_o, on the same end points
CONTROL = "extra_a0"     # the control curve's key in a seed's metrics
CURVE_LABELS = {"extra": f"EXTRA-L, α = {EXTRA_ALPHA:g}", CONTROL: f"control, α = {CONTROL_ALPHA:g} (no R_o)"}
FRONT_KW = ("n_train", "n_val", "n_test", "epochs", "n_grid", "n_sweep", "batch_size", "lr", "max_steps_per_epoch",
            "extra_endpoint_weights")

#: Seed 000 reports no MultiMNIST numbers in the text we could read (App. A.2 gives only the protocol).
SEED000_MULTIMNIST_SOURCE = "seed 000 App. A.2 (protocol only; no MultiMNIST front or hypervolume is reported)"


def _grid_record(ev, data) -> dict:
    pts = [p if isinstance(p, (int, float)) else list(np.asarray(p, float).ravel()) for p in ev.points]
    return {"points": pts, "losses": ev.losses.tolist(), "errors": ev.objectives("error", data).tolist()}


def _val_history(hist) -> list[dict]:
    """The per-epoch part of a :class:`mtl.train.History` the scale gate reads: epoch, training loss, val metrics."""
    return [{"epoch": r["epoch"], "train_loss": r["train_loss"], "val": r["val"]} for r in hist.epochs]


def stage2(ends, data, cfg: TrainConfig, alpha: float):
    """EXTRA stage 2 on the end points ``ends`` (as :func:`mtl.curves.train_extra` after its stage 1:
    3 control points, the interior one freshly initialised from seed ``cfg.seed + 1``), with R_o
    weighted by ``alpha``; the curve and its training history. The same seed for every ``alpha``, so
    a control differs from EXTRA only by R_o."""
    seed_everything(cfg.seed + 1)
    curve = curve_model(ends, "nurbs", 3, init="random")
    return curve, fit(curve, data, W.create("ls"), cfg, step_rule=ExtraStep(alpha=alpha))


def multimnist_fronts(n_train: int = 6000, n_val: int = 1000, n_test: int = 1000, epochs: int = 10,
                      seed: int = 0, n_grid: int = 11, n_sweep: int = 5, batch_size: int = 256, lr: float = 1e-3,
                      device: str = "auto", max_steps_per_epoch: int | None = None, split: str = "test",
                      extra_endpoint_weights: Sequence[Sequence[float]] | None = None) -> dict:
    """EXTRA-L, its α = 0 control, PaMaL and an LS sweep on ``multimnist`` (seed 000 App. A.2: LeNet,
    Adam 1e-3, batch 256).

    Returns ``{method: GridEval}`` for ``extra``, :data:`CONTROL`, ``pamal`` and ``ls``, plus
    ``"extra_val"`` (the curve on the validation split, for choosing t) and ``"history"``
    (``{run: per-epoch validation records}`` of ``end0``, ``end1``, ``extra``, :data:`CONTROL`,
    ``pamal`` and ``ls0``…). EXTRA: 3 control points, stage 1 and stage 2 each ``epochs`` epochs,
    α = :data:`EXTRA_ALPHA`; the control: the same end points and interior initialisation, α =
    :data:`CONTROL_ALPHA`; both curves on ``n_grid`` values of t. PaMaL: window 4, p = 1, λ = 0, α on
    ``n_grid`` points; LS: ``n_sweep`` weights w ∈ (0, 1) as [w, 1 − w]. ``extra_endpoint_weights``
    (e.g. ((0.9, 0.1), (0.1, 0.9))) trains EXTRA's end points with those LS weights instead of equal
    ones (README: plain LS).
    """
    data = load("multimnist", n_train=n_train, n_val=n_val, n_test=n_test, seed=seed)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
                      max_steps_per_epoch=max_steps_per_epoch)
    make = lambda: create_model("hps", "lenet", data.tasks)                     # noqa: E731
    ekw = None if extra_endpoint_weights is None else [{"weights": list(w)} for w in extra_endpoint_weights]
    ends, hist1 = train_endpoints(make, data, cfg, endpoint_kw=ekw)
    history = {f"end{k}": _val_history(h) for k, h in enumerate(hist1)}
    ts = np.linspace(0, 1, n_grid).tolist()
    out = {}
    for key, alpha in (("extra", EXTRA_ALPHA), (CONTROL, CONTROL_ALPHA)):
        curve, hist2 = stage2(ends, data, cfg, alpha)
        history[key] = _val_history(hist2)
        out[key] = evaluate_grid(curve, data, ts, split)
        if key == "extra":
            out["extra_val"] = evaluate_grid(curve, data, ts, "val")
    pamal, hist_p = train_pamal(make, data, cfg, window=4, concentration=1.0, reg=0.0)
    history["pamal"] = _val_history(hist_p)
    out["pamal"] = evaluate_grid(pamal, data, simplex_grid(2, n_grid), split)
    ws = np.linspace(0, 1, n_sweep + 2)[1:-1]
    runs = train_ls_sweep(make, data, cfg, [[w, 1 - w] for w in ws])
    history.update({f"ls{k}": _val_history(h) for k, (_, _, h) in enumerate(runs)})
    evals = [evaluate_at(m, data, split) for _, m, _ in runs]
    out["ls"] = GridEval([w for w, _, _ in runs], [t.name for t in data.tasks],
                         np.stack([e[0] for e in evals]), [e[1] for e in evals])
    out["history"] = history
    return out


def run_seed(out: Path, P: dict, seed: int, progress: bool = False) -> dict:
    """One seed of the methods (recorded; loaded when already finished)."""
    kw = {k: P[k] for k in FRONT_KW if k in P}
    params = {"name": f"multimnist-fronts-s{seed}", "seed": seed, **kw,
              "alphas": {"extra": EXTRA_ALPHA, CONTROL: CONTROL_ALPHA}}

    def fn():
        start = time.perf_counter()
        res = multimnist_fronts(seed=seed, device=P.get("device", "auto"), **kw)
        data = load("multimnist", n_train=kw["n_train"], n_val=kw["n_val"], n_test=kw["n_test"], seed=seed)
        metrics = {m: _grid_record(res[m], data) for m in (*METHODS, CONTROL, "extra_val")}
        info = {"tasks": res["extra"].tasks, **reduction_info(), "train_time": time.perf_counter() - start}
        return {"metrics": {**metrics, "history": res["history"]}, "info": info}
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


def indicator_table(results: dict, kind: str, ref: np.ndarray) -> pd.DataFrame:
    """Hypervolume (↑, against ``ref``), IGD and IGD+ (↓) per method, mean and SE over seeds
    (:func:`mtl.fronts.front_indicators`, pymoo). IGD/IGD+ are measured per seed against the best
    front known there: the non-dominated points of every method of that seed together."""
    per_seed = [front_indicators({m: np.asarray(r[m][kind]) for m in METHODS}, ref).assign(seed=s)
                for s, r in results.items()]
    df = pd.concat(per_seed).rename_axis("method").reset_index()
    rows = {}
    for m in METHODS:
        d = df[df.method == m]
        rows[LABELS[m]] = {f"{k} {stat}": v for k in ("hypervolume", "IGD", "IGD+")
                           for stat, v in zip(("mean", "SE"), mean_se(d[k].to_numpy()))}
    return pd.DataFrame(rows).T


def order_strength(t, l1, l2) -> np.ndarray:
    """F1's order statistic per seed: the least-squares slope over the t grid of the order profile
    o(t) = L₁(t) − L₂(t), divided by its end-to-end rise o(1) − o(0). ``t``, ``l1``, ``l2``: [seed, point],
    t ascending from 0 to 1 → [seed].

    Why this statistic: to first order R_o (seed 000 Eq. 2, :func:`mtl.curves.order_aware_loss`) is
    1 − E[(t₂ − t₁)(o(t₂) − o(t₁))]/2 over independent uniform t₁, t₂, i.e. 1 − Cov(t, o(t)): R_o rewards
    the covariance of t with the order profile, which the least-squares slope over a uniform grid
    estimates. Unlike Spearman's ρ it does not saturate once both losses are monotone, and unlike
    the mean step slope it does not telescope to the end points (which EXTRA and its control share).
    Dividing by o(1) − o(0) (the same for both curves of a seed) makes it unitless: 1 for a profile
    linear in t, more for a curve whose interior is traded off more sharply, less for one whose
    interior is flat or bent back. NaN where o(1) ≤ o(0) (the end points are not ordered).
    """
    t, o = np.asarray(t, float), np.asarray(l1, float) - np.asarray(l2, float)
    tc = t - t.mean(-1, keepdims=True)
    slope = (tc * (o - o.mean(-1, keepdims=True))).sum(-1) / (tc ** 2).sum(-1)
    rise = o[..., -1] - o[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(rise > 0, slope / np.where(rise > 0, rise, 1.0), np.nan)


def order_correlations(results: dict, split: str = "extra") -> pd.DataFrame:
    """Spearman ρ between t and each task's loss along EXTRA's curve, per seed (F1 wants ρ₁ > 0 > ρ₂),
    and the order strength (:func:`order_strength`) of EXTRA's curve and of its α = 0 control."""
    rows = []
    for s, r in results.items():
        t = np.asarray(r[split]["points"], float)
        L = np.asarray(r[split]["losses"])
        row = {"seed": s, "ρ(t, L_task1)": float(spearmanr(t, L[:, 0])[0]),
               "ρ(t, L_task2)": float(spearmanr(t, L[:, 1])[0])}
        for key in ("extra", CONTROL):
            if key in r:
                Lk = np.asarray(r[key]["losses"])
                row[f"order strength, {CURVE_LABELS[key]}"] = float(order_strength(
                    np.asarray(r[key]["points"], float), Lk[:, 0], Lk[:, 1]))
        rows.append(row)
    return pd.DataFrame(rows).set_index("seed")


def losses_along_t(results: dict) -> pd.DataFrame:
    """Long frame (seed, curve, t, task, loss) of the test losses along EXTRA's curve and its control."""
    rows = []
    for s, r in results.items():
        for key in ("extra", CONTROL):
            if key not in r:
                continue
            for t, L in zip(r[key]["points"], r[key]["losses"]):
                rows += [{"seed": s, "curve": CURVE_LABELS[key], "t": float(t), "task": f"task {k + 1}",
                          "loss": float(v)} for k, v in enumerate(L)]
    return pd.DataFrame(rows)


def front_points(results: dict, kind: str, seed) -> dict:
    """``{method: (all points [P, 2], non-dominated front [F, 2])}`` of one seed."""
    out = {}
    for m in METHODS:
        p = np.asarray(results[seed][m][kind])
        out[m] = (p, pareto_front(p))
    return out


# ----------------------------------------------------------------------------- the scale gate


def data_spec(P: dict, seed: int) -> dict:
    """The run spec naming one seed's ``multimnist`` data (its trivial predictors, its primary metrics)."""
    return {"dataset": "multimnist", "backbone": "lenet",
            "dataset_kw": {"n_train": P["n_train"], "n_val": P["n_val"], "n_test": P["n_test"], "seed": seed}}


def point_history(r: dict, method: str, k: int) -> list | None:
    """The validation history (per-epoch records) of the training run that made point ``k`` of
    ``method`` in one seed's metrics ``r``: a curve's end points (t = 0, 1; frozen in stage 2) their
    stage-1 runs, its interior points stage 2 (evaluated at t = ½ each epoch), PaMaL's points its run
    (at the simplex's centre), LS model ``k`` its own; None when the record has none (older runs)."""
    hist = r.get("history") or {}
    if method in ("extra", CONTROL):
        t = float(r[method]["points"][k])
        key = "end0" if t == 0.0 else "end1" if t == 1.0 else method
    else:
        key = "pamal" if method == "pamal" else f"ls{k}"
    return hist.get(key)


def gate(results: dict, P: dict, out_dir=None, methods=("extra", "pamal")):
    """The scale gate over every evaluated point of ``methods`` at every seed: each task's test
    accuracy (1 − error) against the majority class of that seed's training digits, and the plateau
    of the validation accuracy of the run that made the point (:func:`point_history`; a point
    without one fails the plateau test, said so)."""
    parts = []
    for s, r in results.items():
        triv, dirs = X.gate_reference(data_spec(P, s), out_dir)
        tasks = list(dirs)
        items = [(f"s{s} {m} point {k}", {t: {"acc": 1 - float(e[i])} for i, t in enumerate(tasks)},
                  point_history(r, m, k))
                 for m in methods for k, e in enumerate(r[m]["errors"])]
        parts.append(X.gate_metrics(f"seed {s}", items, triv, dirs))
    return X.gate_all(parts)


def plateau_table(results: dict) -> pd.DataFrame:
    """Per seed, training run and task: the share of its total validation-accuracy improvement made in
    the last epochs of the plateau rule (:func:`mtl.adequacy.plateau_test`) and whether it passed; the
    runs whose curve has not plateaued first."""
    rows = []
    for s, r in results.items():
        for run, h in (r.get("history") or {}).items():
            for task in h[-1]["val"] if h else ():
                p = A.plateau_test(h, task, "acc", True)
                share = p["recent"] / p["total"] if p.get("total") else float("nan")
                rows.append({"seed": s, "run": run, "task": task, "epochs": len(h),
                             "share of the improvement in the last epochs": share, "plateaued": bool(p["passed"])})
    df = pd.DataFrame(rows, columns=["seed", "run", "task", "epochs", "share of the improvement in the last epochs",
                                     "plateaued"])
    return df.sort_values(["plateaued", "seed", "run", "task"]).reset_index(drop=True)


def trivial_table(results: dict, P: dict, out_dir=None) -> pd.DataFrame:
    """Per task: the trivial predictor's test error (the majority training digit) beside each method's
    lowest test error along its grid (mean over seeds)."""
    rows = {}
    for s, r in results.items():
        triv, dirs = X.gate_reference(data_spec(P, s), out_dir)
        for i, t in enumerate(dirs):
            row = rows.setdefault(t, {"trivial predictor": [], **{LABELS[m]: [] for m in METHODS}})
            row["trivial predictor"].append(1 - triv[t]["acc"])
            for m in METHODS:
                row[LABELS[m]].append(float(np.min(np.asarray(r[m]["errors"])[:, i])))
    return pd.DataFrame({t: {k: float(np.mean(v)) for k, v in row.items()} for t, row in rows.items()}).T.rename_axis(
        "test error ↓ (task)")


# ----------------------------------------------------------------------------- verdicts

F1_CONTROL = f"EXTRA-L with α = {CONTROL_ALPHA:g} (no R_o) on the same end points, beside the α = {EXTRA_ALPHA:g} curve"
F1_PARTS = ("task 1 loss rises with t", "task 2 loss falls with t", "the order comes from R_o (α = 0.5 vs α = 0)")


def _undefined(rule: ST.Rule, what: str, n: int, why: str) -> ST.Decision:
    """An inconclusive part whose statistic is undefined (``why``)."""
    nan = float("nan")
    return ST.Decision("inconclusive", nan, nan, (nan, nan), n, None, None, rule, f"{what}: undefined ({why})")


def f1_decide(inputs: dict, rules: dict[str, ST.Rule]) -> ST.Combined:
    """F1's rule on ``inputs`` (:func:`f1_inputs`: ``t``, ``l1``, ``l2`` of the α = 0.5 curve and
    ``c1``, ``c2`` of the α = 0 control, each [seed, point]), three parts, Holm, all must support:
    (a) within each seed the Spearman ρ over the grid, ρ(t, L1) > 0 and ρ(t, L2) < 0 over seeds
    (``F1_order``, a correlation rule with a floor; task 2's direction flipped); (b) the α = 0.5
    curve's :func:`order_strength` exceeds the control's, paired by seed (``F1_ro``, superiority
    with a floor). (b) is inconclusive when a seed's end points are not ordered (o(1) ≤ o(0))."""
    t, l1, l2, c1, c2 = (np.asarray(inputs[k], float) for k in ("t", "l1", "l2", "c1", "c2"))
    r = rules["F1_order"]
    flipped = ST.Rule(r.kind, r.alpha, r.margin, r.floor, "less" if r.direction == "greater" else "greater")
    parts = [ST.correlation(t, l1, r), ST.correlation(t, l2, flipped)]
    q, q0 = order_strength(t, l1, l2), order_strength(t, c1, c2)
    what = "order strength, α = 0.5 curve − α = 0 control"
    if np.isnan(q).any() or np.isnan(q0).any():
        bad = sorted(set(np.flatnonzero(np.isnan(q) | np.isnan(q0)).tolist()))
        parts.append(_undefined(rules["F1_ro"], what, len(q), f"the end points are not ordered in seed row(s) {bad}"))
    else:
        d = ST.paired(q, q0, rules["F1_ro"])
        parts.append(replace(d, text=d.text.replace("mean a − b", what)))
    return ST.combine(parts, "all", r.alpha, names=list(F1_PARTS))


def f1_inputs(results: dict) -> dict:
    """``{"t", "l1", "l2", "c1", "c2"}``, each [seed, point]: EXTRA's curve and its α = 0 control (test losses)."""
    t = np.array([np.asarray(r["extra"]["points"], float) for r in results.values()])
    L = np.array([np.asarray(r["extra"]["losses"], float) for r in results.values()])
    C = np.array([np.asarray(r[CONTROL]["losses"], float) for r in results.values()])
    if not np.allclose(t, [np.asarray(r[CONTROL]["points"], float) for r in results.values()]):
        raise ValueError("EXTRA's curve and its control must be evaluated on the same t grid")
    return {"t": t, "l1": L[..., 0], "l2": L[..., 1], "c1": C[..., 0], "c2": C[..., 1]}


def f1_order_aware(results: dict, rules: dict, adequacy=None, scale_needed: str | None = None) -> dict:
    """F1: EXTRA's curve is order-aware — task 1's loss rises with t and task 2's falls — and the order
    comes from R_o (:func:`f1_decide`, against :data:`F1_CONTROL`); ``adequacy`` is the scale gate
    over both curves' points (a failed gate makes it ``untestable``, with ``scale_needed``)."""
    missing = [s for s, r in results.items() if CONTROL not in r]
    if missing:
        raise ValueError(f"seed(s) {missing} have no α = 0 control curve ({CONTROL!r}); F1 needs {F1_CONTROL} "
                         f"(re-run the section: its runs record it)")
    rs = X.rules_of({"rules": rules}, ["F1_order", "F1_ro"])
    c = f1_decide(f1_inputs(results), rs)
    corr = order_correlations(results)
    (m1, s1), (m2, s2) = (mean_se(corr.iloc[:, i].to_numpy()) for i in (0, 1))
    (q, sq), (q0, sq0) = (mean_se(corr.iloc[:, i].to_numpy()) for i in (2, 3))
    paper = ("EXTRA's curve is order-aware: task 1's loss rises with t, task 2's falls, by its order-aware "
             "term R_o (seed 000 Eq. 2).")
    return verdict("F1", c.verdict, paper=paper,
                   ours=(f"Spearman ρ(t, L₁) = {m1:.2f} ± {s1:.2f}, ρ(t, L₂) = {m2:.2f} ± {s2:.2f}; order strength "
                         f"{q:.3g} ± {sq:.2g} at α = {EXTRA_ALPHA:g} vs {q0:.3g} ± {sq0:.2g} for the α = "
                         f"{CONTROL_ALPHA:g} control (mean ± SE over {len(corr)} seeds)"),
                   evidence=(f"control: {F1_CONTROL}. {c.text}; " + " | ".join(d.text for d in c.parts)),
                   rule=X.combined_rule(c), adequacy=adequacy, seeds_needed=c.seeds_needed,
                   scale_needed=scale_needed, parts=X.parts_record(list(F1_PARTS), c),
                   setting="multimnist, LeNet, EXTRA-L with 3 control points and its α = 0 control")


def f2_decide(extra, pamal, rule: ST.Rule) -> ST.Decision:
    """F2's rule: HV(EXTRA) − HV(PaMaL) over paired seeds is not below −margin (non-inferiority)."""
    return ST.paired(extra, pamal, rule)


def f2_hypervolume(hv: pd.DataFrame, ref: np.ndarray, kind: str, rules: dict, adequacy=None,
                   scale_needed: str | None = None) -> dict:
    """F2: EXTRA's hypervolume is at least PaMaL's: non-inferiority with the margin of ``rules["F2_hv"]``,
    paired over seeds (the same reference point for both)."""
    rule = X.rules_of({"rules": rules}, ["F2_hv"])["F2_hv"]
    e = hv[hv.method == "extra"].sort_values("seed")["hypervolume"].to_numpy()
    p = hv[hv.method == "pamal"].sort_values("seed")["hypervolume"].to_numpy()
    d = f2_decide(e, p, rule)
    paper = "EXTRA's front has a hypervolume at least PaMaL's (our property; seed 000 reports no MultiMNIST front)."
    return verdict("F2", d.verdict, paper=paper,
                   ours=(f"HV(EXTRA) − HV(PaMaL) = {d.estimate:.4g} (95% CI [{d.ci[0]:.4g}, {d.ci[1]:.4g}], "
                         f"paired over seeds, {kind})"),
                   evidence=(f"{len(e)} seeds; reference point {np.round(ref, 4).tolist()} ({kind} of task 1, "
                             f"task 2); {d.text}"),
                   rule=rule, adequacy=adequacy, seeds_needed=d.seeds_needed, scale_needed=scale_needed,
                   setting="multimnist, LeNet; EXTRA on the t grid, PaMaL on the α grid")
