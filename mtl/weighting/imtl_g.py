"""IMTL-G: the gradient half of impartial multi-task learning (Liu et al., ICLR 2021)."""
from __future__ import annotations

import numpy as np
import torch

from ._registry import register
from ._linalg import norms_from_gram
from .gradient import GradientWeighting

PAPER = "Liu et al. 2021, https://openreview.net/forum?id=IMPnRXEWpvr"


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


@register("imtl_g", label="IMTL-G", paper=PAPER, needs="gramian", modes=("param", "rep"))
class IMTLG(GradientWeighting):
    """IMTL-G alone, Liu et al. 2021 Eq. 10 (https://openreview.net/forum?id=IMPnRXEWpvr), as TorchJD's ``IMTLG``.

    d = Σ_t α_t g_t with Σ_t α_t = 1 and equal projections u_tᵀd of d onto every unit task gradient
    u_t = g_t/‖g_t‖ (:func:`imtl_g_weights`, the paper's closed form), on the raw losses. The hybrid
    ``imtl`` adds IMTL-L's learned loss scales; ``imtl_l`` is the loss half alone. Default
    ``mode="rep"``, as ``imtl``. Convex-combination (mean-like) scale.
    """

    default_mode = "rep"

    def gram_weights(self, G: np.ndarray, losses: torch.Tensor) -> np.ndarray:
        return imtl_g_weights(G)
