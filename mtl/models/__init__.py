"""Backbones and multi-task architectures, registered by name.

``create_model(architecture, backbone, tasks, architecture_kw=..., backbone_kw=...)`` builds a
:class:`MultiTaskModel`; ``architecture_names()`` / ``backbone_names()`` list what exists and
``ARCHITECTURES.info(name)`` / ``BACKBONES.info(name)`` give an entry's label and paper.

>>> from mtl import tasks
>>> m = create_model("hps", "lenet", [tasks.classification("left", 10)], backbone_kw={"features": 20})
>>> type(m).__name__, ARCHITECTURES.label("hps"), BACKBONES.label("lenet")
('MultiTaskModel', 'HPS', 'LeNet')
"""
from __future__ import annotations

from ..registry import Registry
from .base import MultiTaskModel

BACKBONES = Registry("backbone")
ARCHITECTURES = Registry("architecture")


def backbone_names(pattern: str = "*") -> list[str]:
    return BACKBONES.names(pattern)


def architecture_names(pattern: str = "*") -> list[str]:
    return ARCHITECTURES.names(pattern)


def create_model(architecture: str, backbone: str, tasks, *, architecture_kw: dict | None = None,
                 backbone_kw: dict | None = None) -> MultiTaskModel:
    """An architecture (e.g. ``"hps"``) over a backbone (e.g. ``"segnet"``) with one head per task.

    ``architecture_kw`` goes to the architecture (e.g. ``{"num_experts": 2}``), ``backbone_kw`` to
    the backbone (e.g. ``{"width": 16}``); unknown keywords raise a TypeError listing the valid ones
    before anything is built. One task gives the architecture's own single-task variant."""
    backbone_kw, architecture_kw = dict(backbone_kw or {}), dict(architecture_kw or {})
    BACKBONES.check(backbone, backbone_kw)
    return ARCHITECTURES.create(architecture, backbone_fn=lambda: BACKBONES.create(backbone, **backbone_kw),
                                tasks=list(tasks), **architecture_kw)


from . import backbones, hps  # noqa: E402,F401  (registration)
from . import cnn9, mpnn  # noqa: E402,F401  (registration: issue 3 backbones)
from . import resnet, vit, cross_stitch, mmoe, mtan, cgc, ple, ltb, dselect_k  # noqa: E402,F401  (issue 5)

__all__ = ["MultiTaskModel", "create_model", "backbone_names", "architecture_names", "BACKBONES", "ARCHITECTURES"]
