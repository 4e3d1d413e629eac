"""Eager checks of hyper-parameters, with messages that name the parameter and say what is valid."""
from __future__ import annotations

import math


def check_positive(name: str, value, allow_zero: bool = False) -> float:
    """``value`` as a float, positive (or non-negative with ``allow_zero``) and finite."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    ok = v >= 0 if allow_zero else v > 0
    if not (ok and math.isfinite(v)):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'} and finite, got {value!r}")
    return v


def check_count(name: str, value, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int in [minimum, maximum] (a count: steps, points, experts, clusters...)."""
    try:
        ok = int(value) == value and value >= minimum and (maximum is None or value <= maximum)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        bound = f"≥ {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be an integer {bound}, got {value!r}")
    return int(value)
