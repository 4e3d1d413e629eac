"""Section "Architectures and optimisers": weighting methods × the eight MTL architectures.

Seed 002 (LibMTL's NYUv2 grid, Tables 2–9) crosses 13 weighting methods with 8 architectures;
seed 004 §V-C (Fig. 4) compares each architecture with its own single-task variant. Here both run
on ``scenes`` (segmentation, depth, normals): every (architecture, method) cell over seeds, each
architecture's single-task variant per task, and the cost (parameters, step time, peak memory) of
one training step per cell. Claims C3 and C19 are judged from the runs.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from .. import claims, profiles, sweep
from . import _common as study
from .. import weighting as W
from ..experiment import load_data
from ..memory import step_cost
from ..metrics import delta_m, paired_difference
from ..models import create_model
from ..runs import canonical, run_id, write_json


@dataclass(frozen=True)
class Params:
    """Top-level keys of ``book/sections/architectures.yaml``."""

    spec: dict  # the base run spec (mtl.experiment.train_run)
    seeds: list[int]
    architectures: list[str]  # names in ARCHITECTURES
    methods: dict  # label -> {weighting, weighting_kw}
    cost: dict = field(default_factory=dict)  # one measured step per cell: steps, memory_limit_mb
    architecture_kw: dict = field(default_factory=dict)  # architecture -> its keyword arguments


def setup(profile: str, out_dir: str = "") -> tuple[dict, Path]:
    """This section's parameters at ``profile`` (checked against :class:`Params`) and its output folder."""
    return profiles.setup("architectures", Params, profile, out_dir)


ARCHITECTURES = ("hps", "cross_stitch", "mmoe", "mtan", "cgc", "ple", "ltb", "dselect_k")

# Seed 002 (LibMTL, "results of different combinations of optimization strategies and architectures on
# NYUv2"), Tables 2–9: one run each, ResNet-50 encoder, 200 epochs; None = OOM on a 24 GB RTX 3090.
# Columns in SEED002_COLUMNS order.
SEED002_SOURCE = "seed 002 (LibMTL NYUv2 architectures × optimisers), Tables 2–9"
SEED002_COLUMNS = ("segmentation/miou", "segmentation/pix_acc", "depth/abs_err", "depth/rel_err", "normal/mean",
                   "normal/median", "normal/within_11", "normal/within_22", "normal/within_30")
