"""The curves registry and what its modules share (imported by them, re-exported by the package)."""
from __future__ import annotations

from ..registry import Registry

FAMILIES = Registry("curve family")


def register(name: str, **meta):
    """Decorator: register a family with its :class:`~mtl.registry.Info` fields (``label``, ``paper``)."""
    return FAMILIES.register(name, **meta)


def names(pattern: str = "*") -> list[str]:
    """Every registered curve family (``nurbs``, ``bezier``, ``polychain``, ``simplex``)."""
    return FAMILIES.names(pattern)


def info(name: str):
    """Label and paper of family ``name``."""
    return FAMILIES.info(name)


def create(name: str, n_points: int, **kwargs):
    """The coefficient map of family ``name`` over ``n_points`` control points (members for ``simplex``)."""
    return FAMILIES.create(name, n_points=n_points, **kwargs)
