"""Runs from plain parameters: the typed :class:`RunSpec`, and :func:`train_run` that records one.

A notebook's parameters cell holds plain dicts; ``RunSpec.from_dict`` checks them once (unknown
keys raise an error listing the valid ones) and the spec then builds its data, model and
weighting in one place (:meth:`RunSpec.build_data`, :meth:`~RunSpec.build_model`,
:meth:`~RunSpec.build_weighting`, :meth:`~RunSpec.build_probes`). ``train_run(out_dir, spec)``
trains with :func:`mtl.train.fit` and records the run under ``out_dir`` (loaded instead when
already finished); its folder is ``<name>-<hash of spec.params()>``.

**Canonical run ids.** :meth:`RunSpec.params` is the spec in a canonical form, so settings that
do not change a result do not change the id: every keyword equal to its factory's default is
left out (dataset, backbone, architecture, weighting, probes, corruption and TrainConfig
fields), integral floats are integers (``2.0`` → ``2``), tuples are lists, ``train.progress`` is
left out (presentation only), so is ``train.engine`` (speed only) and so is ``train.device`` when
it resolves to the device ``"auto"``
gives. A default changed in the code therefore keeps the ids of runs that relied on it: bump the
run's ``name`` (or pass the value explicitly) when a changed default must retrain.
"""
from __future__ import annotations

import json
import os
import tempfile
import inspect
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import torch

from . import data as D
from . import weighting as W
from .checks import check_count
from .data.corruptions import corrupt
from .diagnostics import GradientProbe, RepresentationProbe
from .models import ARCHITECTURES, BACKBONES, create_model
from .paths import portable, repo_root, sibling_run_dirs
from .runs import file_mode, run_id, run_or_load
from .tensorboard import EVENTS_DIR, summary_writer, write_events
from .train import TrainConfig, dry_run, fit, resolve_device, seed_everything

PROBE_KINDS = ("gradient", "representation")


@lru_cache(maxsize=8)
def _bundle(name: str, kw_json: str):
    return D.load(name, **json.loads(kw_json))


def load_data(name: str, **kw):
    """Dataset bundles are cached per process: a section trains many models on the same data."""
    return _bundle(name, json.dumps(kw, sort_keys=True))


def _probe(p: Mapping) -> dict:
    """One probe declaration ``{"kind": "gradient" | "representation", ...}``, checked."""
    p = dict(p)
    kind = p.get("kind")
    if kind not in PROBE_KINDS:
        raise ValueError(f"probe kind must be one of {PROBE_KINDS}, got {kind!r} in {p}")
    if kind == "representation" and set(p) - {"kind", "every"}:
        raise ValueError(f"a representation probe takes only 'every', got {sorted(set(p) - {'kind'})}")
    return p


