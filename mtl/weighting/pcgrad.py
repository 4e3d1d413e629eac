"""Projecting conflicting gradients (Yu et al., NeurIPS 2020)."""
from __future__ import annotations

import numpy as np
import torch

from ._registry import register
from .gradient import GradientWeighting


def random_orders(T: int, device=None) -> torch.Tensor:
    """[T, T-1]: row i is a random order of the other tasks j ≠ i (torch's global generator)."""
    keys = torch.rand(T, T)
    keys.fill_diagonal_(2.0)                                                  # i itself goes last
    return keys.argsort(1)[:, : T - 1].to(device)


@register("pcgrad", label="PCGrad", paper="Yu et al. 2020, https://arxiv.org/abs/2001.06782", needs="gramian",
          modes=("param", "rep"))
class PCGrad(GradientWeighting):
    """PCGrad, Yu et al. 2020 Alg. 1 (https://arxiv.org/abs/2001.06782); the sum of projected gradients.

    Every projected gradient stays in the row space of J, so it is tracked by coefficients
    C [T, T] (g_i^PC = C_i J) and every dot product comes from the Gram matrix G: for each of the
    T−1 positions k, all tasks i project at once onto their k-th task j = order_i[k] when
    g_i^PC·g_j < 0. Exact and order-dependent, so a loop over T − 1 positions, not over pairs.
    The direction is (1ᵀC) J (sum scale).
    """

    def gram_weights(self, G: np.ndarray, losses: torch.Tensor) -> torch.Tensor:
        G = torch.as_tensor(G, dtype=torch.float64)                          # [T, T]
        T = G.shape[0]
        C = torch.eye(T, dtype=G.dtype, device=G.device)                     # [T, T]
        rows, order = torch.arange(T, device=G.device), random_orders(T, G.device)
        diag = G.diagonal()
        for k in range(T - 1):
            j = order[:, k]                                                   # [T]
            dots = (C @ G)[rows, j]                                           # g_i^PC · g_j
            coef = torch.where((dots < 0) & (diag[j] > 0), dots / diag[j].clamp_min(1e-300), 0.0)
            C[rows, j] -= coef
        return C.sum(0)