SEED002_HIGHER = (True, True, False, False, False, False, True, True, True)
SEED002_NYUV2: dict[str, dict[str, tuple | None]] = {
    'hps': {
        'ew': (54.1, 75.78, 0.3771, 0.1596, 23.53, 17.2, 34.55, 60.75, 72.06),
        'gradnorm': (53.57, 75.21, 0.3853, 0.1623, 23.32, 16.62, 35.81, 61.85, 72.73),
        'uw': (54.02, 75.66, 0.3838, 0.1573, 23.45, 16.86, 35.43, 61.32, 72.33),
        'mgda': (50.15, 73.44, 0.3839, 0.1563, 22.78, 16.05, 37.04, 63.07, 73.65),
        'dwa': (53.55, 75.42, 0.3811, 0.1589, 23.63, 17.15, 34.78, 60.71, 71.87),
        'gls': (54.46, 76.01, 0.3793, 0.1566, 22.73, 16.16, 36.76, 62.94, 73.68),
        'pcgrad': (54.03, 75.66, 0.3814, 0.157, 23.62, 17.01, 35.1, 60.96, 71.97),
        'graddrop': (53.9, 75.62, 0.3851, 0.158, 23.67, 17.04, 34.99, 60.88, 71.91),
        'imtl': (53.53, 75.46, 0.3842, 0.1578, 22.99, 16.44, 36.16, 62.28, 73.2),
        'gradvac': (53.99, 75.74, 0.3842, 0.1602, 23.51, 16.93, 35.26, 61.14, 72.17),
        'cagrad': (53.77, 75.8, 0.3836, 0.1584, 22.53, 15.86, 37.4, 63.58, 74.2),
        'nashmtl': (53.38, 75.01, 0.3814, 0.157, 22.61, 15.87, 37.3, 63.68, 74.28),
        'rlw': (54.52, 75.78, 0.389, 0.1566, 23.34, 16.83, 35.45, 61.43, 72.45),
    },
    'cross_stitch': {
        'ew': (53.14, 75.24, 0.3824, 0.1621, 23.03, 16.29, 36.77, 62.3, 72.98),
        'gradnorm': (53.7, 75.3, 0.379, 0.1591, 23.12, 16.5, 36.3, 61.95, 72.77),
        'uw': (53.39, 75.37, 0.378, 0.1583, 23.12, 16.32, 36.77, 62.29, 72.94),
        'mgda': (53.78, 75.5, 0.3758, 0.156, 22.7, 15.91, 37.53, 63.21, 73.72),
        'dwa': (52.91, 75.06, 0.3795, 0.1577, 23.19, 16.42, 36.61, 62.02, 72.72),
        'gls': (53.5, 75.46, 0.3798, 0.1576, 22.52, 15.73, 37.9, 63.6, 74.02),
        'pcgrad': (52.71, 75.1, 0.3824, 0.1607, 22.97, 16.14, 37.08, 62.66, 73.19),
        'graddrop': None,
        'imtl': (53.49, 75.65, 0.377, 0.1565, 22.81, 15.96, 37.41, 63.13, 73.65),
        'gradvac': (53.45, 75.22, 0.3787, 0.157, 23.25, 16.54, 36.34, 61.76, 72.51),
        'cagrad': (53.69, 75.17, 0.3757, 0.1503, 22.45, 15.8, 37.71, 63.52, 74.08),
        'nashmtl': (53.17, 75.12, 0.3701, 0.1542, 22.63, 15.81, 37.62, 63.48, 73.98),
        'rlw': (53.27, 75.17, 0.3772, 0.1546, 22.65, 15.84, 37.58, 63.37, 73.81),
    },
    'mmoe': {
        'ew': (53.02, 75.09, 0.3884, 0.1631, 22.96, 16.37, 36.31, 62.46, 73.3),
        'gradnorm': (53.09, 75.07, 0.3946, 0.1698, 22.93, 16.23, 36.81, 62.59, 73.32),
        'uw': (53.49, 75.38, 0.3813, 0.1605, 22.76, 15.99, 37.23, 63.16, 73.74),
        'mgda': (50.69, 73.82, 0.3772, 0.1574, 22.78, 16.22, 36.68, 62.7, 73.43),
        'dwa': (53.18, 74.7, 0.3859, 0.1613, 23.25, 16.61, 35.87, 61.9, 72.76),
        'gls': (53.35, 75.28, 0.3778, 0.1576, 22.54, 15.77, 37.7, 63.65, 74.12),
        'pcgrad': (54.24, 75.68, 0.3832, 0.1601, 22.58, 15.88, 37.42, 63.45, 73.98),
        'graddrop': None,
        'imtl': (53.83, 75.59, 0.3788, 0.1601, 22.79, 16.16, 36.88, 62.78, 73.46),
        'gradvac': (52.93, 75.04, 0.3903, 0.1565, 22.89, 16.04, 37.0, 63.03, 73.57),
        'cagrad': (53.15, 74.96, 0.3933, 0.165, 22.38, 15.66, 37.93, 63.88, 74.36),
        'nashmtl': (53.67, 75.62, 0.3885, 0.1604, 22.28, 15.76, 37.61, 63.86, 74.49),
        'rlw': (53.1, 74.77, 0.3955, 0.1696, 22.32, 15.51, 38.29, 64.15, 74.42),
    },
    'mtan': {
        'ew': (54.38, 75.84, 0.3764, 0.1561, 22.98, 16.36, 36.35, 62.44, 73.27),
        'gradnorm': (54.01, 75.67, 0.3838, 0.1554, 23.25, 16.59, 35.97, 61.89, 72.82),
        'uw': (54.01, 75.75, 0.3729, 0.1515, 23.04, 16.25, 36.79, 62.53, 73.21),
        'mgda': (51.43, 74.22, 0.3712, 0.1508, 22.2, 15.3, 38.79, 64.73, 74.89),
        'dwa': (54.82, 75.93, 0.378, 0.1582, 22.94, 16.34, 36.53, 62.44, 73.21),
        'gls': (55.16, 76.34, 0.3726, 0.1551, 22.58, 15.82, 37.63, 63.59, 74.12),
        'pcgrad': (54.63, 75.95, 0.381, 0.1585, 23.48, 17.02, 35.04, 60.99, 72.16),
        'graddrop': None,
        'imtl': (54.35, 75.84, 0.3722, 0.1553, 22.45, 15.72, 37.76, 63.85, 74.34),
        'gradvac': (53.65, 75.59, 0.3821, 0.1612, 23.43, 17.01, 35.12, 61.04, 72.21),
        'cagrad': (53.87, 75.4, 0.3815, 0.1557, 22.55, 15.91, 37.36, 63.43, 74.08),
        'nashmtl': (54.78, 75.85, 0.3788, 0.1546, 22.46, 15.6, 38.19, 64.01, 74.41),
        'rlw': (55.19, 76.13, 0.3758, 0.1568, 22.79, 16.05, 37.11, 63.08, 73.7),
    },
    'cgc': {
        'ew': (53.4, 75.07, 0.3897, 0.165, 22.17, 15.41, 38.5, 64.47, 74.76),
        'gradnorm': (53.01, 75.07, 0.3957, 0.1653, 22.17, 15.42, 38.45, 64.51, 74.81),
        'uw': (52.78, 75.08, 0.3832, 0.1559, 22.35, 15.26, 38.79, 64.58, 74.61),
        'mgda': (54.34, 76.2, 0.3799, 0.1573, 22.09, 15.41, 38.39, 64.63, 75.03),
        'dwa': (52.35, 74.9, 0.3992, 0.1694, 22.09, 15.35, 38.74, 64.55, 74.81),
        'gls': (53.36, 75.38, 0.3829, 0.1595, 22.12, 15.44, 38.42, 64.5, 74.85),
        'pcgrad': (52.9, 74.98, 0.3968, 0.1646, 22.17, 15.51, 38.25, 64.27, 74.63),
        'graddrop': None,
        'imtl': (52.77, 75.23, 0.392, 0.1593, 22.71, 15.9, 37.43, 63.41, 73.96),
        'gradvac': (53.06, 75.01, 0.4, 0.1666, 22.22, 15.4, 38.34, 64.58, 74.77),
        'cagrad': (53.61, 74.94, 0.3952, 0.1644, 22.18, 15.47, 38.26, 64.41, 74.77),
        'nashmtl': None,
        'rlw': (53.42, 75.21, 0.3916, 0.1646, 21.78, 15.09, 39.21, 65.22, 75.43),
    },
    'ple': {
        'ew': (53.22, 74.89, 0.4002, 0.1658, 22.04, 15.17, 38.75, 65.24, 75.42),
        'gradnorm': (53.17, 74.98, 0.3809, 0.1601, 21.96, 15.12, 39.25, 65.05, 75.18),
        'uw': (53.13, 74.89, 0.3767, 0.1536, 22.27, 15.39, 38.52, 64.47, 74.72),
        'mgda': (53.55, 75.42, 0.3985, 0.1663, 22.07, 15.35, 38.58, 64.73, 75.02),
        'dwa': (53.06, 75.0, 0.385, 0.1561, 21.97, 15.21, 38.92, 64.98, 75.25),
        'gls': (53.28, 75.33, 0.3736, 0.1549, 22.14, 15.49, 38.43, 64.22, 74.58),
        'pcgrad': (52.99, 74.93, 0.3848, 0.1592, 22.55, 15.56, 38.29, 63.9, 74.17),
        'graddrop': None,
        'imtl': (53.48, 75.58, 0.3876, 0.1564, 21.79, 15.04, 39.28, 65.43, 75.59),
        'gradvac': (53.03, 74.96, 0.3926, 0.1594, 22.02, 15.36, 38.72, 64.52, 74.86),
        'cagrad': (52.76, 75.11, 0.3923, 0.1586, 22.12, 15.58, 38.14, 64.16, 74.66),
        'nashmtl': (50.8, 73.84, 0.3813, 0.1562, 22.28, 15.57, 37.9, 64.3, 74.78),
        'rlw': (52.24, 74.08, 0.3863, 0.1621, 22.26, 15.39, 38.78, 64.24, 74.46),
    },
    'ltb': {
        'ew': (52.36, 74.75, 0.385, 0.1611, 23.26, 16.6, 36.21, 61.69, 72.47),
        'gradnorm': (51.93, 74.6, 0.3854, 0.1618, 23.25, 16.54, 36.27, 61.82, 72.55),
        'uw': (52.19, 74.68, 0.3886, 0.1576, 23.32, 16.47, 36.46, 61.81, 72.42),
        'mgda': (52.85, 74.68, 0.3849, 0.1585, 22.97, 16.13, 37.11, 62.67, 73.18),
        'dwa': (52.25, 74.5, 0.3865, 0.1579, 23.39, 16.7, 35.95, 61.45, 72.21),
        'gls': (52.97, 74.88, 0.3797, 0.1536, 22.9, 15.98, 37.44, 62.93, 73.34),
        'pcgrad': (52.4, 74.83, 0.3847, 0.16, 23.26, 16.58, 36.17, 61.76, 72.55),
        'graddrop': None,
        'imtl': (52.74, 75.08, 0.3783, 0.1579, 22.97, 16.21, 36.91, 62.57, 73.22),
        'gradvac': (52.35, 74.81, 0.3817, 0.1593, 23.36, 16.62, 36.1, 61.59, 72.33),
        'cagrad': (53.25, 75.36, 0.3711, 0.1567, 22.65, 15.94, 37.42, 63.22, 73.79),
        'nashmtl': None,
        'rlw': (52.62, 74.6, 0.3829, 0.1622, 22.95, 15.94, 37.67, 62.85, 73.16),
    },
    'dselect_k': {
        'ew': (54.03, 75.37, 0.3854, 0.1597, 23.45, 16.88, 35.37, 61.23, 72.22),
        'gradnorm': (53.54, 75.43, 0.3845, 0.1625, 23.05, 16.46, 36.19, 62.22, 73.07),
        'uw': (54.34, 75.55, 0.3796, 0.1587, 23.17, 16.55, 36.07, 61.96, 72.79),
        'mgda': (53.88, 75.72, 0.3874, 0.1613, 22.25, 15.63, 37.99, 63.99, 74.48),
        'dwa': (53.59, 75.02, 0.3849, 0.1621, 22.51, 15.32, 38.82, 64.15, 74.09),
        'gls': (54.76, 75.96, 0.3801, 0.1569, 22.74, 16.03, 37.05, 63.18, 73.73),
        'pcgrad': (53.37, 74.87, 0.3844, 0.1611, 22.44, 15.79, 37.69, 63.53, 73.96),
        'graddrop': None,
        'imtl': (53.49, 75.67, 0.373, 0.1526, 22.37, 15.65, 37.89, 64.0, 74.44),
        'gradvac': (53.68, 75.39, 0.3811, 0.1588, 23.16, 16.5, 36.18, 62.02, 72.8),
        'cagrad': (53.34, 75.42, 0.3886, 0.1616, 22.61, 16.06, 37.07, 63.15, 73.89),
        'nashmtl': (53.64, 74.92, 0.4014, 0.1653, 22.59, 15.77, 37.63, 63.69, 74.14),
        'rlw': (52.25, 74.92, 0.3807, 0.1561, 22.47, 15.73, 37.74, 63.75, 74.16),
    },
}


