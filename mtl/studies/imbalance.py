"""Section "Imbalance in vanilla MTL" (seed 004 §V-A, Table II top rows; claim C1).

Single-task learning (STL) against one shared network trained on the plain sum of losses
(uniform) and on loss weights found by a grid search, on each dataset of the profile.
:func:`vanilla_imbalance` is also the first step of the MTO, gradient, feature and VFM sections.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import adequacy as gate, profiles, stats
from ..claims import combine, verdict
from ..metrics import relative_improvements
from ._common import (deltas, derive, directions, grid_points, grid_table, last_val, ls_spec, run_groups,
                      seed_specs, stl_base, stl_specs, task_names, train_jobs)


@dataclass(frozen=True)
class Params:
    """Top-level keys of ``book/sections/imbalance.yaml``."""

    datasets: dict  # name -> {spec: base run spec, seeds, grid: task -> candidate loss weights}
    rules: dict = field(default_factory=dict)   # claim part -> mtl.stats.Rule mapping (preregistered, `common`)
    symmetric: list = field(default_factory=list)  # datasets whose tasks are exchangeable (C1 part 2 undecidable)
    real_grid: int = 12     # fewest grid points that can contradict "grid search narrows the gap" (issue 16)


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



# ----------------------------------------------------------------------------- rules, gate, scale (shared)

def section_rules(P: Mapping) -> dict[str, stats.Rule]:
    """The preregistered rules of a section's parameters (``P["rules"]``: part -> Rule mapping)."""
    return {k: stats.Rule.from_dict(v) for k, v in (P.get("rules") or {}).items()}


def gate_records(records: Sequence[dict], spec: dict, out_dir=None) -> gate.Adequacy:
    """The scale gate over ``records`` (run records of one dataset): each run's primary test metrics
    against the trivial predictors of the clean dataset of ``spec`` (recorded as
    ``<out_dir>/trivial-<hash>.json``), and its validation curve's plateau."""
    return gate.gate_runs(list(records), trivial=gate.trivial_for_spec(spec, out_dir=out_dir),
                          directions=directions(spec))


def compact(adqs: Mapping[str, gate.Adequacy] | gate.Adequacy, keep: int = 3) -> dict:
    """A claim's gate record from one or several :func:`gate_runs` results (name -> result): passed iff
    all passed; the detail gives the counts and the first ``keep`` failures of each kind per group."""
    groups = adqs if isinstance(adqs, Mapping) else {"": adqs}
    out = []
    for name, a in groups.items():
        cells = [(r, t, c) for r, x in a.runs.items() for t, d in x.per_task.items() for c in d.values()]
        gap = list(dict.fromkeys(f"{r} {t} {c['gap']['text']}" for r, t, c in cells if not c["gap"]["passed"]))
        plat = list(dict.fromkeys(f"{r} {t} {c['plateau']['text']}" for r, t, c in cells if not c["plateau"]["passed"]))
        n = len(a.runs)
        def count(test):
            return sum(all(c[test]["passed"] for d in x.per_task.values() for c in d.values()) for x in a.runs.values())
        n_gap, n_plat = count("gap"), count("plateau")
        text = f"{n_gap}/{n} runs beat the trivial predictor, {n_plat}/{n} plateaued"
        for what, items in (("short of the bar", gap), ("not plateaued", plat)):
            if items:
                text += f"; {what} ({min(keep, len(items))} of {len(items)} metrics): " + "; ".join(items[:keep])
        out.append(f"{name}: {text}" if name else text)
    return {"passed": all(a.passed for a in groups.values()), "detail": " | ".join(out)}


def result_runs(result: Mapping, methods: Sequence[str] = ("Uniform", "Grid Search")) -> list[dict]:
    """The run records a claim on a :func:`vanilla_imbalance` result rests on: every single-task run and
    the runs of ``methods`` at every seed."""
    recs = [r for recs in result["stl"].values() for r in recs] + [r for m in methods for r in result["methods"][m]]
    return list({r.get("run_dir", id(r)): r for r in recs}.values())     # a grid run that is the uniform run: once


