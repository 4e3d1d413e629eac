"""Impartial multi-task learning (Liu et al., ICLR 2021)."""
from __future__ import annotations

import numpy as np
import torch

from ._registry import register
from ._linalg import lazy_parameter, materialize, norms_from_gram
from .gradient import GradientWeighting


def imtl_g_weights(G: np.ndarray) -> np.ndarray:
    """IMTL-G closed form (Liu et al. 2021 Eq. 10): α with Σα = 1 and equal projections of Σ_t α_t g_t
    on every unit gradient u_t. With M = G / n (M_ij = g_i·u_j): α_{2:T} solves
    (DUᵀ)ᵀ α = (g_1 Uᵀ)ᵀ, D_i = g_1 − g_i, U_i = u_1 − u_i (least squares when singular)."""
    T = len(G)
    if T == 1:
        return np.ones(1)
    n = norms_from_gram(G)
    M = G / np.where(n > 0, n, 1.0)[None, :]                                  # [T, T]
    gU = M[0, 0] - M[0, 1:]                                                   # [T-1]
    DU = M[0, 0] - M[0, 1:][None, :] - M[1:, 0][:, None] + M[1:, 1:]          # [T-1, T-1]
    rest = np.linalg.lstsq(DU.T, gU, rcond=None)[0]
    return np.concatenate([[1.0 - rest.sum()], rest])


@register("imtl", label="IMTL", paper="Liu et al. 2021, https://openreview.net/forum?id=IMPnRXEWpvr", needs="gramian",
          modes=("param", "rep"), stateful=True)
class IMTL(GradientWeighting):
    """Hybrid IMTL (IMTL-L + IMTL-G), Liu et al. 2021 Alg. 1 (https://openreview.net/forum?id=IMPnRXEWpvr).

    IMTL-L: the gradients are taken of e^{s_t} L_t − s_t with learnable scales s (init 0, trained
    with the model through the task-specific gradient). IMTL-G: the closed-form α above; the
    direction is Σ_t α_t g_t. Default ``mode="rep"`` (LibMTL's NYUv2 benchmark Table 1).
    """

    default_mode = "rep"

    def __init__(self, mode: str | None = None, chunk_size: int | None = None):
        super().__init__(mode, chunk_size)
        self.reset()

    def reset(self) -> None:
        self._s = lazy_parameter()

    def parameters(self) -> list[torch.Tensor]:
        return [self._s]

    def transform(self, losses: torch.Tensor) -> torch.Tensor:
        s = materialize(self._s, losses.numel(), losses, 0.0)
        return torch.exp(s) * losses - s

    def gram_weights(self, G: np.ndarray, losses: torch.Tensor) -> np.ndarray:
        return imtl_g_weights(G)
