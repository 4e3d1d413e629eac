"""AvgNorm: loss weights from task-gradient norms (Guo et al., Section V-F, Eq. 6)."""
from __future__ import annotations

import numpy as np
import torch

from ._registry import register
from ._linalg import norms_from_gram
from .gradient import GradientWeighting

LAYERS = ("last", "all")


@register("avgnorm", label="AvgNorm", paper="Guo, Yu et al., Revisit the Imbalance Optimization in MTL, Eq. 6",
          needs="gramian", modes=("param",), stateful=True)
class AvgNorm(GradientWeighting):
    """AvgNorm, Guo et al. ("Revisit the Imbalance Optimization in MTL") Eq. 6: w_i = ‖Σ_j g_j‖ / ‖g_i‖.

    Every task gradient is scaled to the norm S of the plain sum. g_i is taken on the last shared
    layer (``layer="last"``, ``model.last_shared_parameters()``, the paper's finding that it
    suffices) or on all shared parameters (``"all"``); w is applied as detached loss weights
    Σ_i w_i L_i to the whole network. ‖g_i‖ is floored at ``eps``·max_j‖g_j‖ (relative, so the
    weights do not depend on the scale of the gradients). ``mean_weights`` is the running mean of w over training
    (the λ_t of Guo et al. Table VI); the per-step w is also logged as ``weights``.
    """

    loss_weights = True

    def __init__(self, layer: str = "last", eps: float = 1e-8, chunk_size: int | None = None):
        super().__init__("param", chunk_size)
        if layer not in LAYERS:
            raise ValueError(f"layer must be one of {LAYERS}, got {layer!r}")
        self.layer, self.eps = layer, float(eps)
        self.reset()

    def reset(self) -> None:
        self._sum, self._n = None, 0

    @property
    def mean_weights(self) -> torch.Tensor | None:
        """Mean loss weights [T] over every step since ``reset`` (None before the first)."""
        return None if self._sum is None else torch.as_tensor(self._sum / self._n)

    def jacobian_inputs(self, model: torch.nn.Module) -> list[torch.Tensor]:
        return list(model.last_shared_parameters() if self.layer == "last" else model.shared_parameters())

    def gram_weights(self, G: np.ndarray, losses: torch.Tensor) -> np.ndarray:
        S, n = np.sqrt(max(G.sum(), 0.0)), norms_from_gram(G)                # ‖Σ_j g_j‖, ‖g_i‖ [T]
        floor = self.eps * n.max()
        w = S / np.maximum(n, floor) if floor > 0 else np.ones(len(G))       # [T]
        self._sum = w if self._sum is None else self._sum + w
        self._n += 1
        return w