@dataclass(frozen=True)
class RunSpec:
    """One training run: data, model, weighting, optimisation, and what to record.

    ``train`` holds :class:`~mtl.train.TrainConfig` fields as given (the run id hashes them so);
    ``probes`` are declarations ``{"kind": "gradient", "every": k, ...}`` (:class:`mtl.diagnostics.GradientProbe`)
    or ``{"kind": "representation", "every": k}`` (:class:`mtl.diagnostics.RepresentationProbe`);
    ``save_model`` writes the trained ``state_dict`` as ``<run>/model.pt``. Optional fields left
    at ``None`` are not part of :meth:`params`. ``threads`` is an execution setting: the run trains
    with torch pinned to that many threads (CPU results are bit-identical only at the same count,
    which every record stores in ``info["threads"]``); it is not part of the run id. ``tensorboard``
    is one too: when true, the run's history is also written as TensorBoard events into
    ``<run>/tensorboard/`` (:mod:`mtl.tensorboard`; the JSON record stays the source of truth).

    >>> spec = RunSpec.from_dict({"dataset": "multimnist", "backbone": "lenet", "name": "demo"})
    >>> spec.params()["architecture"], spec.params()["weighting"]
    ('hps', 'ew')
    >>> RunSpec.from_dict(spec.params()) == spec
    True
    """

    dataset: str
    backbone: str
    architecture: str = "hps"
    weighting: str = "ew"
    dataset_kw: Mapping[str, Any] = field(default_factory=dict)
    backbone_kw: Mapping[str, Any] = field(default_factory=dict)
    architecture_kw: Mapping[str, Any] | None = None
    weighting_kw: Mapping[str, Any] = field(default_factory=dict)
    tasks: tuple[str, ...] | None = None
    train: Mapping[str, Any] = field(default_factory=dict)
    corruption: Mapping[str, Any] | None = None
    probes: tuple[Mapping[str, Any], ...] = ()
    save_model: bool | None = None
    name: str | None = None
    threads: int | None = None          # execution setting: torch threads for training (not part of the id)
    tensorboard: bool | None = None     # execution setting: also write TensorBoard events (not part of the id)

    # ------------------------------------------------------------------ plain parameters in and out
    @classmethod
    def from_dict(cls, spec: Mapping[str, Any] | "RunSpec") -> "RunSpec":
        """A spec from plain parameters (what a profile file or ``config.json`` holds).

        Probes may also be given in the recorded form of :meth:`params` (``probes: {every: k, ...}``
        for a gradient probe, ``probe: {rep_cos_every: k}`` for a representation probe).
        """
        if isinstance(spec, RunSpec):
            return spec
        spec = dict(spec)
        valid = {f.name for f in fields(cls)} | {"probe"}
        if spec.get("threads") is not None:
            check_count("threads", spec["threads"])
        if spec.get("tensorboard") is not None and not isinstance(spec["tensorboard"], bool):
            raise ValueError(f"spec key 'tensorboard' must be true or false, got {spec['tensorboard']!r}")
        unknown = set(spec) - valid
        if unknown:
            raise ValueError(f"unknown spec keys {sorted(unknown)}; valid keys: {sorted(valid - {'probe'})}")
        for key in ("dataset", "backbone"):
            if key not in spec:
                raise ValueError(f"spec needs {key!r}; got keys {sorted(spec)}")
        probes = spec.pop("probes", None) or ()
        if isinstance(probes, Mapping):                      # recorded form of a gradient probe
            probes = [{"kind": "gradient", **probes}] if "kind" not in probes else [probes]
        rep = spec.pop("probe", None)                          # recorded form of a representation probe
        if rep is not None:
            if set(rep) != {"rep_cos_every"}:
                raise ValueError(f"spec key 'probe' must be {{'rep_cos_every': k}}, got {rep}")
            probes = [*probes, {"kind": "representation", "every": rep["rep_cos_every"]}]
        if spec.get("tasks") is not None:
            if isinstance(spec["tasks"], str) or not spec["tasks"]:
                raise ValueError(f"spec 'tasks' must be a non-empty list of task names (None or absent: all), "
                                 f"got {spec['tasks']!r}")
            spec["tasks"] = tuple(spec["tasks"])
        return cls(probes=tuple(_probe(p) for p in probes), **spec)

    def params(self) -> dict:
        """The canonical parameters the run id hashes (:func:`mtl.runs.run_id`) and ``config.json`` holds."""
        p = {"architecture": self.architecture, "backbone": self.backbone,
             "backbone_kw": _without_defaults(self.backbone_kw, BACKBONES.get(self.backbone)),
             "dataset": self.dataset, "dataset_kw": _without_defaults(self.dataset_kw, D.DATASETS.get(self.dataset)),
             "train": _canonical_train(self.train), "weighting": self.weighting,
             "weighting_kw": _without_defaults(self.weighting_kw, W.WEIGHTINGS.get(self.weighting))}
        optional = {"name": self.name, "tasks": None if self.tasks is None else list(self.tasks),
                    "architecture_kw": _without_defaults(self.architecture_kw or {},
                                                         ARCHITECTURES.get(self.architecture)),
                    "corruption": _without_defaults(self.corruption or {}, corrupt),
                    "save_model": self.save_model or None,
                    "probes": [{"kind": q["kind"], **_without_defaults({k: v for k, v in q.items() if k != "kind"},
                                                                      _PROBES[q["kind"]])} for q in self.probes]}
        p.update({k: v for k, v in optional.items() if v})
        return p

    def run_id(self) -> str:
        return run_id(self.params())

    def check(self) -> "RunSpec":
        """Every name and keyword checked against its registry (and ``train`` against
        :class:`~mtl.train.TrainConfig`) before anything is built or trained; the error names what
        is wrong and what is valid. Returns the spec."""
        D.DATASETS.check(self.dataset, self.dataset_kw)
        BACKBONES.check(self.backbone, self.backbone_kw)
        ARCHITECTURES.check(self.architecture, self.architecture_kw or {})
        W.WEIGHTINGS.check(self.weighting, self.weighting_kw)
        valid = [f.name for f in fields(TrainConfig)]
        unknown = sorted(set(self.train) - set(valid))
        if unknown:
            raise TypeError(f"spec 'train' has no key(s) {unknown}; valid: {valid}")
        self.config()                                       # TrainConfig checks every value
        if self.corruption:
            unknown = sorted(set(self.corruption) - set(_defaults(corrupt)))
            if unknown:
                raise TypeError(f"spec 'corruption' has no key(s) {unknown}; valid: {sorted(_defaults(corrupt))}")
        return self

    def config(self) -> TrainConfig:
        return TrainConfig(**self.train)

    # ------------------------------------------------------------------ what a run is made of
    def build_data(self, corrupted: bool = True):
        """The dataset (cached per process), corrupted by ``corruption`` if set, restricted to ``tasks``."""
        bundle = load_data(self.dataset, **self.dataset_kw)
        if corrupted and self.corruption:     # noisy labels / subsampled train (mtl.data.corruptions)
            bundle = corrupt(bundle, **self.corruption)
        return bundle.select(list(self.tasks) if self.tasks else [t.name for t in bundle.tasks])

    def build_model(self, bundle=None):
        """A fresh network (architecture over backbone, one head per task of ``bundle``, default this
        spec's data); not seeded here (:func:`train_run` seeds before building)."""
        bundle = bundle if bundle is not None else self.build_data(corrupted=False)
        return create_model(self.architecture, self.backbone, bundle.tasks, architecture_kw=self.architecture_kw,
                            backbone_kw=self.backbone_kw)

    def build_weighting(self):
        """The weighting; keyword arguments its class declares in ``run_arguments`` name recorded runs
        (one run folder, or a mapping of them) and are loaded as models with :func:`load_model`."""
        kw = dict(self.weighting_kw)
        for key in getattr(W.WEIGHTINGS.get(self.weighting), "run_arguments", ()):
            if isinstance(kw.get(key), Mapping):
                kw[key] = {k: load_model(v) for k, v in kw[key].items()}
            elif kw.get(key) is not None:
                kw[key] = load_model(kw[key])
        return W.create(self.weighting, **kw)

    def build_probes(self, bundle) -> list:
        probes = []
        for p in self.probes:
            kw = {k: v for k, v in p.items() if k != "kind"}
            probes.append(GradientProbe(**kw) if p["kind"] == "gradient" else RepresentationProbe(bundle, **kw))
        return probes


