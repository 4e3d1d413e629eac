"""Multiple-gradient descent (Sener & Koltun, NeurIPS 2018)."""
from __future__ import annotations

import numpy as np
import torch

from ._registry import register
from ._linalg import min_norm_weights, norms_from_gram
from .gradient import GradientWeighting

NORMALIZERS = ("none", "l2", "loss", "loss+")


@register("mgda", label="MGDA", paper="Sener & Koltun 2018, https://arxiv.org/abs/1810.04650", needs="gramian",
          modes=("param", "rep"))
class MGDA(GradientWeighting):
    """MGDA-UB, Sener & Koltun 2018 Eq. 3 and §3.3 (https://arxiv.org/abs/1810.04650).

    w = argmin_{w ∈ simplex} ‖Σ_t w_t ĝ_t‖² with ĝ_t = g_t / n_t (``normalize``: none → n=1, l2 → ‖g_t‖,
    loss → L_t, loss+ → L_t‖g_t‖, the official code's normalisers); the direction is Σ_t (w_t/n_t) g_t,
    a convex combination (mean scale), as the official code applies w to the raw losses. Solved
    exactly through scipy's NNLS (see :func:`~mtl.weighting._linalg.min_norm_weights`), not
    Frank–Wolfe. Default ``mode="rep"`` (MGDA-UB, LibMTL's NYUv2 benchmark Table 1).
    """

    default_mode = "rep"

    def __init__(self, normalize: str = "none", mode: str | None = None, chunk_size: int | None = None):
        super().__init__(mode, chunk_size)
        if normalize not in NORMALIZERS:
            raise ValueError(f"normalize must be one of {NORMALIZERS}, got {normalize!r}")
        self.normalize = normalize

    def _scales(self, G: np.ndarray, losses: torch.Tensor) -> np.ndarray:
        L = np.abs(losses.detach().double().cpu().numpy())
        n = {"none": np.ones(len(G)), "l2": norms_from_gram(G), "loss": L,
             "loss+": L * norms_from_gram(G)}[self.normalize]
        return np.where(n > 1e-30, n, 1.0)

    def gram_weights(self, G: np.ndarray, losses: torch.Tensor) -> np.ndarray:
        n = self._scales(G, losses)                                            # [T]
        return min_norm_weights(G / np.outer(n, n)) / n
