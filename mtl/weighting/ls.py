"""Linear scalarisation with fixed loss weights: the object of Guo et al.'s grid search."""
from __future__ import annotations

import itertools
from typing import Sequence

import torch

from ._registry import register
from .base import LossWeighting


@register("ls", label="LS", paper="", needs="losses")
class LS(LossWeighting):
    """L = Σ_t w_t L_t with fixed ``weights`` (one per task, positive). ``weights=None`` means all 1."""

    def __init__(self, weights: Sequence[float] | None = None):
        if weights is not None:
            weights = [float(w) for w in weights]
            if any(not w >= 0 for w in weights):
                raise ValueError(f"loss weights must be non-negative numbers, got {weights}")
        self.weights_ = None if weights is None else tuple(weights)

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        if self.weights_ is None:
            return torch.ones_like(losses)
        if len(self.weights_) != losses.numel():
            raise ValueError(f"ls has {len(self.weights_)} weights but the model has {losses.numel()} tasks")
        return torch.tensor(self.weights_, dtype=losses.dtype, device=losses.device)

    def __repr__(self) -> str:
        return f"LS(weights={self.weights_})"


def weight_grid(values_per_task: Sequence[Sequence[float]]) -> list[tuple[float, ...]]:
    """The Cartesian grid of loss weights, e.g. ``[[1], [1], [1, 2], [1, 10, 50]]`` (Guo et al.'s NYUD-v2 grid
    reports 1/1/2/50); the first task's weight is usually fixed to 1 since only ratios matter under Adam."""
    if not values_per_task or any(len(v) == 0 for v in values_per_task):
        raise ValueError("give at least one candidate weight per task")
    return [tuple(float(x) for x in combo) for combo in itertools.product(*values_per_task)]
