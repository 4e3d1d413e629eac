"""The scale gate: is a run *trained*, i.e. clearly better than a trivial predictor and plateaued?

A claim is decided only on trained runs (design note CLAIMS.md, "The scale gate"). Two tests:

* **gap** — every primary test metric closes at least ``GateRules.gap_fraction`` of the gap
  between a trivial predictor and a perfect score: with ``threshold = trivial + f·(perfect −
  trivial)`` a higher-is-better metric needs ``m ≥ threshold``, a lower-is-better one
  ``m ≤ threshold`` (f = 0.25: RMSE ≤ 0.75 × the trivial RMSE, since a perfect RMSE is 0).
* **plateau** — the primary validation metric has stopped improving: over the last
  ``plateau_epochs`` epochs its best-so-far value improved by at most ``plateau_tol`` of its total
  improvement since epoch 0. The best-so-far value (not the last epoch's) is used so that a
  noisy dip in the final epoch cannot pass a curve that was still rising; the total improvement
  (not the metric's own value) is the scale so the rule means the same for errors that approach
  0 and for scores that approach 1. A curve that never improved is flat and passes this test
  (the gap test judges it). A history of fewer than ``plateau_epochs + 1`` epochs fails.

Trivial predictors are constants fitted on the *training* split and scored on a split (test) by
the task's own meter (``task.make_meter()``), so they are comparable with the runs' metrics:

============== ============================================================================
kind           trivial predictor
============== ============================================================================
segmentation   the majority class of the valid training pixels (constant logits)
classification the majority training class (constant logits)
depth          the mean valid training depth (targets > 0 are valid, as the loss and meter)
normal         the mean valid training normal (targets ≠ 0), normalised
edge           a constant edge probability: the training positive rate (the prior) or 0.5,
               whichever the EdgeMeter scores higher on the training split (ties: the prior).
               A constant ≥ the lowest threshold (0.05) marks every pixel an edge, one below
               marks none (odsF 0), so with a prior under 0.05 the choice is 0.5.
regression     the mean training target in the task's z-scored units; the MAE meter
               de-standardises it (× std × scale), as it does the runs' predictions
binary         the majority label of each task (logit ±1)
============== ============================================================================

The trivial predictors of a dataset are those of its *clean* data (``corruption`` of a spec is
not applied): one reference per dataset, so runs trained on noisy or subsampled labels are held
to the same bar as clean ones.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from .experiment import RunSpec, load_data
from .runs import canonical, write_json

KINDS = ("segmentation", "classification", "depth", "normal", "edge", "regression", "binary")
BATCH_SIZE = 64

# ----------------------------------------------------------------------------- perfect scores

FRACTIONS = ("miou", "pix_acc", "acc", "odsf", "within_11", "within_22", "within_30")  # higher is better, in [0, 1]
ERRORS = ("rmse", "abs_err", "rel_err", "mean", "median", "mae")                          # lower is better, ≥ 0


def perfect_score(metric: str, higher_is_better: bool) -> float:
    """The best value ``metric`` can take: 1 for a fraction (mIoU, accuracy, odsF, within-t), 0 for an error."""
    known = FRACTIONS if higher_is_better else ERRORS
    if metric not in known:
        raise ValueError(f"no perfect score known for {'higher' if higher_is_better else 'lower'}-is-better "
                         f"metric {metric!r}; known: {known}")
    return 1.0 if higher_is_better else 0.0


# ----------------------------------------------------------------------------- trivial predictors


@dataclass(frozen=True)
class Constant:
    """A constant prediction for one task, shaped like the head's output for each target batch."""

    kind: str
    value: Any               # class index | mean depth | [3] unit normal | edge probability | mean target | label
    classes: int = 1         # number of classes (segmentation, classification)
    note: str = ""

    def predict(self, target: torch.Tensor) -> torch.Tensor:
        """The prediction for a batch whose targets are ``target`` (same batch size and spatial shape)."""
        k = self.kind
        if k in ("segmentation", "classification"):
            # target [B, H, W] -> logits [B, C, H, W]; target [B] -> logits [B, C]
            shape = (target.shape[0], self.classes, *target.shape[1:])
            logits = torch.zeros(shape)
            logits[:, int(self.value)] = 1.0
            return logits
        if k == "normal":
            # target [B, 3, H, W] -> the same unit vector at every pixel
            n = torch.tensor(self.value, dtype=torch.float32).view(1, 3, *([1] * (target.dim() - 2)))
            return n.expand(target.shape[0], 3, *target.shape[2:]).clone()
        if k == "edge":
            p = float(self.value)
            return torch.full(target.shape, math.log(p / (1 - p)))       # logits [B, 1, H, W]
        if k == "binary":
            return torch.full(target.shape, 1.0 if int(self.value) else -1.0)
        return torch.full(target.shape, float(self.value))                # depth [B, 1, H, W]; regression [B]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "value": self.value, "note": self.note}


