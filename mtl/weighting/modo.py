"""MoDo: multi-objective gradient with double sampling (Chen et al., NeurIPS 2023)."""
from __future__ import annotations

import numpy as np
import torch

from ..checks import check_positive
from ._registry import register
from ._linalg import project_simplex
from ._threebatch import cross_product
from .base import StepContext
from .gradient import GradientWeighting


@register("modo", label="MoDo", paper="Chen, Fang, Yang & Chen 2023, https://arxiv.org/abs/2305.20057", needs="custom",
          modes=("param",), batches=3, stateful=True)
class MoDo(GradientWeighting):
    """MoDo, Chen, Fang, Yang & Chen 2023 Alg. 1 (https://arxiv.org/abs/2305.20057), LibMTL defaults.

    Three mini-batches per step: λ ← Π_simplex(λ − γ (J₁J₂ᵀ λ + ρ λ)) from two independent batches
    (an unbiased estimate of the Gram term; J₁J₂ᵀλ costs one backward and one forward-mode pass,
    no Jacobian), then d = J₃ᵀλ with J₃ the step's own batch (mean scale), by one weighted
    backward. The extra batches come from ``ctx.next_batch("train")``; ``aggregate`` uses J for
    all three. Parameter mode only.
    """

    def __init__(self, gamma: float = 1e-3, rho: float = 0.1, mode: str | None = None, chunk_size: int | None = None):
        super().__init__(mode, chunk_size)
        self.gamma = check_positive("gamma", gamma)
        self.rho = check_positive("rho", rho, allow_zero=True)
        self.reset()

    def reset(self) -> None:
        self._lam = None

    def _update(self, product) -> torch.Tensor:
        """λ ← Π_simplex(λ − γ(J₁J₂ᵀλ + ρλ)); ``product(λ)`` returns J₁J₂ᵀλ."""
        u = torch.as_tensor(product(self._lam), dtype=torch.float64).cpu()     # [T]
        self._lam = project_simplex(self._lam - self.gamma * (u + self.rho * self._lam))
        return self._lam.clone()

    def _init(self, T: int) -> None:
        if self._lam is None or self._lam.numel() != T:
            self._lam = torch.full((T,), 1.0 / T, dtype=torch.float64)

    def gram_weights(self, G12: np.ndarray, losses: torch.Tensor) -> torch.Tensor:
        """From a Gram estimate (``aggregate``: J for all three batches)."""
        self._init(len(G12))
        return self._update(lambda lam: torch.as_tensor(G12) @ lam)

    def backward(self, losses: torch.Tensor, ctx: StepContext) -> dict:
        """Param mode: J₁J₂ᵀλ by one backward and one forward-mode pass, then one weighted backward."""
        self._init(losses.numel())
        inputs = self.jacobian_inputs(ctx.model)
        w = self._update(lambda lam: cross_product(ctx, inputs, lam))
        return self._apply_weights(w, losses, list(ctx.model.shared_parameters()), ctx)
