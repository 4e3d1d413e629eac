"""Run records: ``<out>/<run-id>/{config.json, history.json, history.csv, metrics.json}``.

The id is a readable prefix plus a hash of the canonical parameters, so the same parameters
always map to the same folder. Every file is written atomically (temporary file + rename, mode
0666 less the umask) and ``metrics.json`` is written last: its presence marks a finished run,
which is then loaded instead of re-run, so an interrupted reproduction resumes where it stopped.

Several processes may share one runs folder: a run is trained under an OS file lock
(``<out>/.locks/<run-id>.lock``, released by the OS if its holder dies), so a second worker waits
and loads it instead of training it twice. A finished record that does not load (truncated JSON,
wrong structure) is moved to ``<out>/.corrupt/<run-id>-<time>/`` with a warning and re-run.
A run recorded in another folder (``reuse``: e.g. another section's folder of the same profile) with
the same parameters is copied instead of re-trained: the same spec, seed and thread count give the
same metrics, so the copy is the record training would write.
The same primitives (:func:`file_lock`, :func:`move_aside`, :func:`remove_stale`) guard the
dataset caches of :mod:`mtl.data`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd


def canonical(params: dict) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


def run_id(params: dict) -> str:
    """``<name>-<10 hex digits>``; ``params["name"]`` (if any) gives the readable prefix."""
    digest = hashlib.sha1(canonical(params).encode()).hexdigest()[:10]
    prefix = re.sub(r"[^A-Za-z0-9_.=-]+", "_", str(params.get("name", "run")))[:60]
    return f"{prefix}-{digest}"


LOCKS, CORRUPT = ".locks", ".corrupt"
STALE_SECONDS = 6 * 3600          # a temporary file this old is stale even if its pid is alive (pid reuse)
_TMP_PID = re.compile(r"\.(\d+)\.[^.]*\.tmp$|\.tmp(\d+)$")   # write_atomic's and the caches' temporaries


def file_mode() -> int:
    """The mode a plain ``open(..., "w")`` would give a new file: 0666 less the process umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())                      # mkstemp creates 0600
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_lock(path: str | Path):
    """An exclusive lock on ``path`` (a run folder or a cache entry), held as ``with file_lock(p): ...``.

    The lock file is ``<parent>/.locks/<name>.lock``; the lock is an OS lock (``flock``), so the
    OS releases it when its holder dies, even by SIGKILL: a crashed worker never blocks others.
    """
    from filelock import FileLock

    path = Path(path)
    (path.parent / LOCKS).mkdir(parents=True, exist_ok=True)
    return FileLock(str(path.parent / LOCKS / f"{path.name}.lock"), mode=file_mode())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:                             # alive, another user's
        return True
    return True


def remove_stale(folder: str | Path, pattern: str = "*") -> list[Path]:
    """Remove the temporaries matching ``pattern`` in ``folder`` left by dead processes (their pid,
    in the name, is not alive) or older than :data:`STALE_SECONDS`; returns what was removed."""
    removed = []
    for p in Path(folder).glob(pattern) if Path(folder).is_dir() else []:
        m = _TMP_PID.search(p.name)
        if not m:
            continue
        pid = int(m.group(1) or m.group(2))
        try:
            old = time.time() - p.lstat().st_mtime > STALE_SECONDS
        except FileNotFoundError:
            continue
        if (pid != os.getpid() and not pid_alive(pid)) or old:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def move_aside(path: str | Path, reason: str, then: str = "rebuilt") -> Path:
    """Move a corrupt record or cache entry to ``<parent>/.corrupt/<name>-<time>`` with a one-line warning."""
    path = Path(path)
    dest = path.parent / CORRUPT / f"{path.name}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, dest)
    warnings.warn(f"{reason}; moved to {dest} and {then}", RuntimeWarning, stacklevel=2)
    return dest


def check_writable(folder: str | Path, what: str = "runs folder") -> Path:
    """``folder`` (created if missing) must accept new files, checked before hours of training."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise PermissionError(f"{what} {folder} is not writable ({e.strerror or e}); "
                              "choose another out_dir or fix its permissions") from None
    return folder


def write_json(path: str | Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=1, sort_keys=True, default=float) + "\n")


def is_complete(run_dir: str | Path) -> bool:
    return (Path(run_dir) / "metrics.json").exists()


class CorruptRecordError(ValueError):
    """A finished run's files do not load or lack the record's structure; the message names the file."""


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptRecordError(f"corrupt run record {path}: not valid JSON ({e})") from None


def load_run(run_dir: str | Path) -> dict:
    """The record of a finished run; :class:`CorruptRecordError` (naming the file) if it is damaged:
    ``metrics.json`` must be an object with ``params`` and ``metrics`` objects, ``history.json`` a list."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.json"
    out = _read_json(path)
    if not (isinstance(out, dict) and isinstance(out.get("params"), dict) and isinstance(out.get("metrics"), dict)):
        raise CorruptRecordError(f"corrupt run record {path}: expected an object with 'params' and 'metrics' "
                                 f"objects, got {type(out).__name__}"
                                 + (f" with keys {sorted(out)}" if isinstance(out, dict) else ""))
    hist = run_dir / "history.json"
    out["history"] = _read_json(hist) if hist.exists() else []
    if not isinstance(out["history"], list):
        raise CorruptRecordError(f"corrupt run record {hist}: expected a list of epoch records, "
                                 f"got {type(out['history']).__name__}")
    return out


