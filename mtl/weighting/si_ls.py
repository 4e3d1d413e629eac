"""Scale-invariant linear scalarisation: L = Σ_t log L_t (the SI baseline of Navon et al., ICML 2022)."""
from __future__ import annotations

import torch

from ._registry import register
from .base import LossWeighting


def log_loss_weights(losses: torch.Tensor, method: str) -> torch.Tensor:
    """w_t = 1 / L_t [T], detached: Σ_t w_t L_t has the gradient of Σ_t log L_t. A loss ≤ 0 (whose
    logarithm is undefined) raises a ValueError naming ``method`` and the offending tasks."""
    L = losses.detach()
    if not bool((L > 0).all()):
        bad = {i: float(v) for i, v in enumerate(L) if not v > 0}
        raise ValueError(f"{method} takes log L_t, so every loss must be positive; got task index -> loss {bad}")
    return 1.0 / L


@register("si_ls", label="SI", aliases=("SI-LS",), paper="Navon et al. 2022, https://arxiv.org/abs/2202.01017",
          needs="losses")
class SILS(LossWeighting):
    """Scale-invariant linear scalarisation, the "SI" baseline of Navon et al. 2022
    (https://arxiv.org/abs/2202.01017), as ``ScaleInvariantLinearScalarization`` in their code.

    L = Σ_t log L_t: invariant to a rescaling L_t → c_t L_t of any task's loss. Differentiated through
    the equivalent detached weights w_t = 1/L_t (:func:`log_loss_weights`), so the shared gradient is
    Σ_t g_t / L_t; losses must be positive, with no ε added (as their code).
    """

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        return log_loss_weights(losses, "si_ls")