def paper_delta_table(reference: str = "ew") -> pd.DataFrame:
    """Seed 002's Δm% (improvement, all nine metrics) of each method against HPS + ``reference``
    (seed 002 has no single-task runs); rows methods, columns architectures, NaN = OOM."""
    higher = dict(zip(SEED002_COLUMNS, SEED002_HIGHER))
    base = dict(zip(SEED002_COLUMNS, SEED002_NYUV2["hps"][reference]))
    return pd.DataFrame({a: {m: (np.nan if v is None else delta_m(dict(zip(SEED002_COLUMNS, v)), base, higher))
                             for m, v in rows.items()} for a, rows in SEED002_NYUV2.items()})


def _method_spec(base: dict, arch: str, cfg: dict, method: dict) -> dict:
    return study.derive(base, architecture=arch, architecture_kw=cfg.get("architecture_kw", {}).get(arch, {}),
                        weighting=method["weighting"], weighting_kw=method.get("weighting_kw", {}))


def train_or_error(out_dir, spec: dict) -> dict:
    """The record of one cell's run, or ``{"error": message}`` if it cannot train (reported, as seed 002
    reports OOM). A job function: the run is trained (or loaded) in the worker that runs the job."""
    try:
        return sweep.train(out_dir, spec)()
    except Exception as e:  # noqa: BLE001 - a failing cell is a result of the grid, shown in the table
        return {"error": f"{type(e).__name__}: {e}"}


