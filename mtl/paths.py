"""Where things live: the repository root, the runs folder and the data cache."""
from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The checkout root (the folder holding ``pyproject.toml`` above this package)."""
    here = Path(__file__).resolve().parent
    for p in (here, *here.parents):
        if (p / "pyproject.toml").exists() and (p / "mtl").is_dir():
            return p
    return Path.cwd()


def portable(path) -> str:
    """``path`` relative to the repository root when inside it (run specs and executed notebooks stay
    valid in any checkout), else absolute."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(repo_root()))
    except ValueError:
        return str(p)


def runs_dir() -> Path:
    return Path(os.environ.get("MTL_RUNS", repo_root() / "runs"))


def sibling_run_dirs(out_dir) -> list[Path]:
    """For ``out_dir`` = ``<runs>/<section>/<profile>`` (``<runs>``: :func:`runs_dir`), the other sections'
    folders of that profile, where an identical run may already be recorded; else none."""
    out, root = Path(out_dir).resolve(), runs_dir().resolve()
    if out.parent.parent != root:
        return []
    return sorted(p for p in root.glob(f"*/{out.name}") if p.is_dir() and p != out)


def status_file(runs_root: str | Path, profile: str) -> Path:
    """``<runs_root>/reproduce-<profile>.json``: what ``mtl-reproduce`` recorded of each section's last execution."""
    return Path(runs_root) / f"reproduce-{profile}.json"


def cache_dir() -> Path:
    """Generated-data cache: ``$MTL_CACHE`` or ``~/.cache/mtl``."""
    p = Path(os.environ.get("MTL_CACHE", Path.home() / ".cache" / "mtl"))
    p.mkdir(parents=True, exist_ok=True)
    return p