class _Stats:
    """Training statistics of one task, accumulated batch by batch."""

    def __init__(self, task):
        self.task, self.kind = task, task.kind
        if self.kind not in KINDS:
            raise ValueError(f"task {task.name!r} has kind {self.kind!r}; trivial predictors exist for {KINDS}")
        self.counts = torch.zeros(max(task.out_channels, 1), dtype=torch.float64)
        self.total = torch.zeros(3, dtype=torch.float64)
        self.n = 0.0

    def update(self, y: torch.Tensor) -> None:
        k = self.kind
        if k in ("segmentation", "classification"):
            y = y.reshape(-1).long()
            y = y[(y >= 0) & (y < len(self.counts))]                      # -1 = ignore
            self.counts += torch.bincount(y, minlength=len(self.counts)).double()
        elif k == "depth":
            valid = y[y > 0].double()
            self.total[0] += valid.sum()
            self.n += valid.numel()
        elif k == "normal":
            # y [B, 3, H, W]; valid where the target is not the zero vector
            v = y.permute(0, 2, 3, 1).reshape(-1, 3).double()
            v = v[v.abs().sum(1) > 0]
            self.total += torch.nn.functional.normalize(v, dim=1).sum(0)
            self.n += v.shape[0]
        elif k == "edge":
            valid = y[y >= 0].double()
            self.total[0] += (valid > 0.5).sum()
            self.n += valid.numel()
        else:                                                            # regression | binary
            self.total[0] += y.double().sum()
            self.n += y.numel()

    def constant(self) -> Constant:
        k, name = self.kind, self.task.name
        if k in ("segmentation", "classification"):
            if self.counts.sum() == 0:
                raise ValueError(f"task {name!r}: no valid training labels")
            c = int(self.counts.argmax())
            share = float(self.counts[c] / self.counts.sum())
            return Constant(k, c, len(self.counts), f"majority class {c} ({share:.1%} of training labels)")
        if self.n == 0:
            raise ValueError(f"task {name!r}: no valid training targets")
        if k == "depth":
            m = float(self.total[0] / self.n)
            return Constant(k, m, note=f"mean valid training depth {m:.4g}")
        if k == "normal":
            mean = self.total / self.n
            if float(mean.norm()) == 0:
                raise ValueError(f"task {name!r}: the mean training normal is the zero vector (no direction)")
            n = (mean / mean.norm()).tolist()
            return Constant(k, n, note="mean training normal (" + ", ".join(f"{v:.3f}" for v in n) + ")")
        if k == "edge":
            prior = float(self.total[0] / self.n)
            return Constant(k, min(max(prior, 1e-6), 1 - 1e-6), note=f"training edge prior {prior:.4f}")
        if k == "regression":
            m = float(self.total[0] / self.n)
            return Constant(k, m, note=f"mean training target {m:.4g} (z-scored units)")
        rate = float(self.total[0] / self.n)
        label = int(rate > 0.5)
        return Constant(k, label, note=f"majority label {label} (positive rate {rate:.3f})")


def _score(bundle, split: str, constants: Mapping[str, Constant]) -> dict[str, dict[str, float]]:
    """Each constant scored on ``split`` by its task's meter."""
    meters = {t: bundle.task(t).make_meter() for t in constants}
    for _, targets in bundle.loader(split, BATCH_SIZE):
        for t, c in constants.items():
            meters[t].update(c.predict(targets[t]), targets[t])
    return {t: m.compute() for t, m in meters.items()}


