"""Conflict-averse gradient descent (Liu et al., NeurIPS 2021)."""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

from ..checks import check_positive
from ._registry import register
from ._linalg import normalized
from .gradient import GradientWeighting

RESCALES = (0, 1, 2)


def cagrad_dual(G: np.ndarray, c: float) -> np.ndarray:
    """argmin_{w ∈ simplex} wᵀ G 1/T + c ‖g0‖ √(wᵀ G w) (CAGrad's dual, Liu et al. 2021 Eq. 5), with
    ‖g0‖ = √(1ᵀG1)/T. Solved by scipy SLSQP with the analytic gradient on G / mean diag (same argmin)."""
    T = len(G)
    Gn, s = normalized(G)
    if s == 0.0 or T == 1:
        return np.full(T, 1.0 / T)
    b = Gn.mean(1)                                                           # G 1/T
    k = c * np.sqrt(max(Gn.mean(), 0.0))

    def f(w):
        q = np.sqrt(max(w @ Gn @ w, 0.0) + 1e-12)
        return w @ b + k * q, b + k * (Gn @ w) / q

    res = minimize(f, np.full(T, 1.0 / T), jac=True, method="SLSQP", bounds=[(0.0, 1.0)] * T,
                   constraints=({"type": "eq", "fun": lambda w: w.sum() - 1, "jac": lambda w: np.ones(T)},),
                   options={"ftol": 1e-12, "maxiter": 200})
    w = np.clip(res.x, 0.0, None)
    return w / w.sum() if w.sum() > 0 else np.full(T, 1.0 / T)


@register("cagrad", label="CAGrad", paper="Liu et al. 2021, https://arxiv.org/abs/2110.14048", needs="gramian",
          modes=("param", "rep"))
class CAGrad(GradientWeighting):
    """CAGrad, Liu et al. 2021 Alg. 1 (https://arxiv.org/abs/2110.14048), as LibMTL/official code.

    With w the dual solution and λ = c‖g0‖/‖Gw‖: d = g0 + λ Σ_t w_t g_t, g0 = mean gradient, then
    divided by 1+c² (``rescale=1``), 1+c (2) or not (0). All in the row space of J, so it is a
    weighting: (1/T + λ w)/(1+c²). ``c`` = 0.5 (LibMTL's NYUv2 benchmark Table 1 "calpha").
    """

    def __init__(self, c: float = 0.5, rescale: int = 1, mode: str | None = None, chunk_size: int | None = None):
        super().__init__(mode, chunk_size)
        self.c = check_positive("c", c, allow_zero=True)
        if rescale not in RESCALES:
            raise ValueError(f"rescale must be one of {RESCALES}, got {rescale!r}")
        self.rescale = rescale

    def gram_weights(self, G: np.ndarray, losses: torch.Tensor) -> np.ndarray:
        T = len(G)
        w = cagrad_dual(G, self.c)
        gw_norm = np.sqrt(max(w @ G @ w, 0.0))
        lam = self.c * np.sqrt(max(G.mean(), 0.0)) / gw_norm if gw_norm > 0 else 0.0
        coef = np.full(T, 1.0 / T) + lam * w
        coef /= (1.0, 1 + self.c**2, 1 + self.c)[self.rescale]
        return coef
