"""The models registry and what its modules share (imported by them, re-exported by the package)."""
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
