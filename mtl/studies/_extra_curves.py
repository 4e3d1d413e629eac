"""Recorded EXTRA runs shared by the book's EXTRA sections (seed 000 §5): stage-1 end points and stage-2 curves.

A helper, not a section (hence the leading underscore: no page or profile file goes with it).

Stage 1 is an ordinary :func:`mtl.experiment.train_run` with ``save_model`` (so its network is on
disk and any curve with the same seed reuses it); stage 2 is a :func:`mtl.runs.run_or_load` record
whose parameters name its end-point runs, and which stores the curve's weights (``curve.pt``) and
its losses and metrics along t (validation and test, BatchNorm recalibrated at every t as EXTRA's
``evaluate_path.py`` does).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from . import _common as study
from .. import adequacy as A
from .. import profiles
from .. import stats as ST
from .. import sweep
from .. import weighting as W
from ..curves import ExtraStep, curve_model
from ..experiment import RunSpec, load_model, save_state
from ..fronts import evaluate_grid
from ..runs import run_id, run_or_load
from ..train import TrainConfig, fit, seed_everything

ENDPOINT_OFFSET = 1000          # the second end point's seed is seed + 1000 (as mtl.curves.train_endpoints)


# seed 000's Δm metric sets: Table 1 (NYUv2: mIoU, pixel accuracy; abs. and rel. depth error; the five
# normal columns) and Table 2 (CityScapes: the first four) report depth by its absolute and relative error
# only; our depth task also records RMSE (the scale gate's primary depth metric), left out of Δm here.
NOT_IN_PAPER = {("depth", "rmse")}


def paper_dirs(spec: dict) -> dict[str, dict[str, bool]]:
    """task -> metric -> higher is better, over the metrics seed 000's Δm averages (every metric of each
    task of ``spec`` but :data:`NOT_IN_PAPER`)."""
    return {t: {m: h for m, h in d.items() if (t, m) not in NOT_IN_PAPER}
            for t, d in study.directions(spec, primary=False).items()}


def bundle_of(spec: dict):
    """The dataset of ``spec`` restricted to its tasks."""
    return RunSpec.from_dict(spec).build_data()


def load_network(spec: dict, rec: dict):
    """The network a ``save_model`` run recorded (``<run>/model.pt``), in training mode like a fresh one."""
    return load_model(rec["run_dir"]).train()


def endpoint_specs(spec: dict, seed: int, weighting_kw: Sequence[dict] | None = None, tag: str = "") -> list[dict]:
    """EXTRA-L stage 1 (seed 000 §5): the specs of two networks trained with ``spec``'s weighting at
    seeds ``seed`` and ``seed + 1000`` (``weighting_kw``: one dict per end point, e.g. LS weights
    favouring E1 or E2), recorded with their weights; shared by every curve with the same arguments."""
    kws = list(weighting_kw) if weighting_kw is not None else [spec.get("weighting_kw", {})] * 2
    if len(kws) != 2:
        raise ValueError(f"weighting_kw needs one dict per end point (2), got {len(kws)}")
    return [study.derive(spec, name=f"end{k}{tag}-s{seed}", save_model=True, weighting_kw=kw,
                         train={"seed": seed + ENDPOINT_OFFSET * k})
            for k, kw in enumerate(kws)]


def curve_run(out_dir, spec: dict, ends: Sequence[dict], name: str, n_points: int, stage2: dict,
              groups: Sequence[Sequence[int]] | None = None, ts: Sequence[float] = (0, 0.25, 0.5, 0.75, 1),
              alpha: float = 0.5, bn_batches: int = 4, family: str = "nurbs", init: str = "random",
              save_curve: bool = True) -> dict:
    """EXTRA stage 2 (seed 000 Eq. 7, :class:`mtl.curves.ExtraStep`) on the recorded end points ``ends``.

    Metrics: ``{"t": ts, split: {"losses": [P][T], "metrics": [P] × {task: {metric: v}}}}`` for val
    and test. ``groups`` (E1, E2[, E3]) are task indices; None is the two-task default.
    ``save_curve`` writes the curve's weights (``curve.pt``, for :func:`load_curve`); it is not part of the run id.
    A job of its own (:func:`curve_job`): module level, its arguments plain data.
    """
    params = {"name": name, "kind": "extra-stage2", "endpoints": [Path(r["run_dir"]).name for r in ends],
              "spec": {k: spec[k] for k in ("dataset", "dataset_kw", "tasks", "architecture", "backbone",
                                            "backbone_kw") if k in spec},
              "n_points": int(n_points), "family": family, "stage2": dict(stage2), "alpha": float(alpha),
              "groups": None if groups is None else [list(map(int, g)) for g in groups],
              "ts": [float(t) for t in ts], "bn_batches": int(bn_batches), "init": init}

    def run():
        data = bundle_of(spec)
        cfg = TrainConfig(**stage2)
        seed_everything(cfg.seed + 1)
        curve = curve_model([load_network(spec, r) for r in ends], family, n_points, init=init)
        hist = fit(curve, data, W.create("ls"), cfg, step_rule=ExtraStep(groups=params["groups"], alpha=alpha))
        if save_curve:
            save_state(Path(out_dir) / run_id(params) / "curve.pt", curve.state_dict())
        out = {"t": params["ts"]}
        for split in ("val", "test"):
            ev = evaluate_grid(curve, data, params["ts"], split, batch_size=cfg.batch_size * 4,
                               bn_split="train", bn_batches=bn_batches)
            out[split] = {"losses": np.asarray(ev.losses).tolist(), "metrics": ev.metrics}
        return {"metrics": out, "history": hist.epochs, "info": hist.info}

    return run_or_load(out_dir, params, run)


def curve_job(out_dir, spec: dict, ends: Sequence[dict], name: str, n_points: int, stage2: dict, **kw) -> sweep.Job:
    """The job of :func:`curve_run` (a stage-2 job: ``ends`` are finished end-point records)."""
    return sweep.Job(curve_run, str(out_dir), (spec, list(ends), name, n_points, dict(stage2)), kw, label=name)


def load_curve(spec: dict, ends: Sequence[dict], rec: dict):
    """The trained curve of a :func:`curve_run` record (end points from ``ends``, weights from ``curve.pt``)."""
    p = rec["params"]
    curve = curve_model([load_network(spec, r) for r in ends], p["family"], p["n_points"], init="linear")
    curve.load_state_dict(torch.load(Path(rec["run_dir"]) / "curve.pt", weights_only=True))
    return curve


def at_t(rec: dict, t: float, split: str = "test") -> dict:
    """``{task: {metric: v}}`` of a curve record at the recorded point nearest to ``t``."""
    ts = np.asarray(rec["metrics"]["t"])
    return rec["metrics"][split]["metrics"][int(np.argmin(np.abs(ts - t)))]


# ----------------------------------------------------------------------------- the scale gate of these studies
#
# The EXTRA sections gate three kinds of record: ordinary runs (single-task baselines, base weightings,
# stage-1 end points: :func:`mtl.adequacy.gate_runs`), curve records (stage 2: the metrics at the point
# the section reads, with the stage-2 validation history, :func:`mtl.adequacy.gate`) and records
# without a history (:func:`gate_metrics` with ``history=None`` states that the plateau is untested
# and fails it: a claim is decided only on runs whose curves are known to have plateaued).


def gate_reference(spec: dict, out_dir=None) -> tuple[dict, dict]:
    """``(trivial metrics, primary directions)`` of ``spec``'s clean dataset (recorded under ``out_dir``)."""
    return A.trivial_for_spec(spec, out_dir=out_dir), A.primary_directions(spec)


