"""Hard parameter sharing: one shared encoder, one head per task (Caruana 1997)."""
from __future__ import annotations

from ._registry import ARCHITECTURES
from .base import MultiTaskModel


@ARCHITECTURES.register("hps", label="HPS", paper="Caruana 1997, Multitask Learning")
def hps(backbone_fn, tasks) -> MultiTaskModel:
    """With a single task this is the single-task baseline (STL) built from the same modules."""
    bb = backbone_fn()
    return MultiTaskModel(bb.encoder, {t.name: bb.make_head(t) for t in tasks})
