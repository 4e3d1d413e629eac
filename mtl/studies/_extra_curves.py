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
from typing import Sequence

import numpy as np
import torch

from . import _common as study
from .. import sweep
from .. import weighting as W
from ..curves import ExtraStep, curve_model
from ..experiment import RunSpec, load_model, save_state
from ..fronts import evaluate_grid
from ..runs import run_id, run_or_load
from ..train import TrainConfig, fit, seed_everything

ENDPOINT_OFFSET = 1000          # the second end point's seed is seed + 1000 (as mtl.curves.train_endpoints)


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
