"""Coordinate-wise trimmed mean (Yin, Chen, Ramchandran & Bartlett, ICML 2018)."""
from __future__ import annotations

import torch

from ..checks import check_count
from ._registry import register
from .base import StepContext
from .gradient import GradientWeighting


def trimmed_mean(J: torch.Tensor, trim: int) -> torch.Tensor:
    """[d]: per coordinate, the mean of the T values left after dropping the ``trim`` largest and the
    ``trim`` smallest; ``trim`` is capped at (T − 1) // 2, so too large a trim gives the coordinate-wise median."""
    T = J.shape[0]
    k = min(trim, (T - 1) // 2)
    return J.sort(dim=0).values[k:T - k].mean(0)                             # [d]


@register("trimmedmean", label="TrimmedMean", paper="Yin et al. 2018, https://arxiv.org/abs/1803.01498",
          needs="jacobian", modes=("param", "rep"))
class TrimmedMean(GradientWeighting):
    """Coordinate-wise trimmed mean, Yin et al. 2018 Def. 2 (https://arxiv.org/abs/1803.01498), as TorchJD's
    ``TrimmedMean(trim_number)``.

    d_j = mean of {J_tj : t} without its ``trim_number`` largest and ``trim_number`` smallest values
    (Yin et al.'s β-trimmed mean with β = trim_number / T), per coordinate j, so it needs J itself.
    Where TorchJD refuses T < 2·trim_number + 1, the trim is capped (:func:`trimmed_mean`). Not a
    weighting of the rows: no task weights are logged. Mean scale.
    """

    def __init__(self, trim_number: int = 1, mode: str | None = None, chunk_size: int | None = None):
        super().__init__(mode, chunk_size)
        self.trim_number = check_count("trim_number", trim_number, 0)

    def direction(self, J: torch.Tensor, losses: torch.Tensor, ctx: StepContext | None = None):
        return trimmed_mean(J, self.trim_number), None
