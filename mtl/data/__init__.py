"""Datasets by name: ``names()`` lists them, ``load(name, **kw)`` returns a :class:`DataBundle`.

A batch is always ``(inputs, {task: target})``; ``inputs`` is a tensor or anything with ``.to``.
"""
from __future__ import annotations

from ._registry import DATASETS, INFO, SPLITS, DataBundle, info, load, names, register  # noqa: F401
# importing the modules registers them
from . import multimnist, scenes  # noqa: E402,F401
from . import attributes, celeba, cityscapes, nyuv2, qm9  # noqa: E402,F401  (issue 3 datasets)

__all__ = ["DataBundle", "DATASETS", "SPLITS", "INFO", "names", "info", "load", "register"]
