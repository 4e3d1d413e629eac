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


def create_model(architecture: str, backbone: str, tasks, **backbone_kw) -> MultiTaskModel:
    """An architecture (e.g. ``"hps"``) over a backbone (e.g. ``"segnet"``) with one head per task."""
    backbone_fn = BACKBONES.get(backbone)
    return ARCHITECTURES.get(architecture)(backbone_fn=lambda: backbone_fn(**backbone_kw), tasks=list(tasks))


from . import backbones, hps  # noqa: E402,F401  (registration)
from . import cnn9, mpnn  # noqa: E402,F401  (registration: issue 3 backbones)

__all__ = ["MultiTaskModel", "create_model", "backbone_names", "architecture_names", "BACKBONES", "ARCHITECTURES"]
