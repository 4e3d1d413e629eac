"""Backbones and multi-task architectures, registered by name.

``create_model(architecture, backbone, tasks, **backbone_kw)`` builds a :class:`MultiTaskModel`;
``backbones.names()`` / ``architectures.names()`` list what exists.
"""
from __future__ import annotations

from ..registry import Registry
from .base import MultiTaskModel

BACKBONES = Registry("backbone")
ARCHITECTURES = Registry("architecture")


def backbone_names() -> list[str]:
    return BACKBONES.names()


def architecture_names() -> list[str]:
    return ARCHITECTURES.names()


def create_model(architecture: str, backbone: str, tasks, architecture_kw: dict | None = None,
                 **backbone_kw) -> MultiTaskModel:
    """An architecture (e.g. ``"hps"``) over a backbone (e.g. ``"segnet"``) with one head per task.

    ``architecture_kw`` goes to the architecture (e.g. ``{"num_experts": 2}``), the rest to the backbone.
    One task gives the architecture's own single-task variant."""
    backbone_fn = BACKBONES.get(backbone)
    return ARCHITECTURES.get(architecture)(backbone_fn=lambda: backbone_fn(**backbone_kw), tasks=list(tasks),
                                           **(architecture_kw or {}))


from . import backbones, hps  # noqa: E402,F401  (registration)
from . import cnn9, mpnn  # noqa: E402,F401  (registration: issue 3 backbones)
from . import resnet, vit, cross_stitch, mmoe, mtan, cgc, ple, ltb, dselect_k  # noqa: E402,F401  (issue 5)

__all__ = ["MultiTaskModel", "create_model", "backbone_names", "architecture_names", "BACKBONES", "ARCHITECTURES"]
