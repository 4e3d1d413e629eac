"""Section profiles: ``book/profiles/<section>.yaml`` holds one mapping per profile.

Profiles: ``smoke`` (tiny, for tests and nbval), ``cpu`` (the default reproduction on a laptop),
``gpu`` (embedded data at full size, for a lent GPU), ``paper`` (the seeds' datasets, user data).
"""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

from .paths import repo_root, runs_dir

PROFILES = ("smoke", "cpu", "gpu", "paper")


def profile_file(section: str) -> Path:
    return repo_root() / "book" / "profiles" / f"{section}.yaml"


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load(section: str, profile: str, overrides: dict | None = None) -> dict:
    """The parameters of ``section`` at ``profile`` (``common`` merged under it), then ``overrides``."""
    path = profile_file(section)
    if not path.exists():
        raise FileNotFoundError(f"no profile file {path} for section {section!r}")
    data = yaml.safe_load(path.read_text()) or {}
    if profile not in data:
        valid = [p for p in PROFILES if p in data]
        raise ValueError(f"section {section!r} has no profile {profile!r}; valid profiles: {valid}")
    return _merge(_merge(data.get("common", {}), data[profile] or {}), overrides or {})


def out_dir(section: str, profile: str, out: str | None = None) -> Path:
    """Absolute output folder: ``out`` if given, else ``runs/<section>/<profile>``."""
    p = Path(out) if out else runs_dir() / section / profile
    p = p.resolve()
    p.mkdir(parents=True, exist_ok=True)
    return p
