"""ExcessMTL: robust MTL by excess risk (He et al., ICML 2024)."""
from __future__ import annotations

import torch

from . import register
from ._linalg import check_positive
from .gradient import GradientWeighting


@register("excessmtl")
class ExcessMTL(GradientWeighting):
    """ExcessMTL, He et al. 2024 Alg. 1 (https://arxiv.org/abs/2402.02009), as LibMTL's ExcessMTL.

    Excess-risk estimate e_t = g_tᵀ diag(1/h_t) g_t with the AdaGrad accumulator h_t = √(Σ_steps g_t² + 1e-7);
    after the first step (which records e⁰) the weights follow w ← w ⊙ exp(η e / e⁰), renormalised to
    Σ w = T; d = Σ_t w_t g_t. A zero e⁰ gives ratio 0 instead of LibMTL's NaN, so "rep" mode works.
    """

    def __init__(self, robust_step_size: float = 1e-2, mode: str | None = None, chunk_size: int | None = None):
        super().__init__(mode, chunk_size)
        self.robust_step_size = check_positive("robust_step_size", robust_step_size, allow_zero=True)
        self.reset()

    def reset(self) -> None:
        self._sq, self._e0, self._w = None, None, None

    def weights(self, J: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        T = J.shape[0]
        if self._sq is None or self._sq.shape != J.shape:
            self._sq, self._e0 = torch.zeros_like(J), None                    # [T, d]
            self._w = torch.ones(T, dtype=torch.float64, device=J.device)
        self._sq.addcmul_(J, J)                                               # AdaGrad accumulator
        e = J.square().div_(self._sq.add(1e-7).sqrt_()).sum(1).double()       # [T]
        if self._e0 is None:
            self._e0 = e
        else:
            ratio = torch.where(self._e0 > 0, e / self._e0.clamp_min(1e-300), torch.zeros_like(e))
            w = self._w * torch.exp((self.robust_step_size * ratio).clamp(max=50.0))
            self._w = w / w.sum() * T
        return self._w.to(J.dtype)
