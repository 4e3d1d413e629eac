"""The cross-Gramian of two extra training mini-batches, for the three-batch methods (MoDo, SDMGrad)."""
from __future__ import annotations

import torch

from ..jacobian import gramian
from .base import StepContext


def cross_gram(ctx: StepContext, inputs: list[torch.Tensor], chunk_size=None) -> torch.Tensor:
    """J₁J₂ᵀ [T, T] for two fresh batches from ``ctx.next_batch("train")`` (never forming J₁, J₂)."""
    with torch.enable_grad():
        L1 = ctx.loss_fn(ctx.next_batch("train"))                             # [T]
        L2 = ctx.loss_fn(ctx.next_batch("train"))
        return gramian(L1, inputs, other=L2, chunk_size=chunk_size).detach()
