"""ExcessMTL: robust MTL by excess risk (He et al., ICML 2024)."""
from __future__ import annotations

import torch

from ..checks import check_positive
from ._registry import register
from .gradient import GradientWeighting


@register("excessmtl", label="ExcessMTL", paper="He et al. 2024, https://arxiv.org/abs/2402.02009", needs="factored",
          modes=("param", "rep"), stateful=True)
class ExcessMTL(GradientWeighting):
    """ExcessMTL, He et al. 2024 Alg. 1 (https://arxiv.org/abs/2402.02009), as LibMTL's ExcessMTL.

    Excess-risk estimate e_t = g_tᵀ diag(1/h_t) g_t with the AdaGrad accumulator h_t = √(Σ_steps g_t² + 1e-7);
    after the first step (which records e⁰) the weights follow w ← w ⊙ exp(η e / e⁰), renormalised to
    Σ w = T; d = Σ_t w_t g_t. A zero e⁰ gives ratio 0 instead of LibMTL's NaN, so "rep" mode works.
    In "param" mode J is never formed: its column blocks are built from the layer factors one at a
    time (``FactoredJacobian.blocks``) and d = Σ_t w_t g_t from them too (``combine``).
    """

    def __init__(self, robust_step_size: float = 1e-2, mode: str | None = None, chunk_size: int | None = None):
        super().__init__(mode, chunk_size)
        self.robust_step_size = check_positive("robust_step_size", robust_step_size, allow_zero=True)
        self.reset()

    def reset(self) -> None:
        self._sq, self._e0, self._w, self._tmp = None, None, None, None

    def track(self, jac, losses: torch.Tensor, ctx=None):
        T = jac.T
        if self._sq is None or self._sq.shape != (T, jac.d):
            self._sq = torch.full((T, jac.d), 1e-7, dtype=jac.dtype, device=jac.device)   # h² = 1e-7 + Σ g²
            self._e0, self._w = None, torch.ones(T, dtype=torch.float64, device=jac.device)
        parts = []
        for off, Jb in jac.blocks():                                          # [T, k], one cache-sized block at a time
            k = Jb.shape[1]
            if self._tmp is None or self._tmp.shape[1] < k or self._tmp.dtype != Jb.dtype:
                self._tmp = torch.empty(T, k, dtype=Jb.dtype, device=Jb.device)   # scratch kept across steps
            h2 = self._sq[:, off:off + k].addcmul_(Jb, Jb)                    # AdaGrad accumulator h² += g²
            r = torch.pow(h2, -0.5, out=self._tmp[:T, :k])                    # 1 / h (pow: 2× rsqrt's speed on CPU)
            parts.append(r.mul_(Jb).mul_(Jb).sum(1))                          # Σ_block g² / h  [T]
        e = torch.stack(parts).double().sum(0)                                # [T]
        if self._e0 is None:
            self._e0 = e
        else:
            ratio = torch.where(self._e0 > 0, e / self._e0.clamp_min(1e-300), torch.zeros_like(e))
            w = self._w * torch.exp((self.robust_step_size * ratio).clamp(max=50.0))
            self._w = w / w.sum() * T
        w = self._w.to(jac.dtype)
        return jac.combine(w), w                                              # d = Σ_t w_t g_t from the factors
