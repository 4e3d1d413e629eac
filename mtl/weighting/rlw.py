"""Random loss weighting (Lin et al., TMLR 2022)."""
from __future__ import annotations

import torch

from ._registry import register
from .base import LossWeighting


@register("rlw", label="RLW", paper="Lin et al. 2022, https://arxiv.org/abs/2111.10603", needs="losses")
class RLW(LossWeighting):
    """RLW, Lin et al. 2022 Eq. 4 (https://arxiv.org/abs/2111.10603): w = softmax(λ̃), λ̃ ~ N(0, I)
    drawn afresh every step (from torch's global generator, so ``fit``'s seed fixes it)."""

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        return torch.softmax(torch.randn(losses.numel(), dtype=losses.dtype), 0).to(losses.device)