def _cell(recs: list[dict]) -> list[dict] | str:
    """A cell's records, or the error of its first failed seed."""
    return next((r["error"] for r in recs if "error" in r), recs)


def run_grid(out_dir, cfg: dict, progress=None, executor=None) -> dict:
    """Every architecture's single-task variant (per task, per seed) and every (architecture, method) cell (one stage).

    ``cfg``: ``spec`` (base run spec), ``seeds``, ``architectures``, ``methods`` (label -> {weighting,
    weighting_kw}), optional ``architecture_kw`` (arch -> kwargs). Failed cells hold their error text.
    """
    base, seeds = cfg["spec"], list(cfg["seeds"])
    archs, methods = list(cfg["architectures"]), dict(cfg["methods"])
    bad = sorted(set(archs) - set(ARCHITECTURES))
    if bad:
        raise ValueError(f"unknown architectures {bad}; valid: {list(ARCHITECTURES)}")
    tasks, plan = study.task_names(base), {}
    for a in archs:
        a_spec = study.derive(base, architecture=a, architecture_kw=cfg.get("architecture_kw", {}).get(a, {}))
        plan.update({("stl", a, t): study.train_jobs(out_dir, study.seed_specs(
                         study.derive(a_spec, tasks=[t], weighting="ew", weighting_kw={}), seeds, f"{a}-stl-{t}"))
                     for t in tasks})
        plan.update({("mtl", a, m): [sweep.Job(train_or_error, str(out_dir), (s,), label=s["name"]) for s in
                                     study.seed_specs(_method_spec(base, a, cfg, spec), seeds, f"{a}-{m}")]
                     for m, spec in methods.items()})
    recs = study.run_groups(plan, executor)
    stl = {a: {t: recs["stl", a, t] for t in tasks} for a in archs}
    mtl = {a: {m: _cell(recs["mtl", a, m]) for m in methods} for a in archs}
    if progress:
        progress(", ".join(archs))
    dirs = study.directions(base)
    return {"stl": stl, "mtl": mtl, "dirs": dirs, "seeds": seeds, "archs": archs, "methods": list(methods),
            "vanilla": study.stl_base(stl["hps" if "hps" in stl else archs[0]]),
            "own": {a: study.stl_base(stl[a]) for a in archs}}


