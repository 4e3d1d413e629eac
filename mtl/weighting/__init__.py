"""Loss and gradient weightings, one small class per file, registered by lowercase name.

``names()`` lists them, ``create(name, **hparams)`` builds one. The training loop only calls the
:class:`~mtl.weighting.base.Weighting` contract (``backward``, ``after_step``, ``end_epoch``,
``reset``, ``parameters``); it never looks at a method's name.
"""
from __future__ import annotations

from ..registry import Registry

WEIGHTINGS = Registry("weighting method")


def register(name: str):
    return WEIGHTINGS.register(name)


def names(pattern: str = "*") -> list[str]:
    return WEIGHTINGS.names(pattern)


def create(name: str, **hparams):
    return WEIGHTINGS.create(name, **hparams)


from .base import LossWeighting, StepContext, Weighting  # noqa: E402
from . import ew, ls  # noqa: E402,F401  (registration)

__all__ = ["names", "create", "register", "Weighting", "LossWeighting", "StepContext"]
