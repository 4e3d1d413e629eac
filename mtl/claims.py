"""Computed verdicts on the papers' claims (``../shared/design/CLAIMS.md``) and ``claims.json``.

A verdict is ``supports`` or ``contradicts`` (decided by the claim's preregistered rule,
:class:`mtl.stats.Rule`), ``inconclusive`` (the runs are adequate but the rule cannot decide; the
record says how many seeds would) or ``untestable`` (the runs fail the scale gate of
:mod:`mtl.adequacy`, or the profile lacks what the claim needs; the record says what scale would
pass). :func:`verdict` applies the gate: a record whose ``adequacy`` did not pass is
``untestable`` whatever its rule said (that answer is kept as ``rule_verdict``, never shown as a
verdict).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from .runs import recorded, write_json

VERDICTS = ("supports", "contradicts", "inconclusive", "untestable")


def combine(*verdicts: str) -> str:
    """A claim of several parts: ``contradicts`` if a part does, else ``untestable`` if a part is,
    else ``supports`` if every part does, else ``inconclusive``. (For parts decided by
    :mod:`mtl.stats` rules, :func:`mtl.stats.combine` adds Holm's multiplicity control.)"""
    for v in verdicts:
        if v not in VERDICTS:
            raise ValueError(f"unknown verdict {v!r}; valid: {VERDICTS}")
    if "contradicts" in verdicts:
        return "contradicts"
    if "untestable" in verdicts:
        return "untestable"
    return "supports" if all(v == "supports" for v in verdicts) else "inconclusive"


def verdict(id: str, verdict: str, paper: str, ours: str, evidence: str, *, rule=None, adequacy=None,
            seeds_needed=None, scale_needed: str | None = None, **extra) -> dict:
    """One claim record. ``rule``: the preregistered rule (a :class:`mtl.stats.Rule` or its dict);
    ``adequacy``: the scale gate's result over the claim's runs (:class:`mtl.adequacy.Adequacy` or
    ``{"passed": bool, "detail": str}``) — when it did not pass the verdict is ``untestable`` and
    ``scale_needed`` says what scale would pass; ``seeds_needed``: for an inconclusive claim, the
    seeds its observed effect would need."""
    if verdict not in VERDICTS:
        raise ValueError(f"unknown verdict {verdict!r}; valid: {VERDICTS}")
    rec = {"id": id, "verdict": verdict, "paper": paper, "ours": ours, "evidence": evidence, **extra}
    if rule is not None:
        rec["rule"] = rule.to_dict() if hasattr(rule, "to_dict") else dict(rule)
    if adequacy is not None:
        gate = adequacy.to_dict() if hasattr(adequacy, "to_dict") else dict(adequacy)
        rec["adequacy"] = {"passed": bool(gate["passed"]), "detail": str(gate["detail"])}
        if not gate["passed"] and verdict != "untestable":
            rec["rule_verdict"], rec["verdict"] = verdict, "untestable"
            rec["evidence"] = (f"untestable at this profile: the runs fail the scale gate ({gate['detail']})"
                               + (f"; {scale_needed}" if scale_needed else "") + f". Rule, for the record: {evidence}")
    if seeds_needed is not None:
        rec["seeds_needed"] = seeds_needed
    if scale_needed is not None:
        rec["scale_needed"] = scale_needed
    return rec


def seeds_needed_text(rec: Mapping) -> str:
    """What the claims page shows as *seeds needed* for one claim record: for an ``inconclusive``
    claim, the paired seeds its observed effect would need (:attr:`mtl.stats.Decision.seeds_needed`);
    when no number of seeds would decide it at that effect (0, below the floor or on the unclaimed
    side) it says so, naming each undecided part and what it would need. Empty for other verdicts."""
    if rec.get("verdict") != "inconclusive":
        return ""
    n = rec.get("seeds_needed")
    if n is not None:
        return str(n)
    parts = [p for p in rec.get("parts") or [] if isinstance(p, dict) and p.get("verdict") == "inconclusive"]
    why = "none at the observed effect (at 0, below the floor or on the unclaimed side)"
    if not parts:
        return why
    each = "; ".join(f"{p.get('part', '?')}: {p['seeds_needed'] if p.get('seeds_needed') is not None else 'none'}"
                     for p in parts)
    return f"{why}; per undecided part: {each}"


def recorded_threads(out_dir: str | Path) -> dict[int, int]:
    """How many finished runs under ``out_dir`` were made with each torch thread count (``info["threads"]``)."""
    counts: dict[int, int] = {}
    for t, n in recorded(out_dir, "threads").items():
        counts[int(t)] = counts.get(int(t), 0) + n
    return counts


def threads_note(counts: dict[int, int], current: int | None = None) -> str | None:
    """One line when runs were made with different thread counts, or with another count than ``current``."""
    if not counts:
        return None
    made = ", ".join(f"{n} run(s) with {t} thread(s)" for t, n in sorted(counts.items()))
    if len(counts) > 1:
        return (f"the runs were made with different torch thread counts ({made}); CPU results are bit-identical "
                f"only at the same count, so re-training them all at one count can move these numbers slightly")
    if current is not None and current not in counts:
        return (f"the runs were made with {next(iter(counts))} torch thread(s) and this process trains with "
                f"{current}: a run re-trained here would differ slightly (pin 'threads' in the spec to match)")
    return None


def write_claims(out_dir: str | Path, claims: list[dict]) -> Path:
    """``claims.json`` in ``out_dir``; when its runs mix torch thread counts, every claim says so
    (``"threads"``: the counts and a one-line note, also shown by :func:`mtl.report.verdict_markdown`)."""
    counts = recorded_threads(out_dir)
    note = threads_note(counts)
    if note:
        claims = [{**c, "threads": {"counts": {str(t): n for t, n in sorted(counts.items())}, "note": note}}
                  for c in claims]
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

