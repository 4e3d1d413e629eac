"""MoCo: stochastic multi-objective optimisation with tracked gradients (Fernando et al., ICLR 2023)."""
from __future__ import annotations

import torch

from . import register
from ._linalg import check_positive, project_simplex
from .base import StepContext
from .gradient import GradientWeighting


@register("moco")
class MoCo(GradientWeighting):
    """MoCo, Fernando et al. 2023 Alg. 1 (https://openreview.net/forum?id=dLAYGdKTi2), LibMTL defaults.

    Tracked gradients Y ← Y − β_k (Y − H) with h_i = L_i g_i / ‖g_i‖ (the practical form used by
    LibMTL); λ ← Π_simplex(λ − γ_k (YYᵀ + ρI) λ) (the paper's projection, where LibMTL uses a
    softmax); d = Yᵀλ. β_k = β / k^{σ_β}, γ_k = γ / k^{σ_γ} at step k ≥ 1. Parameter mode only.
    """

    modes = ("param",)

    def __init__(self, beta: float = 0.5, beta_sigma: float = 0.5, gamma: float = 0.1, gamma_sigma: float = 0.5,
                 rho: float = 0.0, chunk_size: int | None = None, mode: str | None = None):
        super().__init__(mode, chunk_size)
        self.beta = check_positive("beta", beta)
        self.beta_sigma = check_positive("beta_sigma", beta_sigma, allow_zero=True)
        self.gamma = check_positive("gamma", gamma)
        self.gamma_sigma = check_positive("gamma_sigma", gamma_sigma, allow_zero=True)
        self.rho = check_positive("rho", rho, allow_zero=True)
        self.reset()

    def reset(self) -> None:
        self._Y, self._lam, self._k = None, None, 0

    def direction(self, J: torch.Tensor, losses: torch.Tensor, ctx: StepContext | None = None):
        T = J.shape[0]
        if self._Y is None or self._Y.shape != J.shape:
            self._Y = torch.zeros_like(J)                                     # [T, d]
            self._lam = torch.full((T,), 1.0 / T, dtype=torch.float64, device=J.device)
        self._k += 1
        n = J.norm(dim=1)
        n = n.clamp_min(1e-8 * n.max()) if n.max() > 0 else torch.ones_like(n)
        b = min(self.beta / self._k**self.beta_sigma, 1.0)
        h = (losses.to(J.dtype) / n)[:, None]                                 # H = h ⊙ J
        self._Y.mul_(1 - b).addcmul_(J, h.expand_as(J), value=b)             # Y ← Y − b (Y − H), in place
        YY = (self._Y @ self._Y.T).double() + self.rho * torch.eye(T, dtype=torch.float64, device=J.device)
        self._lam = project_simplex(self._lam - self.gamma / self._k**self.gamma_sigma * (YY @ self._lam))
        lam = self._lam.to(J.dtype)
        return lam @ self._Y, lam
