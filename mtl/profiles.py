"""Section profiles: ``book/sections/<section>.yaml`` holds one mapping per profile.

Profiles: ``smoke`` (tiny, for tests and nbval), ``cpu`` (the default reproduction on a laptop),
``gpu`` (embedded data at full size, for a lent GPU), ``paper`` (the seeds' datasets, user data).
A section page ``book/sections/<section>.md`` opens with ``P, OUT = S.setup(profile, out_dir)``
(``S = mtl.studies.<section>``): its module's ``Params`` dataclass names the valid top-level
keys and :func:`setup` checks the profile against it.
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import yaml

from .paths import portable, repo_root, runs_dir

PROFILES = ("smoke", "cpu", "gpu", "paper")


def sections_dir() -> Path:
    """``book/sections``: each section's page (``.md``) and profiles (``.yaml``) side by side."""
    return repo_root() / "book" / "sections"


def profile_file(section: str) -> Path:
    return sections_dir() / f"{section}.yaml"


def _read(section: str) -> dict:
    path = profile_file(section)
    if not path.exists():
        raise FileNotFoundError(f"no profile file {path} for section {section!r}")
    return yaml.safe_load(path.read_text()) or {}


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def defined(section: str) -> list[str]:
    """The profiles ``book/sections/<section>.yaml`` defines, in :data:`PROFILES` order."""
    data = _read(section)
    return [p for p in PROFILES if p in data]


def load(section: str, profile: str, overrides: dict | None = None) -> dict:
    """The parameters of ``section`` at ``profile`` (``common`` merged under it), then ``overrides``."""
    data = _read(section)
    if profile not in data:
        valid = [p for p in PROFILES if p in data]
        raise ValueError(f"section {section!r} has no profile {profile!r}; valid profiles: {valid}")
    return _merge(_merge(data.get("common", {}), data[profile] or {}), overrides or {})


def validate(params: dict, schema: type, source: str) -> dict:
    """Check the top-level keys of ``params`` against the fields of the dataclass ``schema``.

    Every key must be a field and every field without a default must be given; ``source`` (the
    yaml file and profile) is named in the error. Values are checked by the code that uses them.
    Returns ``params`` itself: pages and modules keep reading it as a mapping.
    """
    fields = dataclasses.fields(schema)
    valid = [f.name for f in fields]
    required = [f.name for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    unknown = [k for k in params if k not in valid]
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown}; valid keys: {valid}")
    missing = [k for k in required if k not in params]
    if missing:
        raise ValueError(f"{source}: missing required key(s) {missing}; required: {required}, valid keys: {valid}")
    schema(**params)  # a schema's own __post_init__ checks, if it has any
    return params


def out_dir(section: str, profile: str, out: str | Path | None = None) -> Path:
    """Absolute output folder, created: ``out`` if given (absolute, or relative to the repository
    root), else ``runs/<section>/<profile>``."""
    p = Path(out) if out else runs_dir() / section / profile
    p = (p if p.is_absolute() else repo_root() / p).resolve()
    p.mkdir(parents=True, exist_ok=True)
    return p


def setup(section: str, schema: type, profile: str, out: str | Path | None = None) -> tuple[dict, Path]:
    """What a section page starts from: its parameters at ``profile``, checked against ``schema``
    (the section module's ``Params``), and its absolute output folder (see :func:`out_dir`)."""
    params = load(section, profile)
    validate(params, schema, f"{portable(profile_file(section))} (profile {profile!r}, `common` merged)")
    return params, out_dir(section, profile, out)
