"""Section "Imbalance in vanilla MTL" (seed 004 §V-A, Table II top rows; claim C1).

Single-task learning (STL) against one shared network trained on the plain sum of losses
(uniform) and on loss weights found by a grid search, on each dataset of the profile.
:func:`vanilla_imbalance` is also the first step of the MTO, gradient, feature and VFM sections.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import profiles
from ..claims import combine, verdict
from ..metrics import paired_difference
from ..experiment import train_run
from ._common import (below_stl, deltas, derive, directions, grid_search, last_val, run_seeds, run_stl, stl_base,
                      task_names)


@dataclass(frozen=True)
class Params:
    """Top-level keys of ``book/sections/imbalance.yaml``."""

    datasets: dict  # name -> {spec: base run spec, seeds, grid: task -> candidate loss weights}


def setup(profile: str, out_dir: str = "") -> tuple[dict, Path]:
    """This section's parameters at ``profile`` (checked against :class:`Params`) and its output folder."""
    return profiles.setup("imbalance", Params, profile, out_dir)


def vanilla_imbalance(out_dir, cfg: dict) -> dict:
    """Seed 004 §V-A on one dataset: single-task vs uniform vs grid-searched loss weights.

    ``cfg`` has ``spec`` (the base run spec), ``seeds`` and ``grid`` (task -> candidate weights).
    The grid is searched once, at the first seed, on validation Δm against the single-task
    validation baseline; the best weights are then trained at every seed (the first-seed run is
    the grid's own run, loaded, not repeated). Test Δm is against the mean single-task test result.
    """
    base_spec, seeds = cfg["spec"], list(cfg["seeds"])
    stl = run_stl(out_dir, base_spec, seeds)
    dirs = directions(base_spec)
    stl_val_first = {t: last_val(recs[0])[t] for t, recs in stl.items()}
    grid = grid_search(out_dir, base_spec, cfg["grid"], stl_val_first, seed=seeds[0])
    best = list(grid.loc[0, "weights"])
    methods = {
        "Single-task": [{"metrics": {t: stl[t][i]["metrics"][t] for t in stl}} for i in range(len(seeds))],
        "Uniform": run_seeds(out_dir, derive(base_spec, weighting="ew", weighting_kw={}), seeds, "uniform"),
        "Grid Search": [train_run(out_dir, derive(base_spec, name=f"ls-{'_'.join(f'{x:g}' for x in best)}-s{s}",
                                                  weighting="ls", weighting_kw={"weights": best}, train={"seed": s}))
                        for s in seeds],
    }
    return {"stl": stl, "base": stl_base(stl), "dirs": dirs, "all_dirs": directions(base_spec, primary=False),
            "grid": grid, "best_weights": dict(zip(task_names(base_spec), best)), "methods": methods, "seeds": seeds}


def c1_vanilla_imbalance(result: dict, setting: str, z: float = 2.0) -> dict:
    """C1 (seed 004 §V-A): uniform MTL falls below STL on some task; grid-searched weights narrow the gap.

    Part 1 supports if some task's uniform result is below its seed-paired single-task result by
    more than ``z`` SE, contradicts if every task is above by that margin. Part 2 compares Δm of
    grid search and uniform, paired by seed. The verdict combines both parts.
    """
    base, dirs, m = result["base"], result["dirs"], result["methods"]
    below = below_stl(m["Uniform"], result["stl"], dirs, z)
    lows = [t for t, (s, *_) in below.items() if s == "less"]
    part1 = "supports" if lows else ("contradicts" if all(s == "greater" for s, *_ in below.values()) else "inconclusive")
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
