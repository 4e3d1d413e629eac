"""An optional TensorBoard sink: a run's history as TensorBoard events beside its JSON record.

``<run>/history.json`` stays the source of truth; the events are written *from* it, after the run
is recorded (``RunSpec(tensorboard=True)``, ``mtl train --tensorboard``) or at any later time for
any finished run (:func:`write_events`), into ``<run>/tensorboard/``. Asking for them is an
execution setting, never part of the run id. View with ``tensorboard --logdir runs/``.

What is written (:func:`scalars`): per epoch, at step = epoch, ``train_loss/<task>``,
``weights/<task>``, ``val/<task>/<metric>``, ``test/<task>/<metric>`` and ``time``; each probe
record (:mod:`mtl.diagnostics`) at its optimisation step under ``probes/<probe>/<key>`` with
``/<task>`` for per-task values and ``/<task>/<task>`` for pairwise matrices.

Needs the optional ``tensorboard`` package (``pip install -e ".[tensorboard]"``): without it,
asking for events raises an ImportError saying so (there is no silent fallback).
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
from numbers import Real
from pathlib import Path

from .runs import load_run

EVENTS_DIR = "tensorboard"                     # <run>/tensorboard/events.out.tfevents.*
EPOCH_KEYS = ("train_loss", "weights", "val", "test", "time")
INSTALL_HINT = 'TensorBoard events need the optional package tensorboard: pip install -e ".[tensorboard]"'


def summary_writer():
    """``torch.utils.tensorboard.SummaryWriter``; ImportError with the install hint when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:       # torch raises this when the tensorboard package is absent
        raise ImportError(f"{INSTALL_HINT} ({e})") from None
    return SummaryWriter


def _leaves(prefix: str, value, tasks: list[str]):
    """(tag, float) for every finite number under ``value``; lists of length T are indexed by task."""
    if isinstance(value, bool):
        return
    if isinstance(value, Real):
        if math.isfinite(float(value)):
            yield prefix, float(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(f"{prefix}/{k}", v, tasks)
    elif isinstance(value, (list, tuple)):
        names = tasks if len(value) == len(tasks) else [str(i) for i in range(len(value))]
        for k, v in zip(names, value):
            yield from _leaves(f"{prefix}/{k}", v, tasks)


def scalars(history: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` of every number in a run's epoch records (see the module doc).

    >>> h = [{"epoch": 0, "train_loss": {"a": 1.0, "b": 2.0}, "weights": {}, "time": 0.5,
    ...       "val": {"a": {"acc": 0.5}}, "test": {"a": {"acc": 0.25}},
    ...       "probes": [{"probe": "gradients", "step": 3, "epoch": 0, "cos": [[1.0, 0.5], [0.5, 1.0]]}]}]
    >>> s = scalars(h)
    >>> s["train_loss/b"], s["test/a/acc"], s["probes/gradients/cos/a/b"]
    ([(0, 2.0)], [(0, 0.25)], [(3, 0.5)])
    """
    out: dict[str, list[tuple[int, float]]] = {}
    for rec in history:
        tasks = list(rec.get("train_loss", {}))
        for key in EPOCH_KEYS:
            for tag, v in _leaves(key, rec.get(key, {}), tasks):
                out.setdefault(tag, []).append((int(rec["epoch"]), v))
        for p in rec.get("probes", []):
            rest = {k: v for k, v in p.items() if k not in ("probe", "step", "epoch")}
            for tag, v in _leaves(f"probes/{p.get('probe', 'probe')}", rest, tasks):
                out.setdefault(tag, []).append((int(p["step"]), v))
    return out


def write_events(run_dir: str | Path, history: list[dict] | None = None) -> Path:
    """Write ``run_dir``'s history (default: its ``history.json``) as TensorBoard events into
    ``run_dir/tensorboard/``, replacing what was there; returns that folder. The events are written
    into a temporary folder renamed into place, so a reader never sees half a run."""
    SummaryWriter = summary_writer()
    run_dir = Path(run_dir)
    if history is None:
        history = load_run(run_dir)["history"]
    tmp = Path(tempfile.mkdtemp(dir=run_dir, prefix=f".{EVENTS_DIR}.{os.getpid()}.", suffix=".tmp"))
    try:
        writer = SummaryWriter(log_dir=str(tmp))
        for tag, points in scalars(history).items():
            for step, value in points:
                writer.add_scalar(tag, value, global_step=step)
        writer.close()
        dest = run_dir / EVENTS_DIR
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