def trivial_predictors(bundle) -> dict[str, Constant]:
    """The trivial constant of every task of ``bundle``, fitted on its training split (see module doc)."""
    stats = {t.name: _Stats(t) for t in bundle.tasks}
    for _, targets in bundle.loader("train", BATCH_SIZE):
        for name, s in stats.items():
            s.update(targets[name])
    constants = {name: s.constant() for name, s in stats.items()}
    edges = [n for n, c in constants.items() if c.kind == "edge"]
    if edges:                                   # the prior or 0.5, whichever the meter scores higher on train
        prior = {n: constants[n] for n in edges}
        half = {n: Constant("edge", 0.5, note=constants[n].note + "; constant 0.5 scores higher") for n in edges}
        s_prior, s_half = _score(bundle, "train", prior), _score(bundle, "train", half)
        for n in edges:
            if s_half[n]["odsf"] > s_prior[n]["odsf"]:
                constants[n] = half[n]
    return constants


def trivial_metrics(bundle, split: str = "test") -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}`` of each task's trivial predictor on ``split``, by the task's meter."""
    return _score(bundle, split, trivial_predictors(bundle))


# ----------------------------------------------------------------------------- per spec, cached


def dataset_key(spec) -> dict:
    """The canonical dataset part of a run spec: ``{"dataset", "dataset_kw"}`` (defaults left out)."""
    p = RunSpec.from_dict(spec).params()
    return {"dataset": p["dataset"], "dataset_kw": p["dataset_kw"]}


def dataset_hash(spec) -> str:
    """10 hex digits naming the dataset of ``spec`` (as run ids name runs)."""
    return hashlib.sha1(canonical(dataset_key(spec)).encode()).hexdigest()[:10]


_CACHE: dict[tuple[str, str], dict] = {}      # (dataset hash, split) -> trivial_record


def trivial_record(spec, split: str = "test") -> dict:
    """The trivial predictors of the clean dataset of ``spec`` (a RunSpec or its dict, e.g. a
    ``config.json``) and their metrics on ``split``, computed once per process for all its tasks:
    ``{"dataset", "dataset_kw", "split", "hash", "predictors": {task: ...}, "metrics": {task: ...}}``."""
    key = dataset_key(spec)
    h = dataset_hash(spec)
    if (h, split) not in _CACHE:
        bundle = load_data(key["dataset"], **key["dataset_kw"])
        constants = trivial_predictors(bundle)
        _CACHE[h, split] = {**key, "split": split, "hash": h,
                            "predictors": {t: c.to_dict() for t, c in constants.items()},
                            "metrics": _score(bundle, split, constants)}
    return _CACHE[h, split]


def trivial_for_spec(spec, split: str = "test", out_dir=None) -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}`` of the trivial predictors for the tasks of ``spec`` (all when it
    names none), cached per process by dataset; with ``out_dir`` also recorded as
    ``<out_dir>/trivial-<dataset hash>.json`` (atomic) for a section to show."""
    rec = trivial_record(spec, split)
    tasks = RunSpec.from_dict(spec).tasks or tuple(rec["metrics"])
    missing = [t for t in tasks if t not in rec["metrics"]]
    if missing:
        raise KeyError(f"dataset {rec['dataset']!r} has no task {missing}; tasks: {sorted(rec['metrics'])}")
    if out_dir is not None:
        write_json(Path(out_dir) / f"trivial-{rec['hash']}.json", rec)
    return {t: dict(rec["metrics"][t]) for t in tasks}


def primary_directions(spec) -> dict[str, dict[str, bool]]:
    """``{task: {primary metric: higher_is_better}}`` for the tasks of ``spec``."""
    bundle = RunSpec.from_dict(spec).build_data(corrupted=False)
    return {t.name: t.primary_directions() for t in bundle.tasks}


# ----------------------------------------------------------------------------- the gate


