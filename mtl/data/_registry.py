"""The data registry and what its modules share (imported by them, re-exported by the package)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Dataset

from ..registry import Registry
from ..tasks import LABELED, Task, TaskInputs

DATASETS = Registry("dataset")
SPLITS = ("train", "val", "test")


@dataclass
class DataBundle:
    """The splits of one dataset with its tasks; ``select`` keeps a subset of tasks (e.g. for STL)."""

    name: str
    tasks: list[Task]
    train: Dataset
    val: Dataset
    test: Dataset
    collate: Callable | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def split(self, split: str) -> Dataset:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid: {SPLITS}")
        return getattr(self, split)

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"dataset {self.name!r} has no task {name!r}; tasks: {[t.name for t in self.tasks]}")

    def select(self, task_names) -> "DataBundle":
        return replace(self, tasks=[self.task(n) for n in task_names])

    def loader(self, split: str, batch_size: int, shuffle: bool = False, seed: int = 0,
               drop_last: bool = False) -> DataLoader:
        g = torch.Generator().manual_seed(seed)
        return DataLoader(self.split(split), batch_size=batch_size, shuffle=shuffle, generator=g,
                          drop_last=drop_last, collate_fn=self.collate, num_workers=0)

    def n_samples(self, split: str) -> int:
        """Samples in ``split`` (what one training pass covers)."""
        return len(self.split(split))


@dataclass
class MultiInputBundle(DataBundle):
    """Multi-input tasks: each task has its own input domain, so each split is ``{task: Dataset}``
    (Office-31, Office-Home: one classification task per domain, as in LibMTL's multi-input setting).

    A batch is ``(TaskInputs({task: x_t}), {task: y_t})``: one batch per task, drawn from that
    task's own loader. Shuffled loaders (training) run as long as the longest task's and restart
    the shorter ones, so every batch holds every task; unshuffled ones (evaluation) visit each
    task's split once, and a batch holds the tasks whose split is not yet exhausted. A task's
    dataset may yield ``(x, y)`` or ``(x, {task: y})``, the latter with a partial-label mask
    (:data:`mtl.tasks.LABELED`), which the batch keeps.
    """

    def select(self, task_names) -> "MultiInputBundle":
        tasks = [self.task(n) for n in task_names]
        parts = {s: {t.name: self.split(s)[t.name] for t in tasks} for s in SPLITS}
        return replace(self, tasks=tasks, **parts)

    def n_samples(self, split: str) -> int:
        """The largest task's number of samples in ``split`` (a pass covers the largest domain)."""
        return max(len(d) for d in self.split(split).values())

    def loader(self, split: str, batch_size: int, shuffle: bool = False, seed: int = 0,
               drop_last: bool = False) -> "MultiInputLoader":
        loaders = {}
        for k, t in enumerate(self.tasks):
            ds = self.split(split)[t.name]
            g = torch.Generator().manual_seed(seed + 104729 * k)
            loaders[t.name] = DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=g,
                                         drop_last=drop_last and len(ds) > batch_size, collate_fn=self.collate,
                                         num_workers=0)
        return MultiInputLoader(loaders, cycle=shuffle)


class MultiInputLoader:
    """Zips one loader per task into ``(TaskInputs, {task: y})`` batches (see :class:`MultiInputBundle`)."""

    def __init__(self, loaders: dict, cycle: bool):
        self.loaders, self.cycle = loaders, cycle

    def __len__(self) -> int:
        return max(len(dl) for dl in self.loaders.values())

    def __iter__(self):
        its = {t: iter(dl) for t, dl in self.loaders.items()}
        for _ in range(len(self)):
            xs, ys = TaskInputs(), {}
            for t in list(its):
                try:
                    x, y = next(its[t])
                except StopIteration:
                    if not self.cycle:
                        del its[t]
                        continue
                    its[t] = iter(self.loaders[t])
                    x, y = next(its[t])
                if isinstance(y, dict):                       # {task: y} (with its partial-label mask, if any)
                    mask = (y.get(LABELED) or {}).get(t)
                    if mask is not None:
                        ys.setdefault(LABELED, {})[t] = mask
                    y = y[t]
                xs[t], ys[t] = x, y
            yield xs, ys


def names(pattern: str = "*") -> list[str]:
    """Every registered dataset name (matching the glob ``pattern``)."""
    return DATASETS.names(pattern)


def info(name: str):
    """Label and paper of dataset ``name`` (:class:`~mtl.registry.Info`)."""
    return DATASETS.info(name)


def load(name: str, **kwargs) -> DataBundle:
    """Build dataset ``name`` (see ``names()``) with its keyword arguments."""
    return DATASETS.create(name, **kwargs)


# Label and source of each dataset, attached when its loader module registers it.
INFO = {
    "multimnist": dict(label="MultiMNIST", paper="PaMaL / EXTRA protocol (Zhou et al. 2025, App. A.2)"),
    "scenes": dict(label="Scenes (procedural)"),
    "attributes40": dict(label="Attributes-40 (generated)"),
    "celeba": dict(label="CelebA", paper="Liu et al., ICCV 2015"),
    "cityscapes": dict(label="CityScapes", paper="MTAN's preprocessing, Liu et al., CVPR 2019"),
    "nyuv2": dict(label="NYUv2", paper="MTAN's preprocessing, Liu et al., CVPR 2019"),
    "qm9": dict(label="QM9", paper="Ramakrishnan et al., Sci. Data 2014"),
    "office31": dict(label="Office-31", paper="Saenko et al., ECCV 2010"),
    "office_home": dict(label="Office-Home", paper="Venkateswara et al., CVPR 2017"),
}


def register(name: str, **meta):
    """Decorator: register a loader; its label and paper come from :data:`INFO` unless given."""
    return DATASETS.register(name, **{**INFO.get(name.lower(), {}), **meta})
