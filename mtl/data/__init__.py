"""Datasets by name: ``names()`` lists them, ``load(name, **kw)`` returns a :class:`DataBundle`.

A batch is always ``(inputs, {task: target})``; ``inputs`` is a tensor or anything with ``.to``
(for multi-input data, :class:`MultiInputBundle`, a :class:`mtl.tasks.TaskInputs` {task: x_t}).
Targets may carry a per-sample label mask (partial labels, :data:`mtl.tasks.LABELED`).
"""
from __future__ import annotations

from ._registry import (DATASETS, INFO, SPLITS, DataBundle, MultiInputBundle, MultiInputLoader, info, load,  # noqa: F401
                        names, register)
# importing the modules registers them
from . import multimnist, scenes  # noqa: E402,F401
from . import attributes, celeba, cityscapes, nyuv2, qm9  # noqa: E402,F401  (issue 3 datasets)
from . import office  # noqa: E402,F401  (issue 19: multi-input datasets)

__all__ = ["DataBundle", "MultiInputBundle", "DATASETS", "SPLITS", "INFO", "names", "info", "load", "register"]
