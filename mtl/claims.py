"""Computed verdicts on the papers' claims (``../shared/design/CLAIMS.md``) and ``claims.json``.

A verdict is ``supports``, ``contradicts`` or ``inconclusive``. Differences between methods are
judged over seeds: a paired mean difference counts only when it exceeds ``z`` standard errors
(z = 2 by default; with 3 seeds this is a rough screen, stated in the evidence).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from .metrics import mean_se, paired_difference
from .runs import write_json

VERDICTS = ("supports", "contradicts", "inconclusive")


def combine(*verdicts: str) -> str:
    """All parts must support for ``supports``; any contradiction gives ``contradicts``."""
    for v in verdicts:
        if v not in VERDICTS:
            raise ValueError(f"unknown verdict {v!r}; valid: {VERDICTS}")
    if "contradicts" in verdicts:
        return "contradicts"
    return "supports" if all(v == "supports" for v in verdicts) else "inconclusive"


def verdict(id: str, verdict: str, paper: str, ours: str, evidence: str, **extra) -> dict:
    if verdict not in VERDICTS:
        raise ValueError(f"unknown verdict {verdict!r}; valid: {VERDICTS}")
    return {"id": id, "verdict": verdict, "paper": paper, "ours": ours, "evidence": evidence, **extra}


def write_claims(out_dir: str | Path, claims: list[dict]) -> Path:
    path = Path(out_dir) / "claims.json"
    write_json(path, claims)
    return path


def collect(runs_root: str | Path) -> list[dict]:
    """Every ``runs/<section>/<profile>/claims.json`` as rows with ``section`` and ``profile``."""
    rows = []
    for f in sorted(Path(runs_root).glob("*/*/claims.json")):
        for c in json.loads(f.read_text()):
            rows.append({**c, "section": f.parent.parent.name, "profile": f.parent.name})
    return rows


def c1_vanilla_imbalance(result: dict, setting: str, z: float = 2.0) -> dict:
    """C1 (seed 004 §V-A): uniform MTL falls below STL on some task; grid-searched weights narrow the gap.

    Part 1 supports if some task's uniform result is below its seed-paired single-task result by
    more than ``z`` SE, contradicts if every task is above by that margin. Part 2 compares Δm of
    grid search and uniform, paired by seed. The verdict combines both parts.
    """
    from . import study

    base, dirs, m = result["base"], result["dirs"], result["methods"]
    below = study.below_stl(m["Uniform"], result["stl"], dirs, z)
    lows = [t for t, (s, *_) in below.items() if s == "less"]
    part1 = "supports" if lows else ("contradicts" if all(s == "greater" for s, *_ in below.values()) else "inconclusive")
    gd, ud = study.deltas(m["Grid Search"], base, dirs), study.deltas(m["Uniform"], base, dirs)
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
