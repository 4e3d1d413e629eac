"""Section "Imbalance in vanilla MTL" (seed 004 §V-A, Table II top rows; claim C1).

Single-task learning (STL) against one shared network trained on the plain sum of losses
(uniform) and on loss weights found by a grid search, on each dataset of the profile.
:func:`vanilla_imbalance` is also the first step of the MTO, gradient, feature and VFM sections.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from .. import profiles
from ..claims import combine, verdict
from ..metrics import paired_difference
from ._common import (below_stl, deltas, derive, directions, grid_points, grid_table, last_val, ls_spec, run_groups,
                      seed_specs, stl_base, stl_specs, task_names, train_jobs)


@dataclass(frozen=True)
class Params:
    """Top-level keys of ``book/sections/imbalance.yaml``."""

    datasets: dict  # name -> {spec: base run spec, seeds, grid: task -> candidate loss weights}


def setup(profile: str, out_dir: str = "") -> tuple[dict, Path]:
    """This section's parameters at ``profile`` (checked against :class:`Params`) and its output folder."""
    return profiles.setup("imbalance", Params, profile, out_dir)


def vanilla_imbalance(out_dir, cfg: dict, executor=None, stage1: Mapping[str, Sequence] | None = None,
                      stage2: Callable[[dict], Mapping[str, Sequence]] | None = None) -> dict:
    """Seed 004 §V-A on one dataset: single-task vs uniform vs grid-searched loss weights.

    ``cfg`` has ``spec`` (the base run spec), ``seeds`` and ``grid`` (task -> candidate weights).
    The grid is searched once, at the first seed, on validation Δm against the single-task
    validation baseline; the best weights are then trained at every seed (the first-seed run is
    the grid's own run, loaded, not repeated). Test Δm is against the mean single-task test result.

    Two stages (:func:`mtl.studies._common.run_groups` on ``executor``): 1. single-task runs, the
    grid at the first seed and uniform weights at every seed; 2. the chosen weights at every seed.
    Sections that build on this one add their jobs to a stage rather than run a stage of their own:
    ``stage1`` (key -> jobs, independent of this section's records) and ``stage2`` (the stage-1
    result -> key -> jobs); their records come back as ``result["stage1"]`` / ``result["stage2"]``.
    """
    base_spec, seeds = cfg["spec"], list(cfg["seeds"])
    stl_sp, points = stl_specs(base_spec, seeds), grid_points(base_spec, cfg["grid"])
    plan = {("stl", t): train_jobs(out_dir, sp) for t, sp in stl_sp.items()}
    plan["grid"] = train_jobs(out_dir, [ls_spec(base_spec, w, seeds[0]) for w in points])
    plan["uniform"] = train_jobs(out_dir, seed_specs(derive(base_spec, weighting="ew", weighting_kw={}), seeds,
                                                     "uniform"))
    plan.update({("stage1", k): jobs for k, jobs in (stage1 or {}).items()})
    recs = run_groups(plan, executor)
    stl = {t: recs["stl", t] for t in stl_sp}
    dirs = directions(base_spec)
    stl_val_first = {t: last_val(r[0])[t] for t, r in stl.items()}
    grid = grid_table(base_spec, points, recs["grid"], stl_val_first)
    best = list(grid.loc[0, "weights"])
    res = {"stl": stl, "base": stl_base(stl), "dirs": dirs, "all_dirs": directions(base_spec, primary=False),
           "grid": grid, "best_weights": dict(zip(task_names(base_spec), best)), "seeds": seeds}
    if stage1 is not None:
        res["stage1"] = {k: recs["stage1", k] for k in stage1}
    plan = {"grid": train_jobs(out_dir, [ls_spec(base_spec, best, s) for s in seeds])}
    later = dict(stage2(res)) if stage2 is not None else {}
    plan.update({("stage2", k): jobs for k, jobs in later.items()})
    recs2 = run_groups(plan, executor)
    res["methods"] = {
        "Single-task": [{"metrics": {t: stl[t][i]["metrics"][t] for t in stl}} for i in range(len(seeds))],
        "Uniform": recs["uniform"],
        "Grid Search": recs2["grid"],
    }
    if stage2 is not None:
        res["stage2"] = {k: recs2["stage2", k] for k in later}
    return {k: res[k] for k in ("stl", "base", "dirs", "all_dirs", "grid", "best_weights", "methods", "seeds",
                                "stage1", "stage2") if k in res}


def c1_vanilla_imbalance(result: dict, setting: str, z: float = 2.0) -> dict:
    """C1 (seed 004 §V-A): uniform MTL falls below STL on some task; grid-searched weights narrow the gap.

    Part 1 supports if some task's uniform result is below its seed-paired single-task result by
    more than ``z`` SE, contradicts if every task is above by that margin. Part 2 compares Δm of
    grid search and uniform, paired by seed. The verdict combines both parts.
    """
    base, dirs, m = result["base"], result["dirs"], result["methods"]
    below = below_stl(m["Uniform"], result["stl"], dirs, z)
    lows = [t for t, (s, *_) in below.items() if s == "less"]
    part1 = "supports" if lows else ("contradicts" if all(s == "greater" for s, *_ in below.values())
                                     else "inconclusive")
    gd, ud = deltas(m["Grid Search"], base, dirs), deltas(m["Uniform"], base, dirs)
    side, diff, se = paired_difference(gd, ud, z)
    part2 = {"greater": "supports", "less": "contradicts", "undecided": "inconclusive"}[side]
    if all(abs(a - b) < 1e-12 for a, b in zip(gd, ud)):
        part2 = "inconclusive"  # the grid chose uniform weights: no evidence either way
    per_task = ", ".join(f"{t} {mu:+.1f}±{s:.1f}%" for t, (_, mu, s) in below.items())
    return verdict(
        "C1", combine(part1, part2),
        paper="Uniform below STL on normals and edges (NYUD-v2 Δm −2.93%); grid search −0.15%.",
        ours=(f"{setting}: uniform vs STL per task {per_task}; Δm uniform {np.mean(ud):+.2f}%, "
              f"grid search {np.mean(gd):+.2f}% (weights {result['best_weights']})"),
        evidence=(f"part 1 ({part1}): tasks below STL by > {z:g} SE over {len(result['seeds'])} seeds: "
                  f"{lows or 'none'}; part 2 ({part2}): Δm(grid) − Δm(uniform) = {diff:+.2f} ± {se:.2f} (SE)"),
        setting=setting)