def finished_records(out_dir: str | Path) -> list[Path]:
    """The ``metrics.json`` of every finished run under ``out_dir`` (any depth; moved-aside ones excluded), sorted."""
    return [f for f in sorted(Path(out_dir).rglob("metrics.json")) if CORRUPT not in f.parts]


def recorded(out_dir: str | Path, key: str) -> dict:
    """How many finished runs under ``out_dir`` recorded each value of ``info[key]`` (e.g. "threads", "torch")."""
    counts: dict = {}
    for f in finished_records(out_dir):
        value = json.loads(f.read_text()).get("info", {}).get(key)
        if value is not None:
            counts[value] = counts.get(value, 0) + 1
    return counts


def history_frame(history: list[dict]) -> pd.DataFrame:
    """Flatten per-epoch records into one row per epoch (columns like ``val/depth/rmse``)."""
    return pd.json_normalize(history, sep="/")


def _finished(run_dir: Path, params: dict, move_corrupt: bool) -> dict | None:
    """The verified record in ``run_dir``, or None when absent (or corrupt and ``move_corrupt``: moved aside)."""
    if not is_complete(run_dir):
        return None
    try:
        rec = load_run(run_dir)
    except CorruptRecordError as e:
        if not move_corrupt:
            return None
        move_aside(run_dir, str(e), then="re-run")
        return None
    if rec.get("params") != json.loads(canonical(params)):
        raise RuntimeError(f"{run_dir} holds a run with other parameters (hash collision or edited file)")
    rec["run_dir"], rec["resumed"] = str(run_dir), True
    return rec


def copy_record(src: Path, dst: Path) -> None:
    """Copy the finished run folder ``src`` to ``dst`` file by file, atomically, ``metrics.json`` last."""
    files = sorted((f for f in src.iterdir() if f.is_file() and not f.name.endswith(".tmp")),
                   key=lambda f: f.name == "metrics.json")
    dst.mkdir(parents=True, exist_ok=True)
    for f in files:
        fd, tmp = tempfile.mkstemp(dir=dst, prefix=f".{f.name}.{os.getpid()}.", suffix=".tmp")
        os.close(fd)
        try:
            shutil.copyfile(f, tmp)
            os.chmod(tmp, file_mode())
            os.replace(tmp, dst / f.name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _recorded_elsewhere(reuse: Sequence[str | Path], params: dict) -> Path | None:
    """The first folder of ``reuse`` holding a finished, verified record of ``params``."""
    for folder in reuse:
        src = Path(folder) / run_id(params)
        try:
            if _finished(src, params, move_corrupt=False) is not None:
                return src
        except RuntimeError:                    # other parameters under that name: not this run
            continue
    return None


def run_or_load(out_dir: str | Path, params: dict, fn: Callable[[], dict], reuse: Sequence[str | Path] = ()) -> dict:
    """Load the finished run of ``params`` under ``out_dir`` or compute it with ``fn`` and record it.

    ``fn`` returns ``{"metrics": ..., "history": [...], "info": {...}}``; the record returned has
    ``params``, ``metrics``, ``info``, ``history`` and ``run_dir``. ``out_dir`` must be writable
    before ``fn`` runs; ``fn`` runs under the run's lock, so concurrent workers train it once; a
    corrupt record is moved aside (warning) and re-run; if ``fn`` raises, nothing is recorded. A
    finished record of ``params`` in one of the ``reuse`` folders is copied in instead of computing.
    """
    run_dir = Path(out_dir) / run_id(params)
    rec = _finished(run_dir, params, move_corrupt=False)           # the common case: no lock, no write
    if rec is not None:
        return rec
    check_writable(out_dir)
    with file_lock(run_dir):
        rec = _finished(run_dir, params, move_corrupt=True)        # another worker may have finished it
        if rec is not None:
            return rec
        remove_stale(run_dir, ".*.tmp")
        src = _recorded_elsewhere(reuse, params)
        if src is not None:
            copy_record(src, run_dir)
            return {**load_run(run_dir), "run_dir": str(run_dir), "resumed": True, "copied_from": str(src)}
        result = fn()
        history = result.get("history", [])
        write_json(run_dir / "config.json", params)
        write_json(run_dir / "history.json", history)
        write_atomic(run_dir / "history.csv", history_frame(history).to_csv(index=False) if history else "")
        rec = {"params": json.loads(canonical(params)), "metrics": result["metrics"], "info": result.get("info", {})}
        write_json(run_dir / "metrics.json", rec)
    return {**rec, "history": history, "run_dir": str(run_dir), "resumed": False}
