"""Section "Ablation": EXTRA-F with and without R_o, R_align, and with a Bézier curve (seed 000 App. B.1, Table 1).

Three tasks on ``scenes``: segmentation at t = 0 (E1), normals at t = 1 (E2), depth aligned at
t = ½ (E3), as the NYUv2 code groups them (METHODS §1.3). Stage 1 (FairGrad end points) is shared
by every variant through :func:`mtl.studies.plugplay.endpoint_specs`; each variant is one stage-2
run. Metrics at t = ½ after BatchNorm recalibration; Δm% is EXTRA's Eq. 8, **drop convention,
lower is better**, over every metric against the single-task runs. Claim C10.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import claims, profiles
from .. import stats as ST
from . import _common as study
from . import _extra_curves as X
from ..curves import ExtraStep, default_groups
from . import plugplay as PP


@dataclass(frozen=True)
class Params:
    """Top-level keys of ``book/sections/ablation.yaml``."""

    spec: dict  # the stage-1 / single-task run spec (three tasks)
    seeds: list[int]
    stage2: dict  # EXTRA's curve stage: step (ExtraStep arguments), train
    rules: dict = field(default_factory=dict)  # preregistered claim rules (mtl.stats.Rule), under common:


def setup(profile: str, out_dir: str = "") -> tuple[dict, Path]:
    """This section's parameters at ``profile`` (checked against :class:`Params`) and its output folder."""
    return profiles.setup("ablation", Params, profile, out_dir)


DM, DM_SE = PP.DM, PP.DM_SE

# Seed 000 App. B.1, Table 1 (NYUv2, 3 tasks, EXTRA-F), Δm% ↓ (drop). Our copy lost the check marks;
# the row labels are METHODS.md §1.8's reading (the one most consistent with the prose) — a reading.
SEED000_TABLE1_SOURCE = "seed 000 (EXTRA), App. B.1, Table 1, NYUv2 (3 tasks); row labels: METHODS.md §1.8's reading"
SEED000_TABLE1_PRINTED = (-4.66, -6.05, -4.97, -4.36, -6.30)   # in printed order
SEED000_TABLE1_READING = {
    "FairGrad": -4.66,
    "EXTRA-F w/o R_align": -6.05,
    "EXTRA-F w/o R_o": -4.97,
    "EXTRA-F Bézier": -4.36,
    "EXTRA-F (full)": -6.30,
}

#: the ablated variants of EXTRA-F, in the order of Table 1 under the reading (full first)
VARIANTS = ("EXTRA-F (full)", "EXTRA-F w/o R_o", "EXTRA-F w/o R_align", "EXTRA-F Bézier")

#: E_t[2·exp(−|t − ½|)] for t ~ U[0, 1): the mean weight R_align puts on L_r, used by the ablation.
MEAN_ALIGN_WEIGHT = 4.0 * (1.0 - math.exp(-0.5))


class NoAlignStep(ExtraStep):
    """EXTRA's stage 2 without R_align (seed 000 B.1): E3's loss enters with a constant weight in t.

    R_align = Σ_k exp(−|t_k − ½|) · mean_k L_r(t_k) weighs E3's loss most near t = ½; here it is
    replaced by :data:`MEAN_ALIGN_WEIGHT` · mean_k L_r(t_k), the same weight on average, so the
    ablation removes the alignment to t = ½ and not the depth loss or its scale.
    """

    def objective(self, L: torch.Tensor, t: torch.Tensor, tasks: list[str]) -> dict[str, torch.Tensor]:
        parts = super().objective(L, t, tasks)                             # L [2, T], t [2]
        groups = self.groups or default_groups(tasks)
        if len(groups) != 3:
            raise ValueError(f"NoAlignStep needs three task groups (E1, E2, E3), got {groups}")
        idx = [tasks.index(x) if isinstance(x, str) else int(x) for x in groups[2]]
        flat = MEAN_ALIGN_WEIGHT * L[:, idx].mean(1).mean()                # scalar
        return {**parts, "total": parts["total"] - parts["r_align"] + flat, "r_align": flat.detach() * 0}


def variant_stage2(stage2: dict, variant: str) -> tuple[dict, type]:
    """Stage-2 options and step rule of one ablation variant (names in :data:`VARIANTS`)."""
    step = dict(stage2.get("step", {}))
    if variant == VARIANTS[0]:
        return stage2, ExtraStep
    if variant == VARIANTS[1]:
        return {**stage2, "step": {**step, "alpha": 0.0}}, ExtraStep
    if variant == VARIANTS[2]:
        return stage2, NoAlignStep
    if variant == VARIANTS[3]:
        return {**stage2, "family": "bezier"}, ExtraStep
    raise ValueError(f"unknown ablation variant {variant!r}; valid: {VARIANTS}")


