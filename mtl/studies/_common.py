"""Building blocks of the book's studies: single-task baselines, grid searches, Δm tables.

A *spec* is the plain dict :func:`mtl.experiment.train_run` takes; the functions here derive
specs from a base spec, run them (finished runs are loaded, not re-run) and tabulate results
against the single-task baseline.
"""
from __future__ import annotations

import copy
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..experiment import load_data, train_run
from ..metrics import delta_m, mean_se, paired_difference, relative_improvements
from ..weighting.ls import weight_grid

Metrics = dict[str, dict[str, float]]          # task -> metric -> value


def derive(base: dict, **changes) -> dict:
    """A copy of ``base`` with ``changes``; dict values (e.g. ``train``) are merged one level deep."""
    out = copy.deepcopy(base)
    for k, v in changes.items():
        out[k] = {**out.get(k, {}), **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def task_names(spec: dict) -> list[str]:
    return list(spec.get("tasks") or [t.name for t in load_data(spec["dataset"], **spec.get("dataset_kw", {})).tasks])


def directions(spec: dict, primary: bool = True) -> dict[str, dict[str, bool]]:
    """task -> metric -> higher is better (primary metrics only, by default)."""
    bundle = load_data(spec["dataset"], **spec.get("dataset_kw", {}))
    return {t: (bundle.task(t).primary_directions() if primary else dict(bundle.task(t).metrics)) for t in task_names(spec)}


def last_val(record: dict) -> Metrics:
    """Validation metrics of the last epoch (what grid search and model selection look at)."""
    return record["history"][-1]["val"]


def run_stl(out_dir, base: dict, seeds: Sequence[int], progress=None) -> dict[str, list[dict]]:
    """One single-task run per task and seed (uniform weighting of the one task): task -> records."""
    out = {}
    for t in task_names(base):
        out[t] = [train_run(out_dir, derive(base, name=f"stl-{t}-s{s}", tasks=[t], weighting="ew",
                                            weighting_kw={}, train={"seed": s})) for s in seeds]
        if progress:
            progress(f"STL {t}")
    return out


def stl_base(stl: Mapping[str, list[dict]], split: str = "test") -> Metrics:
    """The single-task baseline: per task and metric, the mean over seeds."""
    base = {}
    for t, recs in stl.items():
        ms = [r["metrics"][t] if split == "test" else last_val(r)[t] for r in recs]
        base[t] = {m: float(np.mean([x[m] for x in ms])) for m in ms[0]}
    return base


def run_seeds(out_dir, spec: dict, seeds: Sequence[int], name: str) -> list[dict]:
    return [train_run(out_dir, derive(spec, name=f"{name}-s{s}", train={"seed": s})) for s in seeds]


def grid_search(out_dir, base: dict, grid: Mapping[str, Sequence[float]], stl_val: Metrics,
                seed: int = 0) -> pd.DataFrame:
    """Train fixed loss weights over the Cartesian ``grid`` (task -> candidates) at one seed and score
    each on validation Δm against the single-task validation baseline; sorted best first."""
    tasks = task_names(base)
    missing = [t for t in tasks if t not in grid]
    if missing:
        raise ValueError(f"grid has no candidates for tasks {missing}; it has {sorted(grid)}")
    dirs = directions(base)
    rows = []
    for w in weight_grid([grid[t] for t in tasks]):
        rec = train_run(out_dir, derive(base, name=f"ls-{'_'.join(f'{x:g}' for x in w)}-s{seed}",
                                        weighting="ls", weighting_kw={"weights": list(w)}, train={"seed": seed}))
        rows.append({"weights": w, "val_delta_m": overall_delta(last_val(rec), stl_val, dirs), "run": rec["run_dir"]})
    return pd.DataFrame(rows).sort_values("val_delta_m", ascending=False, ignore_index=True)


def flat_dirs(dirs: Mapping[str, Mapping[str, bool]]) -> dict[str, bool]:
    return {f"{t}/{m}": h for t, d in dirs.items() for m, h in d.items()}


def flatten(metrics: Metrics, dirs: Mapping[str, Mapping[str, bool]]) -> dict[str, float]:
    return {f"{t}/{m}": metrics[t][m] for t, d in dirs.items() for m in d}


def overall_delta(result: Metrics, base: Metrics, dirs, convention: str = "improvement") -> float:
    """Δm% (seed 004 Eq. 5) over the metrics in ``dirs``."""
    return delta_m(flatten(result, dirs), flatten(base, dirs), flat_dirs(dirs), convention)


def per_task_improvement(result: Metrics, base: Metrics, dirs) -> dict[str, float]:
    """Each task's mean relative improvement (%) over its metrics in ``dirs``."""
    return {t: float(np.mean(list(relative_improvements(result[t], base[t], d).values()))) for t, d in dirs.items()}


def summary_table(methods: Mapping[str, list[dict]], base: Metrics, dirs, all_dirs=None,
                  convention: str = "improvement") -> pd.DataFrame:
    """One row per method: the mean of every metric over seeds, Δm% mean and standard error, seeds."""
    rows = {}
    for name, recs in methods.items():
        res = [r["metrics"] if "metrics" in r else r for r in recs]
        cols = flatten(res[0], all_dirs or dirs)
        row = {k: float(np.mean([flatten(x, all_dirs or dirs)[k] for x in res])) for k in cols}
        dm = [overall_delta(x, base, dirs, convention) for x in res]
        row["delta_m"], row["delta_m_se"] = mean_se(dm)
        row["seeds"] = len(res)
        rows[name] = row
    return pd.DataFrame(rows).T


def deltas(recs: Iterable[dict], base: Metrics, dirs) -> list[float]:
    return [overall_delta(r["metrics"], base, dirs) for r in recs]


def below_stl(method: list[dict], stl: Mapping[str, list[dict]], dirs, z: float = 2.0) -> dict[str, tuple]:
    """Per task: is the method's primary result below its seed-paired single-task result?
    Returns task -> (``"less"``/``"greater"``/``"undecided"``, mean improvement %, SE)."""
    out = {}
    for t, d in dirs.items():
        base = stl_base({t: stl[t]})
        mine = [np.mean(list(relative_improvements(r["metrics"][t], base[t], d).values())) for r in method]
        ref = [np.mean(list(relative_improvements(r["metrics"][t], base[t], d).values())) for r in stl[t]]
        out[t] = paired_difference(mine, ref, z)
    return out

