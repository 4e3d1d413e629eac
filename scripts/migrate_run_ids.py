"""Rename every recorded run under ``runs/`` to its canonical id (no retraining).

Run ids hash :meth:`mtl.experiment.RunSpec.params`, the spec in canonical form (see
:mod:`mtl.experiment`). Records made before that form existed carry ids of the spec as it was
written; this script recomputes each id, rewrites ``config.json`` and the ``params`` of
``metrics.json`` to the canonical parameters and renames the folder. Records that point at other
runs (EXTRA curves name their end points, URL runs their teachers, feature-distance records their
runs) are rewritten to the new names first, so their ids follow. A default that changed after
runs were recorded (``CHANGED_DEFAULTS``) is first written into the records made with the old value
(checked against the weighting recorded in ``metrics.json``), so that they keep meaning what they
ran. Idempotent: a second run changes nothing.

    python scripts/migrate_run_ids.py [--runs runs] [--dry-run]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from mtl.experiment import RunSpec
from mtl.paths import repo_root
from mtl.runs import canonical, run_id, write_json


# weighting -> {argument: the default it had when older runs were recorded}
CHANGED_DEFAULTS = {"fairgrad": {"alpha": 1.0}}


def pin_changed_defaults(params: dict, info: dict) -> dict:
    """``params`` with each changed default the run was made with written out (from ``info["weighting"]``,
    the repr of the weighting that ran, e.g. ``FairGrad(..., alpha=1.0, ...)``)."""
    old = CHANGED_DEFAULTS.get(params.get("weighting"), {})
    kw = dict(params.get("weighting_kw") or {})
    ran = str(info.get("weighting", ""))
    pinned = {k: v for k, v in old.items() if k not in kw and re.search(rf"\b{k}={v!r}[,)]", ran)}
    return {**params, "weighting_kw": {**kw, **pinned}} if pinned else params


def records(root: Path) -> list[Path]:
    """Every run folder (one holding ``config.json``), outside ``.corrupt`` folders."""
    return sorted(p.parent for p in root.rglob("config.json") if ".corrupt" not in p.parts)


def substitute(value, names: dict[str, str]):
    """``value`` with every reference to a renamed run folder (a name, or a path ending in one) renamed."""
    if isinstance(value, str):
        head, _, tail = value.rpartition("/")
        if tail in names:
            return f"{head}/{names[tail]}" if head else names[tail]
        return value
    if isinstance(value, dict):
        return {k: substitute(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, names) for v in value]
    return value


def canonical_params(params: dict) -> dict:
    try:
        spec = RunSpec.from_dict(params)
    except ValueError:                     # curve, timing, distance, memory records: plain parameters
        return params
    return spec.params()


def info(d: Path) -> dict:
    m = d / "metrics.json"
    return json.loads(m.read_text()).get("info", {}) if m.exists() else {}


def plan(root: Path) -> dict[Path, tuple[str, dict]]:
    """folder -> (new folder name, new params), iterated until references settle."""
    configs = {d: pin_changed_defaults(json.loads((d / "config.json").read_text()), info(d)) for d in records(root)}
    names: dict[str, str] = {}
    for _ in range(10):
        out = {}
        for d, params in configs.items():
            new = canonical_params(substitute(params, names))
            out[d] = (run_id(new), new)
        new_names = {d.name: name for d, (name, _) in out.items()}
        if new_names == names:
            return out
        names = new_names
    raise RuntimeError("run references did not settle after 10 passes (a reference cycle?)")


def apply(moves: dict[Path, tuple[str, dict]], dry_run: bool) -> int:
    renamed = {d.name: name for d, (name, _) in moves.items() if d.name != name}
    pattern = re.compile("|".join(map(re.escape, sorted(renamed, key=len, reverse=True)))) if renamed else None
    changed = 0
    for d, (name, params) in moves.items():
        old = json.loads((d / "config.json").read_text())
        if name == d.name and old == params:
            continue
        changed += 1
        target = d.with_name(name)
        if target != d and target.exists():
            raise FileExistsError(f"cannot rename {d} to {target}: it exists")
        print(f"{d.relative_to(repo_root()) if d.is_relative_to(repo_root()) else d} -> {name}")
        if dry_run:
            continue
        write_json(d / "config.json", params)
        if (d / "metrics.json").exists():
            rec = json.loads((d / "metrics.json").read_text())
            rec["params"] = json.loads(canonical(params))
            if pattern:                    # provenance text in info (e.g. URL's teacher folders) follows the renames
                rec["info"] = json.loads(pattern.sub(lambda m: renamed[m.group(0)], json.dumps(rec.get("info", {}))))
            write_json(d / "metrics.json", rec)
        if target != d:
            os.replace(d, target)
    return changed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=str(repo_root() / "runs"), help="the runs folder (default: runs/)")
    ap.add_argument("--dry-run", action="store_true", help="print the renames, change nothing")
    args = ap.parse_args(argv)
    root = Path(args.runs).resolve()
    if not root.is_dir():
        ap.error(f"{root} is not a folder")
    n = apply(plan(root), args.dry_run)
    print(f"{n} records {'would change' if args.dry_run else 'migrated'} under {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
