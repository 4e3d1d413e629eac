"""SDMGrad: stochastic direction-oriented multi-objective gradient (Xiao et al., NeurIPS 2023)."""
from __future__ import annotations

import numpy as np
import torch

from ..checks import check_count, check_positive
from ._registry import register
from ._linalg import project_simplex
from ._threebatch import cross_gram
from .base import StepContext
from .gradient import GradientWeighting


@register("sdmgrad", label="SDMGrad", paper="Xiao, Ban & Ji 2023, https://arxiv.org/abs/2305.18409", needs="gramian",
          modes=("param",), batches=3, stateful=True)
class SDMGrad(GradientWeighting):
    """SDMGrad, Xiao, Ban & Ji 2023 Alg. 1 (https://arxiv.org/abs/2305.18409), as the official code.

    w minimises ‖Jw + λ g0‖² over the simplex with ``niter`` projected SGD steps (lr 10, momentum
    0.5, warm-started across steps) on the Gram estimate J₁J₂ᵀ of two independent batches (a
    cross-Gramian: J₁, J₂ are never formed), normalised by its mean task-gradient scale; then
    d = (J₃ᵀw + λ g0₃)/(1+λ) on the step's own batch, by one weighted backward.
    λ = ``lamda`` = 0.3, ``niter`` = 20 (LibMTL defaults). Parameter mode only.
    """

    def __init__(self, lamda: float = 0.3, niter: int = 20, mode: str | None = None, chunk_size: int | None = None):
        super().__init__(mode, chunk_size)
        self.lamda = check_positive("lamda", lamda, allow_zero=True)
        self.niter = check_count("niter", niter)
        self.reset()

    def reset(self) -> None:
        self._w = None

    def step_gram(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return cross_gram(ctx, self.jacobian_inputs(ctx.model), self.chunk_size)             # J₁J₂ᵀ

    def gram_weights(self, GG: np.ndarray, losses: torch.Tensor) -> torch.Tensor:
        T = len(GG)
        if self._w is None or self._w.numel() != T:
            self._w = torch.full((T,), 1.0 / T, dtype=torch.float64)
        GG = torch.as_tensor(GG, dtype=torch.float64)                         # [T, T]
        GG = (GG + GG.T) / 2
        GG = GG / torch.sqrt(GG.diagonal().abs() + 1e-4).mean() ** 2
        Gg = GG.mean(1)                                                       # G g0 / per task
        w, v = self._w.clone(), torch.zeros_like(self._w)
        for _ in range(self.niter):
            grad = 2 * GG @ w + 2 * self.lamda * Gg                           # ∇_w of wᵀGw + 2λ wᵀGg0
            v = 0.5 * v + grad
            w = project_simplex(w - 10.0 * v)
        self._w = w
        return (w + self.lamda / T) / (1 + self.lamda)                        # (Jᵀw + λ g0)/(1+λ)
