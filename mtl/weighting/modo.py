"""MoDo: multi-objective gradient with double sampling (Chen et al., NeurIPS 2023)."""
from __future__ import annotations

import numpy as np
import torch

from . import register
from ._linalg import check_positive, project_simplex
from ._threebatch import cross_gram
from .base import StepContext
from .gradient import GradientWeighting


@register("modo")
class MoDo(GradientWeighting):
    """MoDo, Chen, Fang, Yang & Chen 2023 Alg. 1 (https://arxiv.org/abs/2305.20057), LibMTL defaults.

    Three mini-batches per step: λ ← Π_simplex(λ − γ (J₁J₂ᵀ λ + ρ λ)) from two independent batches
    (an unbiased estimate of the Gram term, computed as a cross-Gramian without J₁, J₂), then
    d = J₃ᵀλ with J₃ the step's own batch (mean scale), by one weighted backward. The extra batches
    come from ``ctx.next_batch("train")``; ``aggregate`` uses J for all three. Parameter mode only.
    """

    modes = ("param",)
    batches = 3

    def __init__(self, gamma: float = 1e-3, rho: float = 0.1, mode: str | None = None, chunk_size: int | None = None):
        super().__init__(mode, chunk_size)
        self.gamma = check_positive("gamma", gamma)
        self.rho = check_positive("rho", rho, allow_zero=True)
        self.reset()

    def reset(self) -> None:
        self._lam = None

    def step_gram(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return cross_gram(ctx, self.jacobian_inputs(ctx.model), self.chunk_size)             # J₁J₂ᵀ

    def gram_weights(self, G12: np.ndarray, losses: torch.Tensor) -> torch.Tensor:
        T = len(G12)
        if self._lam is None or self._lam.numel() != T:
            self._lam = torch.full((T,), 1.0 / T, dtype=torch.float64)
        G12 = torch.as_tensor(G12, dtype=torch.float64)                       # [T, T]
        self._lam = project_simplex(self._lam - self.gamma * (G12 @ self._lam + self.rho * self._lam))
        return self._lam.clone()
