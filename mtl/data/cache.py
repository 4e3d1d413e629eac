"""Generated-data cache entries written once, verified on every load, safe with several processes.

An entry is built under its file lock (:func:`mtl.runs.file_lock`), so two processes never build
the same entry at once: the second waits and loads the first's. It is written to a temporary
``<entry>.tmp<pid>`` and renamed into place; temporaries left by killed processes are removed on
the next build. An entry that fails verification is named in one warning, moved to
``<folder>/.corrupt/`` and rebuilt.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

from ..runs import file_lock, file_mode, move_aside, remove_stale


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def cached_entry(path: Path, load: Callable[[Path], object], build: Callable[[Path], None]) -> tuple[object, bool]:
    """``(load(path), built)``: the verified entry at ``path``, built first by ``build(tmp)`` if it is
    missing or fails ``load`` (which raises on a corrupt entry)."""
    path = Path(path)

    def verified(move: bool):
        if not path.exists():
            return None
        try:
            return load(path)
        except Exception as e:  # noqa: BLE001  any failure to load is a corrupt entry
            if move:
                move_aside(path, f"corrupt cache entry {path} ({_first_line(e)})")
            return None

    remove_stale(path.parent, f"{path.name}.tmp*")  # left by killed builds (their pid is dead)
    data = verified(move=False)                     # the common case: no lock
    if data is not None:
        return data, False
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path):
        data = verified(move=True)                  # built by another process while we waited?
        if data is not None:
            return data, False
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        try:
            build(tmp)
            os.replace(tmp, path)
        except BaseException:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            raise
        return load(path), True


def save_tensors(data: dict, tmp: Path) -> None:
    """``torch.save`` with the umask's file mode (what a plain write would give)."""
    import torch

    torch.save(data, tmp)
    os.chmod(tmp, file_mode())


def load_tensors_checked(path: Path, shapes: Callable[[dict], dict]) -> dict:
    """``torch.load(path)`` whose tensors must have the shapes ``shapes(data)`` expects ({key: shape})."""
    import torch

    data = torch.load(path, weights_only=True)
    if not isinstance(data, dict):
        raise ValueError(f"expected a dict of tensors, got {type(data).__name__}")
    want = shapes(data)
    got = {k: tuple(data[k].shape) if hasattr(data.get(k), "shape") else None for k in want}
    bad = {k: (got[k], want[k]) for k in want
           if got[k] is None or len(got[k]) != len(want[k])
           or any(w is not None and g != w for g, w in zip(got[k], want[k]))}
    if bad:
        raise ValueError("unexpected tensors " + ", ".join(f"{k}: {g} (expected {w})" for k, (g, w) in bad.items()))
    return data
