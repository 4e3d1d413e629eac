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

from ._registry import ARCHITECTURES, BACKBONES, MultiTaskModel, architecture_names, backbone_names, create_model  # noqa: F401
from . import backbones, hps  # noqa: E402,F401  (registration)
from . import cnn9, mpnn  # noqa: E402,F401  (registration: issue 3 backbones)
from . import resnet, vit, cross_stitch, mmoe, mtan, cgc, ple, ltb, dselect_k  # noqa: E402,F401  (issue 5)

__all__ = ["MultiTaskModel", "create_model", "backbone_names", "architecture_names", "BACKBONES", "ARCHITECTURES"]
