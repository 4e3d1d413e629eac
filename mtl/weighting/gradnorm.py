"""GradNorm: gradient normalisation for adaptive loss balancing (Chen et al., ICML 2018)."""
from __future__ import annotations

import numpy as np
import torch

from ..checks import check_positive
from ._registry import register
from ._linalg import lazy_parameter, materialize, norms_from_gram
from .base import StepContext
from .gradient import GradientWeighting


@register("gradnorm", label="GradNorm", paper="Chen et al. 2018, https://arxiv.org/abs/1711.02257", needs="gramian",
          modes=("param", "rep"), stateful=True)
class GradNorm(GradientWeighting):
    """GradNorm, Chen et al. 2018 Eq. 1–2 / Alg. 1 (https://arxiv.org/abs/1711.02257).

    Loss weights w (init 1, learnable, optimised with the model) get the gradient of
    L_grad = Σ_i |w_i‖g_i‖ − Ḡ r_i^α|, with Ḡ = mean_i w_i‖g_i‖ and r_i = L̃_i / mean L̃, L̃_i = L_i / L_i(step 0)
    (Ḡ and the target are constants, as in the paper); after every optimizer step w is renormalised
    to Σ w = T. The network gets ∇ Σ_i w_i L_i (loss weights, heads included). ‖g_i‖ is taken on all
    shared parameters in "param" mode (LibMTL's NYUv2 benchmark: rep_grad False), on the representation in "rep".
    """

    loss_weights = True

    def __init__(self, alpha: float = 1.5, mode: str | None = None, chunk_size: int | None = None):
        super().__init__(mode, chunk_size)
        self.alpha = check_positive("alpha", alpha, allow_zero=True)
        self.reset()

    def reset(self) -> None:
        self._w, self._L0 = lazy_parameter(), None

    def parameters(self) -> list[torch.Tensor]:
        return [self._w]

    def gram_weights(self, G: np.ndarray, losses: torch.Tensor) -> torch.Tensor:
        w = materialize(self._w, len(G), losses, 1.0)
        if self._L0 is None:
            self._L0 = losses.detach().clamp_min(1e-12)
        n = torch.as_tensor(norms_from_gram(G), dtype=w.dtype, device=w.device)   # ‖g_i‖ [T]
        Gw = w.detach() * n
        Lt = losses.detach() / self._L0
        target = Gw.mean() * (Lt / Lt.mean().clamp_min(1e-12)) ** self.alpha
        grad = torch.sign(Gw - target) * n                                    # ∂L_grad/∂w
        w.grad = grad if w.grad is None else w.grad + grad
        return w.detach().clone()

    def after_step(self, ctx: StepContext) -> None:
        with torch.no_grad():
            self._w.clamp_(min=1e-6)
            self._w.mul_(self._w.numel() / self._w.sum())

    def _aggregate(self, J, losses):
        """From fresh weights w = 1."""
        self.reset()
        return super()._aggregate(J, losses)
