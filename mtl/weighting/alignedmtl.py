"""Aligned-MTL (Senushkin et al., CVPR 2023)."""
from __future__ import annotations

import numpy as np
import torch

from ._registry import register
from .gradient import GradientWeighting


@register("alignedmtl", label="Aligned-MTL", paper="Senushkin et al. 2023, https://arxiv.org/abs/2305.19000",
          needs="gramian", modes=("param", "rep"))
class AlignedMTL(GradientWeighting):
    """Aligned-MTL, Senushkin et al. 2023 Alg. 1 / Eq. 10 (https://arxiv.org/abs/2305.19000).

    Eigendecompose G = JJᵀ = VΛVᵀ on its numerical rank r; the aligned gradients have every singular
    value equal to σ_min = √λ_r, i.e. B = σ_min V_r Λ_r^{-1/2} V_rᵀ and w = B·1 (uniform
    preferences). ``torch.linalg.eigh``-free: NumPy's ``eigh`` on the T×T Gram (LibMTL's
    ``torch.symeig`` no longer exists).
    """

    def gram_weights(self, G: np.ndarray, losses: torch.Tensor) -> np.ndarray:
        lam, V = np.linalg.eigh(G)
        tol = max(lam.max(initial=0.0), 0.0) * len(G) * np.finfo(np.float32).eps
        keep = lam > tol
        if not keep.any():
            return np.zeros(len(G))
        lam, V = lam[keep], V[:, keep]
        B = np.sqrt(lam.min()) * (V / np.sqrt(lam)) @ V.T                     # [T, T]
        return B.sum(0)