@dataclass(frozen=True)
class GateRules:
    """The scale gate's thresholds, in one place (see the module doc for the two tests)."""

    gap_fraction: float = 0.25      # share of the trivial → perfect gap every primary test metric must close
    plateau_epochs: int = 3         # window at the end of the validation curve
    plateau_tol: float = 0.05       # max improvement in the window, as a share of the total improvement

    def __post_init__(self):
        if not 0 < self.gap_fraction <= 1:
            raise ValueError(f"gap_fraction must be in (0, 1], got {self.gap_fraction}")
        if not (isinstance(self.plateau_epochs, int) and self.plateau_epochs >= 1):
            raise ValueError(f"plateau_epochs must be an integer ≥ 1, got {self.plateau_epochs!r}")
        if not self.plateau_tol >= 0:
            raise ValueError(f"plateau_tol must be ≥ 0, got {self.plateau_tol}")


@dataclass(frozen=True)
class Adequacy:
    """The gate's verdict: ``passed``, a ``detail`` naming every failure with its numbers, and the
    numbers per task (``per_task[task][metric]``) or, from :func:`gate_runs`, per run (``runs``)."""

    passed: bool
    detail: str
    per_task: dict = field(default_factory=dict)
    runs: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """What claims.json records."""
        return {"passed": bool(self.passed), "detail": self.detail}


def _f(x: float) -> str:
    return f"{x:.4g}"


def gap_threshold(trivial: float, perfect: float, fraction: float) -> float:
    """``trivial + fraction · (perfect − trivial)``: the value a trained run must reach."""
    return trivial + fraction * (perfect - trivial)


def gap_test(value: float, trivial: float, metric: str, higher_is_better: bool, rules: GateRules = GateRules()) -> dict:
    """``{"passed", "value", "trivial", "perfect", "threshold", "text"}`` for one metric."""
    perfect = perfect_score(metric, higher_is_better)
    th = gap_threshold(trivial, perfect, rules.gap_fraction)
    ok = bool(value >= th) if higher_is_better else bool(value <= th)          # NaN fails both
    rel = "≥" if higher_is_better else "≤"
    bad = "<" if higher_is_better else ">"
    text = (f"{metric} {_f(value)} {rel if ok else bad} {_f(th)} "
            f"(trivial {_f(trivial)}, perfect {_f(perfect)}, {rules.gap_fraction:g} of the gap)")
    return {"passed": ok, "value": value, "trivial": trivial, "perfect": perfect, "threshold": th, "text": text}


def plateau_test(history: Sequence[Mapping] | None, task: str, metric: str, higher_is_better: bool,
                 rules: GateRules = GateRules()) -> dict:
    """Has ``history[e]["val"][task][metric]`` plateaued? ``{"passed", "recent", "total", "text", ...}``."""
    k = rules.plateau_epochs
    name = f"val {metric}"
    if history is None:
        return {"passed": None, "text": f"{name}: plateau not tested (no history given)"}
    if len(history) < k + 1:
        return {"passed": False, "epochs": len(history),
                "text": f"{name}: {len(history)} epochs < {k + 1} needed to judge a plateau over {k}"}
    try:
        v = [float(r["val"][task][metric]) for r in history]
    except (KeyError, TypeError):
        return {"passed": False, "text": f"{name}: the history has no record['val'][{task!r}][{metric!r}] each epoch"}
    if any(math.isnan(x) for x in v):
        return {"passed": False, "text": f"{name}: NaN in the validation curve"}
    best = max if higher_is_better else min
    sign = 1.0 if higher_is_better else -1.0
    best_end, best_before = best(v), best(v[:-k])
    recent = sign * (best_end - best_before)          # ≥ 0: improvement of the best value in the last k epochs
    total = sign * (best_end - v[0])                  # ≥ 0: improvement since epoch 0
    ok = recent <= rules.plateau_tol * total
    share = f"{recent / total:.1%}" if total > 0 else "n/a"
    text = (f"{name} best improved {_f(recent)} over the last {k} epochs = {share} of its total improvement "
            f"{_f(total)} ({'≤' if ok else '>'} {rules.plateau_tol:.0%})")
    return {"passed": bool(ok), "recent": recent, "total": total, "epochs": len(history), "text": text}


