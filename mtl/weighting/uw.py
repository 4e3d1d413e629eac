"""Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018)."""
from __future__ import annotations

import torch

from ._registry import register
from ._linalg import LogScales
from .base import LossWeighting, StepContext


@register("uw", label="UW", paper="Kendall et al. 2018, https://arxiv.org/abs/1705.07115", needs="losses",
          stateful=True)
class UW(LogScales, LossWeighting):
    """Homoscedastic uncertainty weighting, Kendall et al. 2018 Eq. 7 (https://arxiv.org/abs/1705.07115).

    L = Σ_t L_t / (2 e^{s_t}) + s_t / 2 with learnable log-variances s_t, optimised with the model.
    ``init`` = −0.5 as in LibMTL (the regression form is used for every task, as there).
    """

    def __init__(self, init: float = -0.5):
        self.init = float(init)
        self.reset()

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        return 0.5 * torch.exp(-self.log_scales(losses))   # [T]

    def backward(self, losses: torch.Tensor, ctx: StepContext) -> dict:
        w = self.weights(losses)
        ((w * losses).sum() + 0.5 * self._s.sum()).backward()
        return {"weights": w.detach()}

    def _aggregate(self, J, losses):
        """From fresh log-variances s = ``init``."""
        self.reset()
        return self.weights(losses).detach().to(J.dtype) @ J
