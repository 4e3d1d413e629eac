"""Presentation helpers for section notebooks: metric labels, paper-beside-ours tables, verdict lines,
the book's execution-status tables and each section's provenance line."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import torch

from .claims import recorded_threads, threads_note
from .paths import portable, status_file
from .runs import finished_records, write_atomic

ARROWS = {True: "↑", False: "↓"}
PERCENT_METRICS = ("miou", "pix_acc", "odsf", "acc", "within_11", "within_22", "within_30")
HIGHER = {"miou": True, "pix_acc": True, "odsf": True, "acc": True, "within_11": True, "within_22": True,
          "within_30": True, "rmse": False, "abs_err": False, "rel_err": False, "mean": False, "median": False,
          "mae": False}


def text_table(rows: list[tuple]) -> str:
    """Rows of strings as a plain-text table, columns left-aligned two spaces apart (the first row a header).

    >>> print(text_table([("name", "label"), ("ew", "Uniform")]))
    name  label
    ew    Uniform
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def metric_label(col: str) -> str:
    """``"normal/mean"`` -> ``"normal mean ↓"``; Δm columns get their own labels."""
    if col == "delta_m":
        return "Δm% ↑"
    if col == "delta_m_se":
        return "Δm SE"
    if "/" not in col:
        return col
    task, metric = col.split("/", 1)
    arrow = ARROWS.get(HIGHER.get(metric), "")
    return f"{task} {metric} {arrow}".strip()


def paper_beside(ours: pd.DataFrame, ref: dict) -> pd.DataFrame:
    """The paper's rows and ours side by side, per metric; fraction metrics of ours shown in %.

    ``ref`` is one of the paper tables in :mod:`mtl.studies._paper` (rows: Single-task / Uniform / Grid Search).
    """
    cols = list(ref.get("columns", {})) + ["delta_m"]
    out = {}
    for method, prow in ref["rows"].items():
        row = {}
        for c in cols:
            if c not in prow:
                continue
            has_mine = ours is not None and method in ours.index and c in ours.columns
            mine = ours.loc[method, c] if has_mine else float("nan")
            if c.split("/")[-1] in PERCENT_METRICS:
                mine = mine * 100
            row[(metric_label(c), "paper")] = prow[c]
            row[(metric_label(c), "ours")] = mine
        out[method] = row
    df = pd.DataFrame(out).T
    df.columns = pd.MultiIndex.from_tuples(df.columns)
    df.attrs["source"] = ref["source"]
    return df.round(3)


def verdict_markdown(verdicts: list[dict], out_dir=None) -> str:
    """One line per verdict: id, setting, verdict in bold, what we measured and the evidence; then,
    once, a note when the runs under ``out_dir`` mix torch thread counts or were made with another
    count than this process uses (:func:`mtl.claims.threads_note`)."""
    lines = []
    for v in verdicts:
        setting = f" ({v['setting']})" if v.get("setting") else ""
        lines.append(f"- **{v['id']}{setting}: {v['verdict']}.** {v['ours']}. *Evidence:* {v['evidence']}.")
    current = int(os.environ.get("MTL_THREADS") or torch.get_num_threads())    # what a run trained now would use
    note = None if out_dir is None else threads_note(recorded_threads(out_dir), current)
    if note:
        lines.append(f"\n*Note on reproducibility:* {note}.")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- execution status and provenance
NOT_RECORDED = "—"                  # a field an older reproduce record lacks
STATUS_COLUMNS = ("section", "status", "wall time", "first execution", "runs", "trained", "copied", "threads",
                  "torch", "runs made at", "executed at")
SPEC_HASHES = "spec_hashes.txt"     # beside a section's notebook: the run id of every run behind its figures


def _counts(value) -> str:
    """``{"2": 70}`` -> ``2``; ``{"1": 2, "2": 70}`` -> ``1 (2 runs), 2 (70 runs)``; absent -> —."""
    if not value:
        return NOT_RECORDED
    if len(value) == 1:
        return str(next(iter(value)))
    return ", ".join(f"{k} ({n} runs)" for k, n in value.items())


def _seconds(value) -> str:
    return NOT_RECORDED if value is None else f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"


def status_rows(records: list[dict], order: list[str] | None = None) -> list[tuple[str, ...]]:
    """One row per section of a ``reproduce-<profile>.json`` (:data:`STATUS_COLUMNS`), in ``order`` (book
    order) then by name; a field an older record lacks is shown as —, a failed status by its first line."""
    rank = {s: i for i, s in enumerate(order or [])}
    rows = []
    for r in sorted(records, key=lambda r: (rank.get(r["section"], len(rank)), r["section"])):
        status = r.get("status", NOT_RECORDED)
        status = status if status in ("ok", NOT_RECORDED) else "FAILED: " + status.splitlines()[0][:80]
        get = lambda k: NOT_RECORDED if r.get(k) is None else str(r[k])  # noqa: E731
        rows.append((r["section"], status, _seconds(r.get("duration_s")), _seconds(r.get("first_duration_s")),
                     get("runs"), get("trained"), get("copied"), _counts(r.get("threads")), _counts(r.get("torch")),
                     get("runs_commit"), get("commit")))
    return rows


def status_markdown(runs_root: str | Path, order: list[str] | None = None) -> str:
    """The book's execution-status page body: per profile recorded in ``runs_root/reproduce-<profile>.json``
    (by :mod:`mtl.reproduce`), a table of every section's last execution; a note when none is recorded."""
    runs_root = Path(runs_root)
    files = sorted(runs_root.glob(status_file("", "*").name))
    if not files:
        return (f"No reproduction is recorded under `{portable(runs_root)}` yet: `mtl-reproduce --profile PROFILE` "
                f"writes `{status_file('runs', 'PROFILE')}`.")
    out = []
    for f in files:
        profile = f.stem.removeprefix("reproduce-")
        rows = status_rows(json.loads(f.read_text()), order)
        table = ["| " + " | ".join(STATUS_COLUMNS) + " |", "|" + "---|" * len(STATUS_COLUMNS)]
        table += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        out.append(f"## Profile `{profile}`\n\nFrom `{f.name}`.\n\n" + "\n".join(table))
    return "\n\n".join(out)


def provenance_line(out_dir: str | Path) -> str:
    """One line of provenance for under a section's first figure: the profile (``out_dir``'s name, as in
    ``runs/<section>/<profile>``), the number of finished runs under ``out_dir`` and the spec-hashes
    file, written here: ``out_dir/spec_hashes.txt`` lists the run id (``<name>-<hash of its canonical
    spec>``) of every finished run, one per line, sorted (the same runs give the same bytes), and the
    line quotes that file's SHA-1 so a reader can check which runs made the figure."""
    out_dir = Path(out_dir)
    ids = sorted(str(f.parent.relative_to(out_dir)) for f in finished_records(out_dir))
    text = "".join(f"{i}\n" for i in ids)
    path = out_dir / SPEC_HASHES
    if not path.exists() or path.read_text() != text:
        write_atomic(path, text)
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    return (f"*Provenance:* profile `{out_dir.name}`, {len(ids)} run{'s' if len(ids) != 1 else ''}; "
            f"spec hashes in `{portable(path)}` (SHA-1 `{digest}`).")