def gate(run_metrics: Mapping[str, Mapping[str, float]], trivial: Mapping[str, Mapping[str, float]],
         directions: Mapping[str, Mapping[str, bool]], history: Sequence[Mapping] | None = None,
         rules: GateRules = GateRules()) -> Adequacy:
    """The scale gate for one run: every metric in ``directions`` (``{task: {metric: higher_is_better}}``,
    normally the primary ones) passes the gap test against ``trivial``, and, when ``history`` is
    given, its validation curve passes the plateau test (``history=None``: not tested, said so)."""
    per_task, fails, plateau_fails, notes = {}, [], [], []
    for task, dirs in directions.items():
        for metric, hib in dirs.items():
            for what, table in (("run", run_metrics), ("trivial", trivial)):
                if metric not in table.get(task, {}):
                    raise KeyError(f"{what} metrics have no {task}/{metric}; "
                                   f"have {sorted(f'{t}/{m}' for t in table for m in table[t])}")
            g = gap_test(float(run_metrics[task][metric]), float(trivial[task][metric]), metric, hib, rules)
            p = plateau_test(history, task, metric, hib, rules)
            per_task.setdefault(task, {})[metric] = {"gap": g, "plateau": p}
            if not g["passed"]:
                fails.append(f"{task} {g['text']}")
            if p["passed"] is False:
                plateau_fails.append(f"{task} {p['text']}")
            elif p["passed"] is None:
                notes.append(f"{task} {p['text']}")
    n = sum(len(d) for d in per_task.values())
    if n == 0:
        raise ValueError("gate needs at least one task metric in directions")
    parts = [f"{n - len(fails)}/{n} primary metrics beat the trivial predictor"]
    if fails:
        parts.append("failing: " + "; ".join(fails))
    if history is not None:
        parts.append(f"{n - len(plateau_fails)}/{n} validation curves plateaued")
        if plateau_fails:
            parts.append("not plateaued: " + "; ".join(plateau_fails))
    parts += notes
    return Adequacy(not fails and not plateau_fails, "; ".join(parts), per_task)


def _run_name(rec: Mapping) -> str:
    name = rec.get("params", {}).get("name")
    return str(name) if name else Path(str(rec.get("run_dir", "run"))).name


def gate_runs(records: Sequence[Mapping], trivial: Mapping[str, Mapping[str, float]] | None = None,
              directions: Mapping[str, Mapping[str, bool]] | None = None,
              rules: GateRules = GateRules()) -> Adequacy:
    """The scale gate over run records (:func:`mtl.train_run` / :func:`mtl.runs.load_run`): each run's
    test ``metrics`` and ``history``. ``trivial`` / ``directions`` default, per run, to those of its
    spec (``record["params"]``: :func:`trivial_for_spec`, the primary metrics); when given, each run is
    judged on the tasks it has. Passed iff every run beats the trivial predictor and plateaued."""
    if not records:
        raise ValueError("gate_runs needs at least one run record")
    runs, gap_fail, plat_fail = {}, [], []
    for rec in records:
        name = _run_name(rec)
        metrics = rec["metrics"]
        triv = trivial if trivial is not None else trivial_for_spec(rec["params"])
        dirs = directions if directions is not None else primary_directions(rec["params"])
        dirs = {t: d for t, d in dirs.items() if t in metrics}
        if not dirs:
            raise ValueError(f"run {name} has none of the tasks in directions; it has {sorted(metrics)}")
        a = gate(metrics, triv, dirs, rec.get("history") or [], rules)
        runs[name] = a
        cells = [(t, m, c) for t, d in a.per_task.items() for m, c in d.items()]
        gf = [f"{t} {c['gap']['text']}" for t, m, c in cells if not c["gap"]["passed"]]
        pf = [f"{t} {c['plateau']['text']}" for t, m, c in cells if not c["plateau"]["passed"]]
        if gf:
            gap_fail.append(f"{name} ({'; '.join(gf)})")
        if pf:
            plat_fail.append(f"{name} ({'; '.join(pf)})")
    n = len(runs)
    n_gap = n - len(gap_fail)
    n_plat = n - len(plat_fail)
    parts = [f"{n_gap}/{n} runs beat the trivial predictor", f"{n_plat}/{n} plateaued"]
    if gap_fail:
        parts.append("failing: " + ", ".join(gap_fail))
    if plat_fail:
        parts.append("not plateaued: " + ", ".join(plat_fail))
    return Adequacy(not gap_fail and not plat_fail, "; ".join(parts), runs=runs)