def trivial_table(result: Mapping, spec: dict, out_dir=None) -> pd.DataFrame:
    """The trivial predictors beside the single-task baseline: primary test metrics (rows Trivial,
    the bar a trained run must reach — a quarter of the trivial → perfect gap — and Single-task)."""
    triv = gate.trivial_for_spec(spec, out_dir=out_dir)
    rows = {"Trivial": {}, "Gate threshold": {}, "Single-task (mean)": {}}
    for t, d in result["dirs"].items():
        for m, hib in d.items():
            k = f"{t}/{m}"
            rows["Trivial"][k] = triv[t][m]
            rows["Gate threshold"][k] = gate.gap_threshold(triv[t][m], gate.perfect_score(m, hib),
                                                           gate.GateRules().gap_fraction)
            rows["Single-task (mean)"][k] = result["base"][t][m]
    return pd.DataFrame(rows).T


def scale_statement(adq: gate.Adequacy, epochs: int, larger: str = "") -> str | None:
    """What scale would pass the gate, computed from the failures of ``adq`` (a :func:`gate_runs` result):
    curves still improving at the last epoch → more epochs than ``epochs``; metrics short of the gap →
    longer training and/or more data; ``larger`` names a profile that trains at that scale."""
    if adq.passed:
        return None
    cells = [(name, t, m, c) for name, a in adq.runs.items() for t, d in a.per_task.items() for m, c in d.items()]
    rising = [c["plateau"] for *_, c in cells if c["plateau"].get("passed") is False]
    short = [(n, t, m, c["gap"]) for n, t, m, c in cells if not c["gap"]["passed"]]
    parts = []
    if rising:
        shares = [p["recent"] / p["total"] for p in rising if p.get("total")]
        worst = f" (up to {max(shares):.0%} of their total gain in the last 3 epochs)" if shares else ""
        parts.append(f"{len(rising)} validation metrics still improve at epoch {epochs}{worst}: "
                     f"more than {epochs} epochs")
    if short:
        def shortfall(x):
            return abs(x[3]["value"] - x[3]["threshold"]) / max(abs(x[3]["threshold"]), 1e-12)
        n, t, m, g = max(short, key=shortfall)
        parts.append(f"{len(short)} primary metrics short of a quarter of the trivial → perfect gap (worst: {n} {t} "
                     f"{m} {g['value']:.4g} vs {g['threshold']:.4g} needed): longer training and/or more data")
    return "scale that would pass: " + "; ".join(parts) + (f"; {larger}" if larger else "")


def describe_spec(spec: dict, profile: str) -> str:
    """One line on a profile's scale: epochs, image size, training set."""
    kw, tr = spec.get("dataset_kw", {}), spec.get("train", {})
    size = f"{kw['height']}×{kw['width']} images, " if "height" in kw else ""
    data = ", ".join(f"{k} {v}" for k, v in kw.items() if k.startswith(("train", "n_train", "scans")))
    return f"the {profile} profile trains {tr.get('epochs')} epochs on {size}{data}"


def task_gaps(method: Sequence[dict], stl: Mapping[str, list[dict]], dirs,
              rule: stats.Rule) -> dict[str, stats.Decision]:
    """Per task: the rule on the method's relative improvement (%, mean over the task's primary metrics)
    over the single-task mean, seed-paired with the single-task run's own: ``mine − ref`` per seed."""
    out = {}
    for t, d in dirs.items():
        base = stl_base({t: stl[t]})
        mine = [np.mean(list(relative_improvements(r["metrics"][t], base[t], d).values())) for r in method]
        ref = [np.mean(list(relative_improvements(r["metrics"][t], base[t], d).values())) for r in stl[t]]
        out[t] = stats.paired(mine, ref, rule)
    return out


def any_task(decisions: Mapping[str, stats.Decision], alpha: float = 0.05) -> stats.Combined:
    """"Some task": Holm over the tasks' decisions, ``how="any"``."""
    return stats.combine(list(decisions.values()), "any", alpha, names=list(decisions))


def trained(adequacy) -> bool:
    """Did the claim's runs pass the scale gate? (an :class:`mtl.adequacy.Adequacy` or its dict)"""
    return bool((adequacy.to_dict() if hasattr(adequacy, "to_dict") else dict(adequacy))["passed"])


def any_needed(c: stats.Combined) -> int | None:
    """Seeds an inconclusive "any of" claim needs: the fewest over its parts that have a number."""
    return min([d.seeds_needed for d in c.parts if d.verdict == "inconclusive" and d.seeds_needed], default=None)


