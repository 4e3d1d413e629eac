"""Run one training configuration from plain parameters (what a notebook's parameters cell holds).

``train_run(out_dir, spec)`` builds the dataset, model and weighting named in ``spec``, trains
with :func:`mtl.train.fit` and records the run under ``out_dir`` (skipped if already finished).
"""
from __future__ import annotations

import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

from . import data as D
from . import weighting as W
from .data.corruptions import corrupt
from .models import create_model
from .runs import file_mode, run_id, run_or_load
from .diagnostics import GradientProbe
from .train import TrainConfig, fit, seed_everything

SPEC_KEYS = {"name", "dataset", "dataset_kw", "tasks", "architecture", "architecture_kw", "backbone", "backbone_kw",
             "weighting", "weighting_kw", "train", "corruption", "save_model", "probes"}


@lru_cache(maxsize=8)
def _bundle(name: str, kw_json: str):
    return D.load(name, **json.loads(kw_json))


def load_data(name: str, **kw):
    """Dataset bundles are cached per process: a section trains many models on the same data."""
    return _bundle(name, json.dumps(kw, sort_keys=True))


def save_state(path, state: dict) -> None:
    """``torch.save(state, path)`` atomically (temporary file + rename), like every run file."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    os.fchmod(fd, file_mode())  # mkstemp creates 0600; records follow the umask
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def train_run(out_dir, spec: dict) -> dict:
    """Train (or load) the run described by ``spec``; returns the run record (see :mod:`mtl.runs`).

    An optional ``corruption`` dict is passed to :func:`mtl.data.corruptions.corrupt` after loading
    (seed 004 §V-E); it is part of the spec, hence of the run id.
    """
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise ValueError(f"unknown spec keys {sorted(unknown)}; valid keys: {sorted(SPEC_KEYS)}")
    for key in ("dataset", "backbone"):
        if key not in spec:
            raise ValueError(f"spec needs {key!r}")
    if spec.get("tasks") is not None and (isinstance(spec["tasks"], str) or not spec["tasks"]):
        raise ValueError(f"spec 'tasks' must be a non-empty list of task names (None or absent: all), got {spec['tasks']!r}")
    spec = {"architecture": "hps", "weighting": "ew", "dataset_kw": {}, "backbone_kw": {}, "weighting_kw": {},
            "train": {}, **spec}

    def run():
        bundle = load_data(spec["dataset"], **spec["dataset_kw"])
        if spec.get("corruption"):  # seed 004 §V-E: noisy labels / subsampled train (mtl.data.corruptions)
            bundle = corrupt(bundle, **spec["corruption"])
        tasks = spec.get("tasks") or [t.name for t in bundle.tasks]
        bundle = bundle.select(tasks)
        config = TrainConfig(**spec["train"])
        seed_everything(config.seed)  # the initial weights depend on the seed only
        model = create_model(spec["architecture"], spec["backbone"], bundle.tasks,
                             architecture_kw=spec.get("architecture_kw"), **spec["backbone_kw"])
        weighting = W.create(spec["weighting"], **spec["weighting_kw"])
        # optional gradient diagnostics (seed 004 §V-F): {"every": k, ...} -> mtl.diagnostics.GradientProbe
        probes = [GradientProbe(**spec["probes"])] if spec.get("probes") else []
        hist = fit(model, bundle, weighting, config, probes=probes)
        if spec.get("save_model"):  # state_dict as <run>/model.pt, written before metrics.json
            save_state(Path(out_dir) / run_id(spec) / "model.pt", model.state_dict())
        return {"metrics": hist.final, "history": hist.epochs, "info": hist.info}

    return run_or_load(out_dir, spec, run)
