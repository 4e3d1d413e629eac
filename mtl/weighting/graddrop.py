"""Gradient sign dropout (Chen et al., NeurIPS 2020)."""
from __future__ import annotations

import torch

from ..checks import check_positive
from ._registry import register
from .base import StepContext
from .gradient import GradientWeighting


@register("graddrop", label="GradDrop", paper="Chen et al. 2020, https://arxiv.org/abs/2010.06808", needs="jacobian",
          modes=("rep",))
class GradDrop(GradientWeighting):
    """GradDrop, Chen et al. 2020 Alg. 1 (https://arxiv.org/abs/2010.06808), on the shared representation.

    With ∇_t = Σ_batch sign(z) ⊙ ∂L_t/∂z per feature, the sign purity P = ½(1 + Σ_t∇_t / Σ_t|∇_t|);
    a feature keeps the positive task gradients where P > U and the negative ones where P < U
    (U ~ U(0,1) per feature); d = Σ_t (leak + (1−leak) M_t) ⊙ ∂L_t/∂z. sign(0) is taken as +1, so an
    exactly-zero representation does not zero the gradient as in LibMTL. Representation mode
    only (LibMTL's NYUv2 benchmark); ``aggregate`` treats each row of J as one sample with z > 0.
    """

    default_mode = "rep"

    def __init__(self, leak: float = 0.0, mode: str | None = None, chunk_size: int | None = None):
        super().__init__(mode, chunk_size)
        self.leak = check_positive("leak", leak, allow_zero=True)
        if self.leak > 1:
            raise ValueError(f"leak must be in [0, 1], got {leak!r}")

    def direction(self, J: torch.Tensor, losses: torch.Tensor, ctx: StepContext | None = None):
        T = J.shape[0]
        if ctx is not None and ctx.rep is not None:
            z = ctx.rep.detach()
            per = J.view(T, z.shape[0], -1)                                   # [T, B, F]
            sign = torch.where(z.reshape(z.shape[0], -1) >= 0, 1.0, -1.0).to(J.dtype)  # [B, F]
        else:
            per, sign = J.view(T, 1, -1), torch.ones(1, J.shape[1], dtype=J.dtype, device=J.device)
        s = (per * sign).sum(1)                                               # [T, F]
        P = 0.5 * (1 + s.sum(0) / (s.abs().sum(0) + 1e-12))                  # [F]
        U = torch.rand(P.shape, dtype=P.dtype).to(P.device)
        M = ((P > U) & (s > 0)) | ((P < U) & (s < 0))                          # [T, F]
        keep = self.leak + (1 - self.leak) * M.to(J.dtype)
        return (per * keep[:, None, :]).sum(0).reshape(-1), None