def cell_deltas(result: dict, arch: str, method: str, reference: str = "own") -> list[float]:
    """Δm% per seed of one cell against the architecture's own single-task variant (``"own"``) or the
    HPS single-task runs (``"vanilla"``: a plain network per task; the first architecture without HPS)."""
    recs = result["mtl"][arch][method]
    if isinstance(recs, str):
        return []
    base = result["own"][arch] if reference == "own" else result["vanilla"]
    return study.deltas(recs, base, result["dirs"])


def delta_table(result: dict, reference: str = "own", stat: str = "mean") -> pd.DataFrame:
    """Rows methods, columns architectures: mean (or SE) of Δm% over seeds; NaN where the cell failed."""
    def one(a, m):
        d = cell_deltas(result, a, m, reference)
        if not d:
            return np.nan
        return (float(np.mean(d)) if stat == "mean"
                else float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else np.nan)
    return pd.DataFrame({a: {m: one(a, m) for m in result["methods"]} for a in result["archs"]})


def failures(result: dict) -> dict[tuple[str, str], str]:
    return {(a, m): r for a, row in result["mtl"].items() for m, r in row.items() if isinstance(r, str)}


def arch_vs_stl(result: dict, method: str = "ew") -> pd.DataFrame:
    """Seed 004 Fig. 4 data: per architecture and task, the improvement (%) over the vanilla single-task
    network of the architecture's own single-task variant and of its multi-task model (``method``), per seed."""
    rows, van, dirs = [], result["vanilla"], result["dirs"]
    for a in result["archs"]:
        mtl = result["mtl"][a][method]
        for i, s in enumerate(result["seeds"]):
            for t in dirs:
                own = study.per_task_improvement(result["stl"][a][t][i]["metrics"], van, {t: dirs[t]})[t]
                rows.append({"architecture": a, "task": t, "seed": s, "model": f"{a} single-task",
                             "kind": "single-task", "improvement %": own})
                if not isinstance(mtl, str):
                    v = study.per_task_improvement(mtl[i]["metrics"], van, {t: dirs[t]})[t]
                    rows.append({"architecture": a, "task": t, "seed": s, "model": f"{a} {method}",
                                 "kind": "multi-task", "improvement %": v})
    return pd.DataFrame(rows)