def _higher(cell: dict) -> bool:
    return cell["perfect"] > cell["trivial"]


SHOWN = 3          # failing (task, metric) cells a gate summary names


def gate_summary(runs: Mapping[str, A.Adequacy]) -> str:
    """One short line for many gated runs: how many pass each test and, per failing (task, metric),
    the best value reached beside the value needed."""
    n = len(runs)
    cells = [(t, m, c) for a in runs.values() for t, d in a.per_task.items() for m, c in d.items()]
    gap_ok = sum(all(c["gap"]["passed"] for d in a.per_task.values() for c in d.values()) for a in runs.values())
    plat_ok = sum(all(c["plateau"]["passed"] is True for d in a.per_task.values() for c in d.values())
                  for a in runs.values())
    short = {}
    for t, m, c in cells:
        g = c["gap"]
        if not g["passed"]:
            best = short.get((t, m))
            better = best is None or ((g["value"] > best["value"]) == _higher(g))
            short[t, m] = g if better else best
    parts = [f"{gap_ok}/{n} runs beat the trivial predictor", f"{plat_ok}/{n} plateaued"]
    for (t, m), g in list(short.items())[:SHOWN]:
        rel = "<" if _higher(g) else ">"
        parts.append(f"best failing {t} {m} {g['value']:.4g} {rel} {g['threshold']:.4g} needed "
                     f"(trivial {g['trivial']:.4g})")
    if len(short) > SHOWN:
        parts.append(f"and {len(short) - SHOWN} more task metrics short of the gap")
    why = sorted({c["plateau"]["text"].split(": ", 1)[-1] for _, _, c in cells
                  if c["plateau"]["passed"] is not True and "epochs <" in c["plateau"]["text"]})
    if why:
        parts.append("; ".join(why[:2]))
    return ", ".join(parts[:2]) + ("; " + "; ".join(parts[2:]) if parts[2:] else "")


