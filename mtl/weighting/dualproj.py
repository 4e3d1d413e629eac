"""DualProj: the mean gradient projected onto the dual cone of the task gradients."""
from __future__ import annotations

import numpy as np
import torch

from ..checks import check_positive
from ._registry import register
from ._linalg import normalized, project_weights
from .gradient import GradientWeighting


PAPER = ("Lopez-Paz & Ranzato 2017, https://arxiv.org/abs/1706.08840 (GEM Eq. 11), "
         "named DualProj by Quinton & Rey 2024, https://arxiv.org/abs/2406.16232")


@register("dualproj", label="DualProj", paper=PAPER, needs="gramian", modes=("param", "rep"))
class DualProj(GradientWeighting):
    """DualProj, GEM's projection (Lopez-Paz & Ranzato 2017 Eq. 11, https://arxiv.org/abs/1706.08840) of
    the mean gradient, as TorchJD's ``DualProj`` (Quinton & Rey 2024).

    d = π_J(ḡ), ḡ = (1/T) Σ_t g_t, π_J the Euclidean projection onto the dual cone {x : Jx ≥ 0}, so no
    task conflicts with d (J d ≥ 0), and d = ḡ when ḡ conflicts with none. d = Jᵀv with
    v = argmin_{v ≥ 1/T} vᵀGv, solved by scipy NNLS (:func:`~mtl.weighting._linalg.project_weights`,
    shared with UPGrad) on G normalised by its mean diagonal plus ``reg_eps``·I (TorchJD's
    regulariser; 0 gives the exact projection). Mean scale.
    """

    def __init__(self, reg_eps: float = 1e-4, mode: str | None = None, chunk_size: int | None = None):
        super().__init__(mode, chunk_size)
        self.reg_eps = check_positive("reg_eps", reg_eps, allow_zero=True)

    def gram_weights(self, G: np.ndarray, losses: torch.Tensor) -> np.ndarray:
        T = len(G)
        G, s = normalized(G)
        if s == 0.0:                                                          # G = 0: any w gives d = 0
            return np.full(T, 1.0 / T)
        return project_weights(np.full((1, T), 1.0 / T), G, self.reg_eps)[0]   # [T]