COST_COLUMNS = ("architecture", "method", "params", "step_ms", "peak_mb", "oom", "device", "error")


def cell_costs(out_dir, cfg: dict) -> pd.DataFrame:
    """Parameters, median step time and peak memory of one training step per (architecture, method)
    (:func:`mtl.memory.step_cost`); cached in ``out_dir/costs-<hash>.json``. A cell over
    ``cost.memory_limit_mb`` or out of CUDA memory is ``oom``; a cell that fails otherwise keeps its error.
    Timings and memory peaks: measured in this process, one cell after another, never in a sweep."""
    cost = cfg.get("cost", {})
    key = {"spec": cfg["spec"], "archs": cfg["architectures"], "methods": cfg["methods"],
           "architecture_kw": cfg.get("architecture_kw", {}), "cost": cost}
    path = Path(out_dir) / f"{run_id({'name': 'costs', **json.loads(canonical(key))})}.json"
    if path.exists():
        return pd.DataFrame(json.loads(path.read_text()))[list(COST_COLUMNS)]
    spec = cfg["spec"]
    bundle = load_data(spec["dataset"], **spec.get("dataset_kw", {})).select(study.task_names(spec))
    limit = cost.get("memory_limit_mb")
    rows = []
    for a, (m, ms) in itertools.product(cfg["architectures"], cfg["methods"].items()):
        row = {"architecture": a, "method": m}
        try:
            c = step_cost(lambda: create_model(a, spec["backbone"], bundle.tasks,
                                               architecture_kw=cfg.get("architecture_kw", {}).get(a, {}),
                                               backbone_kw=spec.get("backbone_kw")),
                          bundle, W.create(ms["weighting"], **ms.get("weighting_kw", {})),
                          batch_size=spec.get("train", {}).get("batch_size", 8), steps=cost.get("steps", 3),
                          memory_limit_bytes=None if limit is None else int(limit * 2**20))
            row.update(params=c.params, step_ms=None if c.step_time_s is None else 1e3 * c.step_time_s,
                       peak_mb=None if c.peak_bytes is None else c.peak_bytes / 2**20, oom=c.oom, device=c.device,
                       error="")
        except Exception as e:  # noqa: BLE001 - reported in the table like seed 002's OOM cells
            row.update(params=None, step_ms=None, peak_mb=None, oom=False, device="", error=f"{type(e).__name__}: {e}")
        rows.append(row)
    write_json(path, rows)
    return pd.DataFrame(rows)[list(COST_COLUMNS)]


