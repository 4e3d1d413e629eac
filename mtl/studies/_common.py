"""Building blocks of the book's studies: single-task baselines, grid searches, Δm tables.

A *spec* is the plain dict :func:`mtl.experiment.train_run` takes; the functions here derive
specs from a base spec (``*_specs``), run the jobs of a stage in one sweep (:func:`run_groups`,
:mod:`mtl.sweep`; finished runs are loaded, not re-run) and tabulate results against the
single-task baseline. A section plans each stage, runs it, and analyses the records; only stages
that need an earlier stage's records wait for it.
"""
from __future__ import annotations

import copy
import pickle
from typing import Hashable, Iterable, Mapping, Sequence, TypeVar

import numpy as np
import pandas as pd

from .. import sweep
from ..experiment import RunSpec, load_data, train_run
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
    return {t: (bundle.task(t).primary_directions() if primary else dict(bundle.task(t).metrics))
            for t in task_names(spec)}


def last_val(record: dict) -> Metrics:
    """Validation metrics of the last epoch (what grid search and model selection look at)."""
    return record["history"][-1]["val"]


K = TypeVar("K", bound=Hashable)


def train_jobs(out_dir, specs: Iterable[dict]) -> list[sweep.Job]:
    """The :func:`mtl.sweep.train` job of every spec."""
    return [sweep.train(out_dir, s) for s in specs]


def _identity(job: sweep.Job):
    """What makes two jobs the same run: a training job's run id, else its function and arguments."""
    if job.fn is train_run:
        return ("train", job.out_dir, RunSpec.from_dict(job.args[0]).run_id())
    return (job.fn.__module__, job.fn.__qualname__, job.out_dir, pickle.dumps((job.args, dict(job.kwargs))))


def run_groups(groups: Mapping[K, Sequence[sweep.Job]], executor=None) -> dict[K, list[dict]]:
    """One stage: every job of ``groups`` (key -> jobs) in one :func:`mtl.sweep.run`, the records
    regrouped by key in the jobs' order. A run that occurs twice in the stage (e.g. an end point
    that is also a baseline) is run once, so two workers never wait on the same run."""
    flat = [j for jobs in groups.values() for j in jobs]
    ids = [_identity(j) for j in flat]
    first = {}                                    # identity -> index of its first job
    for n, i in enumerate(ids):
        first.setdefault(i, n)
    records = dict(zip(first, sweep.run([flat[n] for n in first.values()], executor)))
    seen, recs = set(), []
    for i in ids:                                 # a repeated run gets its own copy of the record
        recs.append(copy.deepcopy(records[i]) if i in seen else records[i])
        seen.add(i)
    out, k = {}, 0
    for key, jobs in groups.items():
        out[key] = recs[k:k + len(jobs)]
        k += len(jobs)
    return out


def stl_specs(base: dict, seeds: Sequence[int]) -> dict[str, list[dict]]:
    """One single-task spec per task and seed (uniform weighting of the one task): task -> specs."""
    return {t: [derive(base, name=f"stl-{t}-s{s}", tasks=[t], weighting="ew", weighting_kw={}, train={"seed": s})
                for s in seeds] for t in task_names(base)}


def stl_base(stl: Mapping[str, list[dict]], split: str = "test") -> Metrics:
    """The single-task baseline: per task and metric, the mean over seeds."""
    base = {}
    for t, recs in stl.items():
        ms = [r["metrics"][t] if split == "test" else last_val(r)[t] for r in recs]
        base[t] = {m: float(np.mean([x[m] for x in ms])) for m in ms[0]}
    return base


def seed_specs(spec: dict, seeds: Sequence[int], name: str) -> list[dict]:
    """``spec`` at every seed, named ``<name>-s<seed>``."""
    return [derive(spec, name=f"{name}-s{s}", train={"seed": s}) for s in seeds]


def ls_spec(base: dict, weights: Sequence[float], seed: int) -> dict:
    """Fixed loss weights (``ls``) at ``seed``, named by the weights: the grid's runs and the chosen weights' runs."""
    return derive(base, name=f"ls-{'_'.join(f'{x:g}' for x in weights)}-s{seed}", weighting="ls",
                  weighting_kw={"weights": list(weights)}, train={"seed": seed})


def grid_points(base: dict, grid: Mapping[str, Sequence[float]]) -> list[tuple]:
    """The Cartesian ``grid`` (task -> candidates) in the order of the spec's tasks."""
    tasks = task_names(base)
    missing = [t for t in tasks if t not in grid]
    if missing:
        raise ValueError(f"grid has no candidates for tasks {missing}; it has {sorted(grid)}")
    return list(weight_grid([grid[t] for t in tasks]))


def grid_table(base: dict, points: Sequence[tuple], records: Sequence[dict], stl_val: Metrics) -> pd.DataFrame:
    """Each grid point's validation Δm against the single-task validation baseline; sorted best first."""
    dirs = directions(base)
    rows = [{"weights": w, "val_delta_m": overall_delta(last_val(rec), stl_val, dirs), "run": rec["run_dir"]}
            for w, rec in zip(points, records)]
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

