"""IMTL-L: the loss-scale half of impartial multi-task learning (Liu et al., ICLR 2021)."""
from __future__ import annotations

import torch

from ._registry import register
from ._linalg import LogScales
from .base import LossWeighting, StepContext
from .imtl_g import PAPER


def scaled_losses(s: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    """IMTL-L's transform (Liu et al. 2021 Eq. 6 with a = e, b = 1): e^{s_t} L_t − s_t [T] for the log-scales s [T].

    For fixed L_t its minimum over s_t is at e^{s_t} L_t = 1, so the scaled losses are balanced."""
    return torch.exp(s) * losses - s


@register("imtl_l", label="IMTL-L", paper=PAPER, needs="losses", stateful=True)
class IMTLL(LogScales, LossWeighting):
    """IMTL-L alone, Liu et al. 2021 Eq. 6 (https://openreview.net/forum?id=IMPnRXEWpvr), as LibMTL's loss half.

    The network and the learnable log-scales s (init 0, optimised with the model) minimise
    Σ_t (e^{s_t} L_t − s_t) (:func:`scaled_losses`): the shared gradient is Σ_t e^{s_t} g_t and s_t is
    driven to −log L_t, which makes every task's scaled loss 1 (scale invariance). Without IMTL-G's
    gradient balancing (``imtl`` is both, ``imtl_g`` the gradient half). Weights logged, and the
    ``aggregate`` direction's: e^{s} (all 1 from a fresh state).
    The objective is twice ``uw``'s at log-variance −s; the two differ in initialisation (0 here).
    """

    def __init__(self):
        self.reset()

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.log_scales(losses))      # [T]

    def backward(self, losses: torch.Tensor, ctx: StepContext) -> dict:
        scaled_losses(self.log_scales(losses), losses).sum().backward()
        return {"weights": self.weights(losses).detach()}