def save_state(path, state: dict) -> None:
    """``torch.save(state, path)`` atomically (temporary file + rename), like every run file."""
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


def train_run(out_dir, spec: Mapping[str, Any] | RunSpec) -> dict:
    """Train (or load) the run described by ``spec``; returns the run record (see :mod:`mtl.runs`).
    With ``spec.tensorboard`` its history is also written as TensorBoard events (when a loaded run
    has none yet, too).

    In dry mode (:func:`mtl.train.dry_run`) ``out_dir`` must lie outside the repository's ``runs/``:
    one-step runs are never recorded where real runs are loaded from."""
    spec = RunSpec.from_dict(spec)
    params = spec.params()
    if dry_run() and Path(out_dir).resolve().is_relative_to((repo_root() / "runs").resolve()):
        raise RuntimeError(f"dry mode (MTL_DRY_RUN set) would record one-step runs in {out_dir}, inside runs/; "
                           "point the runs elsewhere (mtl-reproduce --dry-run uses a temporary folder)")

    if spec.tensorboard:
        summary_writer()                 # a missing tensorboard package fails now, not after training

    def run():
        with pinned_threads(spec.threads):
            return _train(spec, params, out_dir)

    rec = run_or_load(out_dir, params, run, reuse=sibling_run_dirs(out_dir))
    if spec.tensorboard and not (rec["resumed"] and (Path(rec["run_dir"]) / EVENTS_DIR).is_dir()):
        write_events(rec["run_dir"], rec["history"])
    return rec


