"""UPGrad: unconflicting projection of gradients (Quinton & Rey, 2024)."""
from __future__ import annotations

import numpy as np
import torch

from ..checks import check_positive
from ._registry import register
from ._linalg import dual_cone_weights, normalized
from .gradient import GradientWeighting


@register("upgrad", label="UPGrad", paper="Quinton & Rey 2024, https://arxiv.org/abs/2406.16232", needs="gramian",
          modes=("param", "rep"))
class UPGrad(GradientWeighting):
    """UPGrad, Quinton & Rey 2024 Def. 5 (https://arxiv.org/abs/2406.16232), TorchJD's defaults.

    d = (1/T) Σ_i π_J(g_i), π_J the projection onto the dual cone {x : Jx ≥ 0}, so no task
    conflicts with d (J d ≥ 0). Each projection is Jᵀv_i with v_i = argmin_{v ≥ e_i} vᵀGv, solved by
    scipy NNLS (:func:`~mtl.weighting._linalg.dual_cone_weights`) on G normalised by its mean
    diagonal plus ``reg_eps``·I (TorchJD's regulariser). Unlike TorchJD there is no absolute
    ``norm_eps`` threshold, so the weights are invariant to the scale of J. Mean scale.
    """

    def __init__(self, reg_eps: float = 1e-4, mode: str | None = None, chunk_size: int | None = None):
        super().__init__(mode, chunk_size)
        self.reg_eps = check_positive("reg_eps", reg_eps, allow_zero=True)

    def gram_weights(self, G: np.ndarray, losses: torch.Tensor) -> np.ndarray:
        G, s = normalized(G)
        if s == 0.0:                                                          # G = 0: any w gives d = 0
            return np.full(len(G), 1.0 / len(G))
        return dual_cone_weights(G, self.reg_eps).mean(0)                    # mean of the T projections
