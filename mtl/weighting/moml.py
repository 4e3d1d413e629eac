"""MOML: multi-objective meta learning (Ye et al., NeurIPS 2021)."""
from __future__ import annotations

import torch

from ._registry import register
from ._bilevel import DDP_NOTE, BilevelWeighting, losses_at, trainable, virtual_steps
from ._linalg import min_norm_weights
from .base import StepContext


@register("moml", label="MOML", paper="Ye et al. 2021, https://arxiv.org/abs/2102.07121", needs="custom", batches=2,
          stateful=True,
          ddp_exact=False, ddp_note=DDP_NOTE)
class MOML(BilevelWeighting):
    """MOML, Ye et al. 2021 Alg. 1 (https://arxiv.org/abs/2102.07121), LibMTL's defaults.

    Task weights λ = softmax(ω). Lower level: ``inner_step`` SGD steps (lr ``inner_lr``) on Σ_t λ_t L_t^train.
    Upper level, multi-objective: the hypergradients h_s = ∇_ω L_s^val(θ_K) of every task s are
    combined by MGDA (exact min-norm weights, :func:`~mtl.weighting._linalg.min_norm_weights`) and
    ω takes an Adam step (lr ``outer_lr``). Hypergradients are exact (unrolled double backward);
    any ``inner_step`` ≥ 1 works (LibMTL asserts 1 while defaulting to 5).
    """

    def __init__(self, outer_lr: float = 1e-3, inner_lr: float = 0.1, inner_step: int = 5):
        super().__init__(outer_lr, inner_lr, inner_step)

    def init_raw(self, T, like):
        return torch.zeros(T, dtype=like.dtype, device=like.device)

    def task_weights(self, raw):
        return torch.softmax(raw, 0)

    def outer_grad(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        names, params = trainable(ctx.model)
        lam = self.task_weights(self._raw)
        theta = virtual_steps(ctx, names, params, losses, lam, self.inner_lr, self.inner_step, create_graph=True)
        val = losses_at(ctx, names, theta, ctx.next_batch("val"))            # [T]
        # [T, T]: a loop over T (vmap is slower here)
        H = torch.stack([torch.autograd.grad(val[s], self._raw, retain_graph=s < len(val) - 1)[0]
                         for s in range(len(val))])
        G = (H @ H.T).double().cpu().numpy()
        w = torch.as_tensor(min_norm_weights(G), dtype=H.dtype, device=H.device)
        return w @ H
