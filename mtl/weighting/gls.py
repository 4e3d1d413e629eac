"""Geometric loss strategy (Chennupati et al., CVPR Workshops 2019)."""
from __future__ import annotations

import torch

from ._registry import register
from .base import LossWeighting


@register("gls", label="GLS", paper="Chennupati et al. 2019, https://arxiv.org/abs/1904.08492", needs="losses")
class GLS(LossWeighting):
    """GLS, Chennupati et al. 2019 Eq. 3 (https://arxiv.org/abs/1904.08492): L = (Π_t L_t)^{1/T}.

    Differentiated through the equivalent detached weights w_t = L_geo / (T L_t), so a zero loss
    gives a finite (zero) weight instead of the NaN of differentiating the product directly.
    """

    eps: float = 1e-12

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        L = losses.detach().clamp_min(self.eps)                                  # [T]
        geo = torch.exp(torch.log(L).mean())
        return geo / (losses.numel() * L)
