"""Equal weighting ("uniform" in Guo et al.): L = Σ_t L_t."""
from __future__ import annotations

import torch

from ._registry import register
from .base import LossWeighting


@register("ew", label="Uniform", paper="", needs="losses")
class EW(LossWeighting):
    """Equal weights w_t = 1 — the vanilla MTL baseline of every paper (Guo et al. Table II "Uniform")."""

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(losses)
