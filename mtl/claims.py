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


def recorded_threads(out_dir: str | Path) -> dict[int, int]:
    """How many finished runs under ``out_dir`` were made with each torch thread count (``info["threads"]``)."""
    counts: dict[int, int] = {}
    for f in sorted(Path(out_dir).rglob("metrics.json")):
        if ".corrupt" in f.parts:
            continue
        threads = json.loads(f.read_text()).get("info", {}).get("threads")
        if threads is not None:
            counts[int(threads)] = counts.get(int(threads), 0) + 1
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