def gate_records(label: str, records: Sequence[dict], trivial: dict, dirs: dict) -> A.Adequacy:
    """The scale gate over ordinary run records (test metrics and validation history), summarised."""
    a = A.gate_runs(records, trivial, dirs)
    return A.Adequacy(a.passed, f"{label}: {gate_summary(a.runs)}", runs={f"{label}/{k}": v for k, v in a.runs.items()})


def gate_metrics(label: str, items: Sequence[tuple[str, dict, list | None]], trivial: dict, dirs: dict) -> A.Adequacy:
    """The scale gate over ``(name, test metrics, validation history or None)`` items (curve points, grids).
    An item without a history fails the plateau test (its curve is not known to have plateaued)."""
    runs = {}
    for name, metrics, history in items:
        d = {t: x for t, x in dirs.items() if t in metrics}
        runs[f"{label}/{name}"] = A.gate(metrics, trivial, d, history if history is not None else [])
    text = gate_summary(runs)
    if any(h is None for _, _, h in items):
        text += "; no validation history recorded for these points, so their plateau cannot be judged"
    return A.Adequacy(all(a.passed for a in runs.values()), f"{label}: {text}", runs=runs)


def gate_all(parts: Sequence[A.Adequacy]) -> A.Adequacy:
    """One claim's gate over its groups of runs: passed iff every group passed."""
    runs = {k: v for p in parts for k, v in p.runs.items()}
    return A.Adequacy(all(p.passed for p in parts), " | ".join(p.detail for p in parts), runs=runs)


def scale_needed(adequacy: A.Adequacy, epochs: int | None, gpu: str | None = None) -> str | None:
    """What scale would pass, computed from the gate's numbers (None when it passed): the values each
    failing primary metric must reach beside the best reached, and how many validation curves were
    still improving at the last epoch ("more epochs than N")."""
    if adequacy.passed:
        return None
    cells = [c for a in adequacy.runs.values() for d in a.per_task.values() for c in d.values()]
    gaps = [c["gap"] for c in cells if not c["gap"]["passed"]]
    rising = sum(1 for c in cells if c["plateau"]["passed"] is False and "recent" in c["plateau"])
    short = sum(1 for c in cells if c["plateau"]["passed"] is False and "epochs <" in c["plateau"].get("text", ""))
    out = []
    if gaps:
        def shortfall(g):   # share of the needed improvement still missing
            return abs(g["threshold"] - g["value"]) / max(abs(g["threshold"] - g["trivial"]), 1e-12)
        worst = max(gaps, key=shortfall)
        out.append(f"{len(gaps)}/{len(cells)} primary test metrics short of a quarter of the trivial → perfect gap "
                   f"(furthest: {worst['value']:.4g} where {worst['threshold']:.4g} is needed)")
    if rising:
        out.append(f"{rising}/{len(cells)} validation curves still improving over the last "
                   f"{A.GateRules().plateau_epochs} epochs" + (f" → more epochs than {epochs}" if epochs else ""))
    if short:
        out.append(f"{short}/{len(cells)} curves too short or unrecorded for the plateau rule "
                   f"(at least {A.GateRules().plateau_epochs + 1} recorded epochs)")
    text = "; ".join(out) or "the gate failed"
    return text + (f"; the gpu profile ({gpu}) is sized for this — needs new runs" if gpu else "; needs new runs")