def rank_correlation(table: pd.DataFrame) -> pd.DataFrame:
    """Spearman correlation between architectures (columns) of their method rankings (rows), over the
    methods both have (pairs with fewer than 3 common methods are NaN)."""
    cols = list(table.columns)
    out = pd.DataFrame(np.nan, index=cols, columns=cols)
    for a, b in itertools.combinations(cols, 2):
        both = table[[a, b]].dropna()
        if len(both) >= 3:
            out.loc[a, b] = out.loc[b, a] = float(spearmanr(both[a], both[b]).statistic)
    for a in cols:
        out.loc[a, a] = 1.0
    return out


def mean_off_diagonal(corr: pd.DataFrame) -> float:
    m = corr.to_numpy(float)
    off = m[~np.eye(len(m), dtype=bool)]
    off = off[np.isfinite(off)]
    return float(off.mean()) if off.size else float("nan")


def c3_architectures(result: dict, method: str = "ew", z: float = 2.0) -> dict:
    """C3 (seed 004 §V-C, Fig. 4): architectures mitigate but do not remove the imbalance.

    Part 1 ("not removed"): an architecture keeps the imbalance when some task of its multi-task
    model (``method``) is below its own single-task variant by > ``z`` SE (seed-paired); supports if
    most non-HPS architectures do, contradicts if most are above on every task. Part 2 ("mitigate"):
    an architecture's Δm against its own STL beats HPS's Δm against HPS's STL by > ``z`` SE (paired by
    seed); supports if most do, contradicts if most are worse by that margin.
    """
    archs = [a for a in result["archs"] if a != "hps" and not isinstance(result["mtl"][a][method], str)]
    if "hps" not in result["archs"] or not archs:
        return claims.verdict("C3", "inconclusive", paper=_C3_PAPER, ours="HPS or other architectures missing",
                              evidence="needs HPS and at least one other architecture")
    keeps, removes, better, worse, lines = [], [], [], [], []
    hps = cell_deltas(result, "hps", method)
    for a in archs:
        below = study.below_stl(result["mtl"][a][method], result["stl"][a], result["dirs"], z)
        if any(s == "less" for s, *_ in below.values()):
            keeps.append(a)
        if all(s == "greater" for s, *_ in below.values()):
            removes.append(a)
        side, d, se = paired_difference(cell_deltas(result, a, method), hps, z)
        (better if side == "greater" else worse if side == "less" else []).append(a)
        lines.append(f"{a} {np.mean(cell_deltas(result, a, method)):+.1f}% (vs HPS {d:+.1f}±{se:.1f})")
    n = len(archs)
    part1 = "supports" if len(keeps) > n / 2 else "contradicts" if len(removes) > n / 2 else "inconclusive"
    part2 = "supports" if len(better) > n / 2 else "contradicts" if len(worse) > n / 2 else "inconclusive"
    return claims.verdict(
        "C3", claims.combine(part1, part2), paper=_C3_PAPER,
        ours=(f"Δm vs own single-task ({method}): HPS {np.mean(hps):+.1f}%, " + ", ".join(lines)),
        evidence=(f"part 1 ({part1}): architectures with a task below their own STL by > {z:g} SE over "
                  f"{len(result['seeds'])} seeds: {keeps or 'none'}, above on every task: {removes or 'none'} "
                  f"(of {n}); part 2 ({part2}): gap to own STL smaller than HPS's: {better or 'none'}, larger: "
                  f"{worse or 'none'}; the reliance on loss weights is not tested here"),
        setting=f"scenes, {method}")


