"""Eager checks of hyper-parameters, with messages that name the parameter and say what is valid.

The lenient checks (``check_count``, ``check_positive``) accept what converts exactly (``3.0`` as a
count, ``"0.5"`` as a number) because hyper-parameters often come from YAML; ``strict=True`` (the
training configuration) accepts only real ints for counts and only ints/floats for numbers, never
bools or strings.
"""
from __future__ import annotations

import math
import numbers


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive(name: str, value, allow_zero: bool = False, strict: bool = False) -> float:
    """``value`` as a float, positive (or non-negative with ``allow_zero``) and finite.

    ``strict``: ``value`` must be an int or a float (not a string, not a bool)."""
    if strict and not _is_real(value):
        raise ValueError(f"{name} must be a number (int or float), got {value!r} of type {type(value).__name__}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    ok = v >= 0 if allow_zero else v > 0
    if not (ok and math.isfinite(v)):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'} and finite, got {value!r}")
    return v


def check_count(name: str, value, minimum: int = 1, maximum: int | None = None, strict: bool = False) -> int:
    """``value`` as an int in [minimum, maximum] (a count: steps, points, experts, clusters...).

    Bools are never counts; ``strict``: ``value`` must be an int (``3.0`` is refused too)."""
    bound = f"≥ {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    if isinstance(value, bool) or (strict and not _is_int(value)):
        raise ValueError(f"{name} must be an integer {bound}, got {value!r} of type {type(value).__name__}")
    try:
        ok = int(value) == value and value >= minimum and (maximum is None or value <= maximum)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be an integer {bound}, got {value!r}")
    return int(value)


def check_choice(name: str, value, choices) -> None:
    """``value`` must be one of ``choices``."""
    if value not in tuple(choices):
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
