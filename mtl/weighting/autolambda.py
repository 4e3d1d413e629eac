"""Auto-λ: task weights learned by meta-optimisation (Liu, Johns & Davison, TMLR 2022)."""
from __future__ import annotations

import torch

from ..checks import check_positive
from ._registry import register
from ._bilevel import DDP_NOTE, BilevelWeighting, losses_at, trainable, virtual_steps
from .base import StepContext


@register("autolambda", label="Auto-Lambda", aliases=("Auto-λ",), paper="Liu et al. 2022, https://arxiv.org/abs/2202.03091",
          needs="custom", batches=2, stateful=True,
          ddp_exact=False, ddp_note=DDP_NOTE)
class AutoLambda(BilevelWeighting):
    """Auto-λ, Liu et al. 2022 Eq. 3–4 (https://arxiv.org/abs/2202.03091), all tasks primary.

    λ (init ``weight_init`` = 0.1, the official code) follows Adam (lr ``outer_lr`` = 1e-4, the
    official ``autol_lr``) on ∇_λ Σ_t L_t^val(θ − α∇_θ Σ_s λ_s L_s^train(θ)); the model then steps on
    Σ_t λ_t L_t. The hypergradient is exact (double backward through ``inner_step`` virtual steps)
    where the official code uses a finite-difference Hessian-vector product; α = ``inner_lr``
    stands for the model's learning rate that the official code reads from its optimizer.
    """

    def __init__(self, weight_init: float = 0.1, outer_lr: float = 1e-4, inner_lr: float = 1e-3, inner_step: int = 1):
        self.weight_init = check_positive("weight_init", weight_init)
        super().__init__(outer_lr, inner_lr, inner_step)

    def init_raw(self, T, like):
        return torch.full((T,), self.weight_init, dtype=like.dtype, device=like.device)

    def outer_grad(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        names, params = trainable(ctx.model)
        lam = self.task_weights(self._raw)
        theta = virtual_steps(ctx, names, params, losses, lam, self.inner_lr, self.inner_step, create_graph=True)
        val = losses_at(ctx, names, theta, ctx.next_batch("val"))            # [T]
        (g,) = torch.autograd.grad(val.sum(), self._raw)
        return g
