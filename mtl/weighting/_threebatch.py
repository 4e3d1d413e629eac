"""Products with J₁J₂ᵀ of two extra training mini-batches, for the three-batch methods (MoDo, SDMGrad)."""
from __future__ import annotations

import torch

from ..jacobian import FactoredJacobian, full_precision
from ._bilevel import losses_at
from .base import StepContext


def cross_gram(ctx: StepContext, inputs: list[torch.Tensor], chunk_size=None) -> torch.Tensor:
    """J₁J₂ᵀ [T, T] for two fresh batches from ``ctx.next_batch("train")`` (never forming J₁, J₂; with
    ``ctx.rep_loss_fn`` separate task heads are crossed once per batch; under data parallelism the global
    batches' rows mean_r J_r, see :class:`mtl.distributed.DataParallel`)."""
    def losses(batch):
        return ctx.rep_loss_fn(batch) if ctx.rep_loss_fn is not None else (ctx.loss_fn(batch), None)

    with torch.enable_grad():
        L1, z1 = losses(ctx.next_batch("train"))                              # [T], rep
        L2, z2 = losses(ctx.next_batch("train"))
        fa, fb = (full_precision(FactoredJacobian(L.reshape(-1), inputs, chunk_size=chunk_size, rep=z))
                  for L, z in ((L1, z1), (L2, z2)))                           # float64 if autocast made them half
        if ctx.sync is None:
            return fa.gram(fb).detach()                                       # [T, T]
        J1, J2 = ctx.sync.jacobian(fa), ctx.sync.jacobian(fb)                 # the global batches' rows
        return J1.gram(J2).detach()                                           # [T, T]


def cross_product(ctx: StepContext, inputs: list[torch.Tensor], lam: torch.Tensor) -> torch.Tensor:
    """J₁J₂ᵀλ [T] for two fresh batches: v = J₂ᵀλ by one backward of Σ_t λ_t L₂_t, then J₁v by one
    forward-mode pass (``torch.func.jvp``) — no Jacobian and no Gram matrix."""
    names = {id(p): n for n, p in ctx.model.named_parameters()}
    with torch.enable_grad():
        L2 = ctx.loss_fn(ctx.next_batch("train"))                             # [T]
        v = torch.autograd.grad((lam.to(L2.dtype) * L2).sum(), inputs, allow_unused=True, materialize_grads=True)
    if ctx.sync is not None:                                                  # the global batch's J₂ᵀλ
        v = [g.detach().clone() for g in v]
        ctx.sync.mean_(v, "param_rows")
    batch, keys = ctx.next_batch("train"), [names[id(p)] for p in inputs]
    with torch.backends.mkldnn.flags(enabled=False):                         # oneDNN's LSTM (QM9's Set2Set)
        _, Jv = torch.func.jvp(lambda *ps: losses_at(ctx, keys, list(ps), batch),   # has no forward-AD rule
                               tuple(p.detach() for p in inputs), tuple(g.detach() for g in v))
    return Jv.detach() if ctx.sync is None else ctx.sync.mean(Jv, "losses")   # [T]
