"""MoCo: stochastic multi-objective optimisation with tracked gradients (Fernando et al., ICLR 2023)."""
from __future__ import annotations

import torch

from ..checks import check_positive
from ._registry import register
from ._linalg import project_simplex
from .base import StepContext
from .gradient import GradientWeighting


@register("moco", label="MoCo", paper="Fernando et al. 2023, https://openreview.net/forum?id=dLAYGdKTi2",
          needs="factored", modes=("param",), stateful=True)
class MoCo(GradientWeighting):
    """MoCo, Fernando et al. 2023 Alg. 1 (https://openreview.net/forum?id=dLAYGdKTi2), LibMTL defaults.

    Tracked gradients Y ← Y − β_k (Y − H) with h_i = L_i g_i / ‖g_i‖ (the practical form used by
    LibMTL); λ ← Π_simplex(λ − γ_k (YYᵀ + ρI) λ) (the paper's projection, where LibMTL uses a
    softmax); d = Yᵀλ. β_k = β / k^{σ_β}, γ_k = γ / k^{σ_γ} at step k ≥ 1. Parameter mode only.
    Y is updated in place from the layer factors of J (``FactoredJacobian``), never from a formed J,
    and (YYᵀ + ρI)λ is Y(Yᵀλ) with Yᵀλ = (1−β_k)·(last step's d) + Hᵀλ: no T×T×d product.
    """

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
        self._Y, self._lam, self._d, self._k = None, None, None, 0

    def track(self, jac, losses: torch.Tensor, ctx: StepContext | None = None):
        T, dev = jac.T, jac.device
        if self._Y is None or self._Y.shape != (T, jac.d):
            self._Y = torch.zeros(T, jac.d, dtype=jac.dtype, device=dev)      # [T, d]
            self._lam = torch.full((T,), 1.0 / T, dtype=torch.float64, device=dev)
            self._d = torch.zeros(jac.d, dtype=jac.dtype, device=dev)         # Yᵀλ of the last step
        self._k += 1
        n = jac.sq_norms().clamp_min(0).sqrt()                               # ‖g_t‖ [T]
        n = n.clamp_min(1e-8 * n.max()) if n.max() > 0 else torch.ones_like(n)
        b = min(self.beta / self._k**self.beta_sigma, 1.0)
        h = b * losses.to(jac.dtype) / n                                      # [T]
        jac.accumulate_into(self._Y, beta=1 - b, scale=h)                     # Y ← Y − b (Y − H), H = (L/‖g‖) ⊙ J
        u = jac.combine(h * self._lam.to(h.dtype)).add_(self._d, alpha=1 - b)  # Yᵀλ = (1−b) Y_oldᵀλ + b Hᵀλ [d]
        YYl = (self._Y @ u).double() + self.rho * self._lam                   # (YYᵀ + ρI) λ without YYᵀ [T]
        self._lam = project_simplex(self._lam - self.gamma / self._k**self.gamma_sigma * YYl)
        lam = self._lam.to(self._Y.dtype)
        self._d = lam @ self._Y                                               # [d]
        return self._d, lam