def profile_scale(cfg: dict) -> str:
    """A short description of a profile's training scale (epochs, images, network width) for ``scale_needed``."""
    spec = cfg.get("spec", {})
    tr, kw = spec.get("train") or cfg, spec.get("dataset_kw") or cfg     # a spec's, or top-level keys (fronts)
    bits = [f"{tr['epochs']} epochs" if "epochs" in tr else None,
            f"{kw['height']}×{kw['width']} images" if "height" in kw else None,
            f"{kw['train_scenes']} train scenes" if "train_scenes" in kw else None,
            f"{kw['n_train']} train samples" if "n_train" in kw else None,
            f"width {spec['backbone_kw']['width']}" if "width" in spec.get("backbone_kw", {}) else None]
    return ", ".join(b for b in bits if b)


# ----------------------------------------------------------------------------- preregistered rules


def rules_of(cfg: dict, names: Sequence[str]) -> dict[str, ST.Rule]:
    """The preregistered rules ``names`` of a profile (``rules:`` under ``common:`` in the section's yaml)."""
    given = cfg.get("rules") or {}
    missing = [n for n in names if n not in given]
    if missing:
        raise ValueError(f"the profile has no preregistered rule(s) {missing}; give them under 'common: rules:' "
                         f"in the section's yaml (it has {sorted(given)})")
    return {n: ST.Rule.from_dict(given[n]) for n in names}


def combined_rule(c: ST.Combined) -> dict:
    """The rule of a combined claim as ``claims.json`` records it, with a ``kind`` the claims page shows."""
    kinds = "/".join(dict.fromkeys(p.rule.kind for p in c.parts))
    return {"kind": f"{kinds} ({len(c.parts)} parts, {c.how}, Holm)", **c.to_dict()["rule"]}


def parts_record(names: Sequence[str], c: ST.Combined) -> list[dict]:
    """Each part of a combined claim after Holm: name, verdict, estimate, CI (null where undefined), seeds needed."""
    def num(x):        # JSON has no NaN: an undefined estimate or bound (one seed) is null
        return float(x) if np.isfinite(x) else None

    return [{"part": n, "verdict": d.verdict, "estimate": num(d.estimate), "ci": [num(d.ci[0]), num(d.ci[1])],
             "n": d.n, "seeds_needed": d.seeds_needed} for n, d in zip(names, c.parts)]


TRIVIAL_ROW = "Trivial predictor (constant)"


def trivial_row(spec: dict, base: dict, dirs: dict, out_dir=None, convention: str = "drop") -> dict:
    """The trivial predictors' test metrics (``dirs``' metrics, flattened) and their Δm against ``base``:
    the row a section's first table shows beside its single-task baselines."""
    triv = A.trivial_for_spec(spec, out_dir=out_dir)
    row = study.flatten(triv, dirs)
    row["delta_m"], row["delta_m_se"], row["seeds"] = study.overall_delta(triv, base, dirs, convention), float("nan"), 0
    return row


def gpu_scale(section: str) -> str | None:
    """The training scale of a section's ``gpu`` profile (:func:`profile_scale`), None when it has none."""
    return profile_scale(profiles.load(section, "gpu")) if "gpu" in profiles.defined(section) else None


def seeds_needed(c: ST.Combined) -> int | None:
    """Seeds an inconclusive combined claim needs: the largest over its parts that do not support after
    Holm (a part Holm demoted from a decision counts at its own effect, :meth:`Decision.seeds_needed_at`);
    None when the claim is decided or some pending part's effect is 0, below its floor or out of reach."""
    if c.verdict != "inconclusive":
        return None
    need = []
    for d in c.parts:
        if d.verdict == "supports":
            continue
        n = d.seeds_needed if d.seeds_needed is not None else d.seeds_needed_at(d.estimate)
        if n is None:
            return None
        need.append(max(n, d.n + 1) if d.seeds_needed is None else n)
    return max(need) if need else None