def untestable_part(d: stats.Decision, why: str) -> stats.Decision:
    """A part the recorded runs cannot decide whatever their numbers: kept for the record, verdict untestable."""
    return replace(d, verdict="untestable", text=f"untestable: {why}. For the record: {d.text}", seeds_needed=None)


def uniform_weights(weights: Mapping[str, float]) -> bool:
    return len({float(w) for w in weights.values()}) == 1


def c1_vanilla_imbalance(result: dict, setting: str, rules: Mapping[str, stats.Rule], adequacy,
                         scale_needed: str | None = None, symmetric: bool = False, real_grid: int = 12) -> dict:
    """C1 (seed 004 §V-A): uniform MTL falls below STL on some task; grid-searched weights narrow the gap.

    Part 1 (``rules["C1_below"]``, per task on the relative improvement over single-task, seed-paired;
    Holm over the tasks, "any"): supports when some task is below, contradicts when every task is above.
    Part 2 (``rules["C1_narrows"]``, Δm(grid) − Δm(uniform) paired by seed) is judged only where the
    recorded grid can decide it: never on a dataset whose tasks are exchangeable (``symmetric``: which
    task to up-weight is a coin flip), nor when the grid chose uniform weights (the runs are the same);
    a grid of fewer than ``real_grid`` points can support but not contradict (a larger grid might narrow
    it). On a symmetric dataset the verdict is part 1's; elsewhere the claim is the conjunction of both
    parts (:func:`mtl.claims.combine`; each part errs at most α/2 in each direction). ``adequacy``: the
    scale gate over the claim's runs.
    """
    base, dirs, m = result["base"], result["dirs"], result["methods"]
    below = task_gaps(m["Uniform"], result["stl"], dirs, rules["C1_below"])
    p1 = any_task(below, rules["C1_below"].alpha)
    gd, ud = deltas(m["Grid Search"], base, dirs), deltas(m["Uniform"], base, dirs)
    p2 = stats.paired(gd, ud, rules["C1_narrows"])
    n_grid = len(result["grid"]) if "grid" in result else None
    if symmetric:
        p2 = untestable_part(p2, "the tasks are exchangeable (symmetric), so which one to up-weight is arbitrary "
                                 "and grid search has no imbalance to narrow")
    elif uniform_weights(result["best_weights"]):
        p2 = untestable_part(p2, f"the grid ({n_grid} points) chose uniform weights, so the grid runs are the "
                                 f"uniform runs")
    elif p2.verdict == "contradicts" and n_grid is not None and n_grid < real_grid:
        p2 = replace(p2, verdict="inconclusive", text=p2.text + f"; a grid of {n_grid} points (< {real_grid}) "
                                                               f"cannot contradict: a larger grid might narrow the gap")
    per_task = ", ".join(f"{t} {d.estimate:+.1f}% [{d.ci[0]:+.1f}, {d.ci[1]:+.1f}]" for t, d in below.items())
    needed = [x for x in (any_needed(p1) if p1.verdict == "inconclusive" else None,
                          p2.seeds_needed if p2.verdict == "inconclusive" and not symmetric else None) if x is not None]
    overall = p1.verdict if symmetric else combine(p1.verdict, p2.verdict)   # symmetric: part 2 left out
    return verdict(
        "C1", overall,
        paper="Uniform below STL on normals and edges (NYUD-v2 Δm −2.93%); grid search −0.15%.",
        ours=(f"{setting}: uniform vs STL per task (relative improvement, 95% CI) {per_task}; Δm uniform "
              f"{np.mean(ud):+.2f}%, grid search {np.mean(gd):+.2f}% (weights {result['best_weights']}"
              + (f", {n_grid} grid points searched at the first seed" if n_grid is not None else "") + ")"),
        evidence=(f"part 1 ({p1.verdict}): {p1.text}; part 2 "
                  + ("(left out of the verdict)" if symmetric else f"({p2.verdict})")
                  + f": Δm(grid) − Δm(uniform): {p2.text}"),
        rule={"combine": "all", "parts": {"C1_below (per task, Holm any)": rules["C1_below"].to_dict(),
                                          "C1_narrows": rules["C1_narrows"].to_dict()}},
        adequacy=adequacy, scale_needed=scale_needed,
        seeds_needed=(max(needed) if needed and overall == "inconclusive" and trained(adequacy) else None),
        setting=setting)
