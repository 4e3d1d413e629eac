"""The data registry and what its modules share (imported by them, re-exported by the package)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Dataset

from ..registry import Registry
from ..tasks import Task

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
}


def register(name: str, **meta):
    """Decorator: register a loader; its label and paper come from :data:`INFO` unless given."""
    return DATASETS.register(name, **{**INFO.get(name.lower(), {}), **meta})
