"""Smooth Tchebycheff scalarisation (Lin et al., ICML 2024)."""
from __future__ import annotations

import torch

from ..checks import check_count, check_positive
from ._registry import register
from .base import LossWeighting, StepContext
from .si_ls import log_loss_weights


@register("stch", label="STCH", paper="Lin et al. 2024, https://arxiv.org/abs/2402.19078", needs="losses",
          stateful=True)
class STCH(LossWeighting):
    """STCH, Lin et al. 2024 Eq. 5 (https://arxiv.org/abs/2402.19078), as in LibMTL's STCH.

    Epochs < ``warmup_epoch``: L = Σ_t log L_t. Epoch ``warmup_epoch``: the same, while averaging the
    losses into a nadir vector z. Later: L = T μ log Σ_t exp(L_t / (z_t μ)). Applied through the
    equivalent detached weights (T softmax(L/(zμ))_t / z_t, or 1/L_t in warm-up).
    """

    def __init__(self, mu: float = 1.0, warmup_epoch: int = 4):
        self.mu = check_positive("mu", mu)
        self.warmup_epoch = check_count("warmup_epoch", warmup_epoch, 0)
        self.reset()

    def reset(self) -> None:
        self._epoch = 0
        self._nadir_sum, self._nadir_n = None, 0

    def backward(self, losses: torch.Tensor, ctx: StepContext) -> dict:
        self._epoch = ctx.epoch
        if ctx.epoch == self.warmup_epoch:
            L = losses.detach()
            self._nadir_sum = L.clone() if self._nadir_sum is None else self._nadir_sum + L
            self._nadir_n += 1
        return super().backward(losses, ctx)

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        inv = log_loss_weights(losses, "stch")   # Σ log L_t and L_t / z_t are undefined at L_t ≤ 0
        if self._epoch <= self.warmup_epoch or self._nadir_sum is None:
            return inv                                                         # ∇ Σ log L_t (si_ls)
        L = losses.detach()
        z = (self._nadir_sum / self._nadir_n).clamp_min(1e-20)                 # [T]
        return L.numel() * torch.softmax(L / (z * self.mu), 0) / z
