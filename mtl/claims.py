"""Computed verdicts on the papers' claims (``../shared/design/CLAIMS.md``) and ``claims.json``.

A verdict is ``supports``, ``contradicts`` or ``inconclusive``. Differences between methods are
judged over seeds: a paired mean difference counts only when it exceeds ``z`` standard errors
(z = 2 by default; with 3 seeds this is a rough screen, stated in the evidence).
"""
from __future__ import annotations

import json
from pathlib import Path


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

