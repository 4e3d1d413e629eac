"""What the sections of gradients, features, architectures and ConsMTL share to decide a claim:
its preregistered rules (``rules:`` in the section's yaml), the scale gate over the claim's runs
(:func:`mtl.adequacy.gate_runs` against the trivial predictors of the base spec), a computed
statement of the scale that would pass, and the trivial predictors beside the single-task baseline.
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .. import adequacy, claims, profiles
from ..stats import Combined, Decision, Rule, holm_adjusted


def rules(cfg: Mapping, *names: str) -> dict[str, Rule]:
    """The preregistered rules ``cfg["rules"][name]`` as :class:`mtl.stats.Rule`; a missing one is named."""
    have = dict(cfg.get("rules") or {})
    missing = [n for n in names if n not in have]
    if missing:
        raise KeyError(f"the section's yaml has no rule(s) {missing} under 'rules'; it has {sorted(have)}")
    return {n: Rule.from_dict(have[n]) for n in names}


def gate(records: Sequence[Mapping], trivial: Mapping, dirs: Mapping) -> adequacy.Adequacy:
    """The scale gate over a claim's runs (baselines and compared runs), each judged on its tasks."""
    recs = [r for r in records if isinstance(r, Mapping) and "metrics" in r]
    return adequacy.gate_runs(recs, trivial, dirs)


def scale_needed(gate_result, section: str) -> str | None:
    """What scale would pass, computed from the failing runs' gate cells (None when the gate passed):
    how many validation curves still rise over the last epochs (→ more epochs than the runs had),
    how many test metrics stay within the trivial predictor's reach (→ more epochs or data), and the
    settings of the section's ``gpu`` profile, which is sized for that."""
    if gate_result.passed:
        return None
    runs = getattr(gate_result, "runs", {}) or {}
    n = len(runs)
    rising, close, epochs, share = 0, 0, set(), 0.0
    for a in runs.values():
        cells = [c for d in a.per_task.values() for c in d.values()]
        if any(c["plateau"].get("passed") is False for c in cells):
            rising += 1
            for c in cells:
                p = c["plateau"]
                if p.get("total"):
                    share = max(share, p["recent"] / p["total"])
        if any(not c["gap"]["passed"] for c in cells):
            close += 1
        epochs |= {c["plateau"]["epochs"] for c in cells if c["plateau"].get("epochs")}
    e = "/".join(str(x) for x in sorted(epochs)) if epochs else "?"
    parts = []
    if rising:
        parts.append(f"{rising}/{n} runs' validation curves still improve at the end (up to {share:.0%} of their "
                     f"total gain in the last {adequacy.GateRules().plateau_epochs} epochs) → more than the {e} "
                     f"epochs they had")
    if close:
        parts.append(f"{close}/{n} runs do not close {adequacy.GateRules().gap_fraction:g} of the gap from the trivial "
                     f"predictor to a perfect score → more epochs or more data")
    return "; ".join(parts) + "; " + gpu_settings(section)


def gpu_settings(section: str) -> str:
    """One line on the section's ``gpu`` profile: epochs, images / samples and seeds."""
    try:
        p = profiles.load(section, "gpu")
    except ValueError:
        return "this section has no gpu profile"
    specs = [p["spec"]] if "spec" in p else [d["spec"] for d in p.get("datasets", {}).values()]
    desc = []
    for s in specs:
        kw = s.get("dataset_kw", {})
        size = (f"{kw['height']}×{kw['width']}, {kw.get('train_scenes')} training scenes × {kw.get('scans_per_scene')} "
                f"scans" if "height" in kw else f"{kw.get('n_train', 'all')} training samples")
        desc.append(f"{s['dataset']} {s['train']['epochs']} epochs ({size})")
    return f"the gpu profile trains {'; '.join(desc)} over {len(p['seeds'])} seeds"


def trivial_table(trivial: Mapping, base: Mapping, dirs: Mapping) -> pd.DataFrame:
    """Per primary metric: the trivial predictor, the gate's threshold and the single-task baseline."""
    rows = []
    f = adequacy.GateRules().gap_fraction
    for t, d in dirs.items():
        for m, hib in d.items():
            triv = float(trivial[t][m])
            th = adequacy.gap_threshold(triv, adequacy.perfect_score(m, hib), f)
            b = float(base[t][m])
            rows.append({"task": t, "metric": m, "higher is better": hib, "trivial predictor": triv,
                         "gate threshold": th, "single-task (mean over seeds)": b,
                         "single-task passes the gap test": bool(b >= th if hib else b <= th)})
    return pd.DataFrame(rows)


def collapse(c: Combined, what: str) -> Decision:
    """A combined family as one Decision for an outer combination: its verdict, and as ``p`` the
    p-value behind that verdict (for "any": the smallest Holm-adjusted p of a supporting part; for
    "all": the largest p; for contradicts the mirror; inconclusive: the smallest adjusted p), so
    Holm at the outer level sees a valid p for the family."""
    p_raw = np.array([1.0 if d.p is None else d.p for d in c.raw_parts])
    adj = holm_adjusted(p_raw)
    v = c.verdict
    same = np.array([d.verdict == v for d in c.parts])          # the parts (after Holm) behind the verdict
    if v == "inconclusive" or not same.any():
        p = float(adj.min())
    elif (v == "supports") == (c.how == "any"):                 # one part suffices: its adjusted p
        p = float(adj[same].min())
    else:                                                       # every part needed: the largest
        p = float(adj[same].max())
    d0 = c.parts[0]
    return replace(d0, verdict=v, p=p, text=f"{what}: {c.text}", seeds_needed=c.seeds_needed)


def reading(verdicts: Sequence[Mapping]) -> str:
    """The "Reading" paragraph of a section's verdicts, from the records (no hand-typed numbers):
    per claim its verdict, the gate (the counts of its detail), what scale would pass, the rule's own
    answer where the gate overrode it, and the seeds an inconclusive part needs."""
    lines = []
    for v in verdicts:
        a = v.get("adequacy") or {}
        detail = str(a.get("detail", ""))
        counts = "; ".join(re.findall(r"(?:\w+: )?\d+/\d+ runs beat the trivial predictor; \d+/\d+ plateaued", detail))
        if not a:
            gate = "not applied"
        elif detail.startswith("timing claim"):
            gate = f"does not apply ({detail})"
        else:
            gate = ("passed" if a.get("passed") else "failed") + (f" ({counts})" if counts else "")
        lines.append(f"- **{v['id']}**: {v['verdict']}; the scale gate {gate}"
                     + (f"; the rule alone, for the record: {v['rule_verdict']}" if v.get("rule_verdict") else "")
                     + (f"; seeds needed: {v['seeds_needed']}" if v.get("seeds_needed") else "")
                     + (f"; what would pass: {v['scale_needed']}" if v.get("scale_needed") else ""))
    return "**Reading.** The verdicts, computed from the runs above:\n\n" + "\n".join(lines)


def verdict(*args, **kw) -> dict:
    """:func:`mtl.claims.verdict`, and an ``inconclusive`` record always carries ``seeds_needed``
    (None when no number of seeds would decide it: an effect below the floor, 0, or out of reach;
    its evidence says which)."""
    rec = claims.verdict(*args, **kw)
    if rec["verdict"] == "inconclusive":
        rec.setdefault("seeds_needed", None)
    return rec