def ablation(out_dir, cfg: dict, progress=None, executor=None) -> dict:
    """Single-task runs, the FairGrad baseline and the four EXTRA-F variants at every seed.

    Stage 1: single-task runs and the FairGrad end points (the first is the FairGrad baseline);
    stage 2: the four variants' curves."""
    spec, seeds = PP.base_spec(cfg), list(cfg["seeds"])
    if len(spec["tasks"]) != 3:
        raise ValueError(f"the ablation is a three-task setting (E1, E2, E3), got tasks={spec['tasks']}")
    groups = cfg["stage2"].get("step", {}).get("groups") or default_groups(spec["tasks"])
    variants = {v: variant_stage2(cfg["stage2"], v) for v in VARIANTS}
    stl_sp = PP.stl_specs(spec, seeds)
    plan = {("stl", t): study.train_jobs(out_dir, sp) for t, sp in stl_sp.items()}
    plan["FairGrad"] = study.train_jobs(out_dir, [PP.endpoint_specs(spec, "fairgrad", s)[0] for s in seeds])
    for v, (st2, _) in variants.items():
        plan["ends", v] = PP.extra_endpoints(out_dir, spec, "fairgrad", seeds, st2)
    recs = study.run_groups(plan, executor)
    if progress:
        progress("stage 1: single-task runs and FairGrad end points")
    recs2 = study.run_groups({v: [PP.extra_job(out_dir, spec, "fairgrad", s, st2, tag=f"v{k}", step_cls=rule)
                                  for s in seeds] for k, (v, (st2, rule)) in enumerate(variants.items())}, executor)
    if progress:
        progress("stage 2: " + ", ".join(VARIANTS))
    singles = {t: recs["stl", t] for t in stl_sp}
    methods = {"Single-task": PP.single_task_row(singles, seeds), "FairGrad": recs["FairGrad"], **recs2}
    return {"spec": spec, "seeds": seeds, "groups": groups, "stl": singles, "base": study.stl_base(singles),
            "dirs": X.paper_dirs(spec), "methods": methods,
            "ends": recs["ends", VARIANTS[0]]}


def table(result: dict, out_dir=None) -> pd.DataFrame:
    """Mean of every metric over seeds and Δm% (drop convention, lower is better) ± SE per row (with
    ``out_dir``: the trivial predictors' row first, :func:`mtl.studies.plugplay.table`)."""
    return PP.table(result, out_dir)


def gate(result: dict, out_dir=None):
    """The scale gate of C10: single-task runs, the FairGrad end points (the FairGrad row is end point 0)
    and every variant's curve at t = ½ with its stage-2 validation history."""
    triv, dirs = X.gate_reference(result["spec"], out_dir)
    parts = [X.gate_records("single-task", [r for recs in result["stl"].values() for r in recs], triv, dirs),
             X.gate_records("FairGrad end points", result["ends"], triv, dirs)]
    parts += [X.gate_records(v, result["methods"][v], triv, dirs) for v in VARIANTS]
    return X.gate_all(parts)


def paper_beside(ours: pd.DataFrame) -> pd.DataFrame:
    """Table 1 under METHODS §1.8's reading beside our Δm% (drop)."""
    rows = {k: {"paper Δm% ↓ (NYUv2, reading)": v, "ours Δm% ↓ (scenes)": float(ours.loc[k, DM]),
                "ours SE": float(ours.loc[k, DM_SE])} for k, v in SEED000_TABLE1_READING.items()}
    return pd.DataFrame(rows).T


#: C10's parts: (name, the row the full EXTRA-F is compared with, the rule's name in the yaml)
C10_PARTS = (("full beats w/o R_o", "EXTRA-F w/o R_o", "C10_ablated"),
             ("full beats w/o R_align", "EXTRA-F w/o R_align", "C10_ablated"),
             ("NURBS beats Bézier", "EXTRA-F Bézier", "C10_ablated"),
             ("full beats its base (FairGrad)", "FairGrad", "C10_base"))


def c10_decide(full: list[float], others: dict[str, list[float]], rules: dict[str, ST.Rule]) -> ST.Combined:
    """C10's rule: Δm(full) − Δm(row) over paired seeds for every part of :data:`C10_PARTS` (drop: the
    claim is < 0), Holm over the four parts; the claim holds when every part does."""
    parts = [ST.paired(full, others[row], rules[r]) for _, row, r in C10_PARTS]
    return ST.combine(parts, "all", rules["C10_ablated"].alpha, names=[n for n, _, _ in C10_PARTS])


def c10_ablation(result: dict, setting: str, rules: dict, adequacy=None, scale_needed: str | None = None) -> dict:
    """C10 (seed 000 B.1): EXTRA-F's full system (R_o and R_align) is best, NURBS beats Bézier, and
    (issue 16) the full system beats its base FairGrad.

    Paired by seed (every variant shares the seed's end points; FairGrad is end point 0), each part
    is Δm (drop) of full EXTRA-F minus the other row, judged by its preregistered superiority rule
    (``rules["C10_ablated"]``, ``rules["C10_base"]``), Holm over the four parts (:func:`c10_decide`).
    """
    rs = X.rules_of({"rules": rules}, ["C10_ablated", "C10_base"])
    m = result["methods"]
    full = PP.seed_deltas(result, m[VARIANTS[0]])
    others = {row: PP.seed_deltas(result, m[row]) for _, row, _ in C10_PARTS}
    c = c10_decide(full, others, rs)
    means = {k: float(np.mean(PP.seed_deltas(result, r))) for k, r in m.items() if k != "Single-task"}
    lines = [f"{n}: full − {row.replace('EXTRA-F ', '')} {d.estimate:+.2f} (95% CI [{d.ci[0]:+.2f}, {d.ci[1]:+.2f}]) "
             f"→ {d.verdict}" for (n, row, _), d in zip(C10_PARTS, c.parts)]
    return claims.verdict(
        "C10", c.verdict,
        paper="Full EXTRA-F best (Δm −6.30); w/o R_align −6.05, w/o R_o −4.97, Bézier −4.36, FairGrad −4.66 "
              "(NYUv2; row labels are METHODS §1.8's reading)",
        ours="mean Δm (drop) " + ", ".join(f"{k}: {v:+.2f}" for k, v in means.items()) + "; " + "; ".join(lines),
        evidence=(f"paired over {len(result['seeds'])} seeds: {c.text}; per part: "
                  + " | ".join(d.text for d in c.parts)),
        rule=X.combined_rule(c), adequacy=adequacy, seeds_needed=X.seeds_needed(c), scale_needed=scale_needed,
        parts=X.parts_record([n for n, _, _ in C10_PARTS], c), setting=setting)
