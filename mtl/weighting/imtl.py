"""Impartial multi-task learning (Liu et al., ICLR 2021)."""
from __future__ import annotations

import numpy as np
import torch

from ._registry import register
from ._linalg import LogScales
from .gradient import GradientWeighting
from .imtl_g import PAPER, imtl_g_weights
from .imtl_l import scaled_losses


@register("imtl", label="IMTL", paper=PAPER, needs="gramian", modes=("param", "rep"), stateful=True)
class IMTL(LogScales, GradientWeighting):
    """Hybrid IMTL (IMTL-L + IMTL-G), Liu et al. 2021 Alg. 1 (https://openreview.net/forum?id=IMPnRXEWpvr).

    IMTL-L (:func:`~mtl.weighting.imtl_l.scaled_losses`): the gradients are taken of e^{s_t} L_t − s_t
    with learnable scales s (init 0, trained with the model through the task-specific gradient).
    IMTL-G: the closed-form α of :func:`~mtl.weighting.imtl_g.imtl_g_weights`; the direction is
    Σ_t α_t g_t. Each half alone: ``imtl_l``, ``imtl_g``. Default ``mode="rep"`` (LibMTL's NYUv2
    benchmark Table 1).
    """

    default_mode = "rep"

    def __init__(self, mode: str | None = None, chunk_size: int | None = None):
        super().__init__(mode, chunk_size)
        self.reset()

    def transform(self, losses: torch.Tensor) -> torch.Tensor:
        return scaled_losses(self.log_scales(losses), losses)

    def gram_weights(self, G: np.ndarray, losses: torch.Tensor) -> np.ndarray:
        return imtl_g_weights(G)