def _train(spec: RunSpec, params: dict, out_dir) -> dict:
    """Train ``spec`` and return its record's content (see :func:`train_run`)."""
    bundle = spec.build_data()
    config = spec.config()
    seed_everything(config.seed)     # the initial weights depend on the seed only
    model = spec.build_model(bundle)
    hist = fit(model, bundle, spec.build_weighting(), config, probes=spec.build_probes(bundle))
    if spec.save_model:              # state_dict as <run>/model.pt, written before metrics.json
        save_state(Path(out_dir) / run_id(params) / "model.pt", model.state_dict())
    return {"metrics": hist.final, "history": hist.epochs, "info": hist.info}


@contextmanager
def pinned_threads(threads: int | None):
    """torch's intra-op thread count set to ``threads`` inside the block (unchanged when None), then restored."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _resolve(path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else repo_root() / p


def load_model(run_dir):
    """The trained model of a run recorded with ``save_model: true``, rebuilt from its ``config.json``
    (``run_dir`` absolute or relative to the repository root); eval mode, ``model.run_dir`` set."""
    run_dir = _resolve(run_dir)
    weights = run_dir / "model.pt"
    if not weights.exists():
        raise FileNotFoundError(f"{weights} does not exist: train the run with spec key save_model: true")
    spec = RunSpec.from_dict(json.loads((run_dir / "config.json").read_text()))
    model = spec.build_model()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.run_dir = portable(run_dir)
    return model.eval()


# ----------------------------------------------------------------------------- the canonical form
_PROBES = {"gradient": GradientProbe, "representation": RepresentationProbe}


def _norm(v):
    """A JSON value in canonical form: integral floats as ints, tuples as lists, mappings with str keys."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, Mapping):
        return {str(k): _norm(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    return v


def _defaults(factory) -> dict:
    return {n: q.default for n, q in inspect.signature(factory).parameters.items()
            if q.default is not inspect.Parameter.empty}


def _without_defaults(kw: Mapping, factory) -> dict:
    """``kw`` in canonical form without the entries equal to ``factory``'s defaults."""
    defaults = _defaults(factory)
    return {k: _norm(v) for k, v in kw.items() if not (k in defaults and _norm(v) == _norm(defaults[k]))}


def _canonical_train(train: Mapping) -> dict:
    """TrainConfig fields without defaults, ``progress`` (presentation), ``engine`` (speed only: every
    path gives the same numbers) and a device that resolves like "auto"."""
    out = {k: v for k, v in train.items() if k not in ("progress", "engine")}
    try:
        if "device" in out and resolve_device(out["device"]).type == resolve_device("auto").type:
            out.pop("device")
    except ValueError:                      # e.g. "cuda" asked for on a machine without it: keep it
        pass
    return _without_defaults(out, TrainConfig)