_C3_PAPER = ("MTAN, MTI-Net and InvPT narrow the gap of vanilla MTL but stay below their own single-task "
             "variants on PASCAL-Context (e.g. InvPT −3.74% / −6.05% vs vanilla −6.77% / −8.37%)")


def _reversals(result: dict, z: float) -> list[tuple]:
    """(m1, m2, a, b): m1 beats m2 by > z SE on architecture a and m2 beats m1 by > z SE on b (seed-paired)."""
    sides = {}
    for a in result["archs"]:
        for m1, m2 in itertools.combinations(result["methods"], 2):
            d1, d2 = cell_deltas(result, a, m1), cell_deltas(result, a, m2)
            if d1 and d2:
                sides[(a, m1, m2)] = paired_difference(d1, d2, z)[0]
    out = []
    for (a, m1, m2), s in sides.items():
        for b in result["archs"]:
            if s == "greater" and sides.get((b, m1, m2)) == "less":
                out.append((m1, m2, a, b))
            elif s == "less" and sides.get((b, m1, m2)) == "greater":
                out.append((m2, m1, a, b))
    return out


def _always_best(result: dict, z: float) -> str | None:
    """The method that beats every other method by > z SE on every architecture, if one does."""
    for m in result["methods"]:
        ok = True
        for a in result["archs"]:
            dm = cell_deltas(result, a, m)
            for o in result["methods"]:
                do = cell_deltas(result, a, o)
                if o != m and (not dm or not do or paired_difference(dm, do, z)[0] != "greater"):
                    ok = False
        if ok:
            return m
    return None


def c19_no_single_best(result: dict, z: float = 2.0) -> dict:
    """C19 (seed 002 Tables 2–9): no single method is best across architectures; rankings change.

    Supports if some pair of methods reverses order between two architectures, each order by > ``z``
    SE over seeds; contradicts if one method beats all others by that margin on every architecture;
    otherwise inconclusive. The mean Spearman correlation of the method rankings between
    architectures (ours and seed 002's) is reported as context.
    """
    table = delta_table(result)
    best = table.idxmax().to_dict()
    rev, champ = _reversals(result, z), _always_best(result, z)
    v = "supports" if rev else "contradicts" if champ else "inconclusive"
    paper = paper_delta_table()
    pbest = paper.idxmax().to_dict()
    return claims.verdict(
        "C19", v,
        paper=(f"seed 002: best method per architecture {pbest}; mean Spearman rank correlation between "
               f"architectures {mean_off_diagonal(rank_correlation(paper)):+.2f} over 13 methods"),
        ours=(f"best method per architecture (mean Δm) {best}; mean Spearman rank correlation "
              f"{mean_off_diagonal(rank_correlation(table)):+.2f} over {len(result['methods'])} methods"),
        evidence=(f"{len(rev)} seed-paired rank reversals beyond {z:g} SE"
                  + (f" (e.g. {rev[0][0]} > {rev[0][1]} on {rev[0][2]} but < on {rev[0][3]})" if rev else "")
                  + (f"; {champ} best on every architecture" if champ else "; no method best everywhere by that margin")
                  + f"; {len(result['seeds'])} seeds"),
        setting="scenes")
