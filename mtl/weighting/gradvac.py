"""Gradient vaccine (Wang et al., ICLR 2021)."""
from __future__ import annotations

import numpy as np
import torch

from ..checks import check_positive
from ._registry import register
from .gradient import GradientWeighting
from .pcgrad import random_orders


@register("gradvac", label="GradVac", paper="Wang et al. 2021, https://arxiv.org/abs/2010.05874", needs="gramian",
          modes=("param", "rep"), stateful=True)
class GradVac(GradientWeighting):
    """GradVac, Wang et al. 2021 Alg. 1 / Eq. 5 (https://arxiv.org/abs/2010.05874), whole-model grouping.

    For each task i and every other task j in random order: φ_ij = cos(g_i^PC, g_j); when
    φ_ij < φ̂_ij, g_i^PC += g_j ‖g_i^PC‖ (φ̂_ij√(1−φ_ij²) − φ_ij√(1−φ̂_ij²)) / (‖g_j‖√(1−φ̂_ij²)); the
    target follows φ̂_ij ← (1−β) φ̂_ij + β φ_ij (state, starts at 0 so step 1 equals PCGrad's rule
    with cos targets). Tracked by coefficients over J through the Gram matrix as in PCGrad
    (a loop over T − 1 positions). The direction is the sum (sum scale).
    """

    def __init__(self, beta: float = 0.5, mode: str | None = None, chunk_size: int | None = None):
        super().__init__(mode, chunk_size)
        self.beta = check_positive("beta", beta)
        if self.beta > 1:
            raise ValueError(f"beta must be in (0, 1], got {beta!r}")
        self.reset()

    def reset(self) -> None:
        self._target = None                                                   # φ̂ [T, T]

    def gram_weights(self, G: np.ndarray, losses: torch.Tensor) -> torch.Tensor:
        G = torch.as_tensor(G, dtype=torch.float64)
        T = G.shape[0]
        if self._target is None or self._target.shape[0] != T:
            self._target = torch.zeros(T, T, dtype=G.dtype, device=G.device)
        C = torch.eye(T, dtype=G.dtype, device=G.device)
        rows, order = torch.arange(T, device=G.device), random_orders(T, G.device)
        norm_j = G.diagonal().clamp_min(0).sqrt()                             # ‖g_j‖
        for k in range(T - 1):
            j = order[:, k]
            CG = C @ G
            norm_i = (CG * C).sum(1).clamp_min(0).sqrt()                      # ‖g_i^PC‖
            phi = CG[rows, j] / (norm_i * norm_j[j]).clamp_min(1e-300)
            tgt = self._target[rows, j]
            s = (1 - tgt**2).clamp_min(1e-12).sqrt()
            coef = norm_i * (tgt * (1 - phi**2).clamp_min(0).sqrt() - phi * s) / (norm_j[j] * s).clamp_min(1e-300)
            C[rows, j] += torch.where((phi < tgt) & (norm_j[j] > 0), coef, 0.0)
            self._target[rows, j] = (1 - self.beta) * tgt + self.beta * phi
        return C.sum(0)
