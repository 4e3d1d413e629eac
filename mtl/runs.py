"""Run records: ``<out>/<run-id>/{config.json, history.json, history.csv, metrics.json}``.

The id is a readable prefix plus a hash of the canonical parameters, so the same parameters
always map to the same folder. Every file is written atomically (temporary file + rename) and
``metrics.json`` is written last: its presence marks a finished run, which is then loaded
instead of re-run, so an interrupted reproduction resumes where it stopped.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

import pandas as pd


def canonical(params: dict) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


def run_id(params: dict) -> str:
    """``<name>-<10 hex digits>``; ``params["name"]`` (if any) gives the readable prefix."""
    digest = hashlib.sha1(canonical(params).encode()).hexdigest()[:10]
    prefix = re.sub(r"[^A-Za-z0-9_.=-]+", "_", str(params.get("name", "run")))[:60]
    return f"{prefix}-{digest}"


def write_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=1, sort_keys=True, default=float) + "\n")


def is_complete(run_dir: str | Path) -> bool:
    return (Path(run_dir) / "metrics.json").exists()


def load_run(run_dir: str | Path) -> dict:
    run_dir = Path(run_dir)
    out = json.loads((run_dir / "metrics.json").read_text())
    hist = run_dir / "history.json"
    out["history"] = json.loads(hist.read_text()) if hist.exists() else []
    return out


def history_frame(history: list[dict]) -> pd.DataFrame:
    """Flatten per-epoch records into one row per epoch (columns like ``val/depth/rmse``)."""
    return pd.json_normalize(history, sep="/")


def run_or_load(out_dir: str | Path, params: dict, fn: Callable[[], dict]) -> dict:
    """Load the finished run of ``params`` under ``out_dir`` or compute it with ``fn`` and record it.

    ``fn`` returns ``{"metrics": ..., "history": [...], "info": {...}}``; the record returned has
    ``params``, ``metrics``, ``info``, ``history`` and ``run_dir``.
    """
    run_dir = Path(out_dir) / run_id(params)
    if is_complete(run_dir):
        rec = load_run(run_dir)
        if rec.get("params") != json.loads(canonical(params)):
            raise RuntimeError(f"{run_dir} holds a run with other parameters (hash collision or edited file)")
        rec["run_dir"], rec["resumed"] = str(run_dir), True
        return rec
    result = fn()
    history = result.get("history", [])
    write_json(run_dir / "config.json", params)
    write_json(run_dir / "history.json", history)
    write_atomic(run_dir / "history.csv", history_frame(history).to_csv(index=False) if history else "")
    rec = {"params": json.loads(canonical(params)), "metrics": result["metrics"], "info": result.get("info", {})}
    write_json(run_dir / "metrics.json", rec)
    return {**rec, "history": history, "run_dir": str(run_dir), "resumed": False}
