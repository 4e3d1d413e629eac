"""Presentation helpers for section notebooks: metric labels, paper-beside-ours tables, verdict lines."""
from __future__ import annotations

import os

import pandas as pd
import torch

from .claims import recorded_threads, threads_note

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
