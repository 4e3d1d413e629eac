"""Shared pieces of the bilevel weightings (Auto-λ, MOML, FORUM): losses at substituted
parameters, virtual SGD steps, and learnable task weights with their own outer optimizer.

The validation batch comes from ``ctx.next_batch("val")``, which the loop offers every method.
"""
from __future__ import annotations

import torch
from torch import nn

from ..checks import check_count, check_positive
from .base import StepContext, Weighting

DDP_NOTE = "the virtual step and the hypergradient use this rank's gradients (not all-reduced)"


class _LossOf(nn.Module):
    """Wraps the model so ``functional_call`` can run the loop's ``loss_fn`` with other parameters."""

    def __init__(self, model: nn.Module, loss_fn):
        super().__init__()
        self.model, self._loss_fn = model, loss_fn

    def forward(self, batch):
        return self._loss_fn(batch)


def trainable(model: nn.Module) -> tuple[list[str], list[torch.Tensor]]:
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [n for n, _ in named], [p for _, p in named]


def losses_at(ctx: StepContext, names: list[str], params: list[torch.Tensor], batch) -> torch.Tensor:
    """Task losses [T] of ``batch`` with the model's parameters replaced by ``params`` (buffers are
    copied, so batch-norm statistics of the real model are not touched)."""
    subs = {f"model.{n}": p for n, p in zip(names, params)}
    subs.update({f"model.{n}": b.clone() for n, b in ctx.model.named_buffers()})
    return torch.func.functional_call(_LossOf(ctx.model, ctx.shard_loss_fn), subs, (batch,))


def virtual_steps(ctx, names, params, losses, lam, lr: float, steps: int, create_graph: bool):
    """θ_K after K SGD steps on Σ_t λ_t L_t(θ) from θ_0 = ``params`` (step 1 reuses ``losses``'s graph;
    later steps re-evaluate ``ctx.batch``). With ``create_graph`` θ_K stays differentiable in λ."""
    theta = list(params)
    for k in range(steps):
        L = losses if k == 0 else losses_at(ctx, names, theta, ctx.batch)
        grads = torch.autograd.grad((lam * L).sum(), theta, create_graph=create_graph, retain_graph=True,
                                    allow_unused=True, materialize_grads=True)
        theta = [p - lr * g for p, g in zip(theta, grads)]
        if not create_graph:
            theta = [t.detach().requires_grad_() for t in theta]
    return theta


class BilevelWeighting(Weighting):
    """Task weights learned on validation data by an outer Adam (lr ``outer_lr``); the model takes
    the step on Σ_t λ_t L_t with the updated λ. Subclasses implement ``outer_grad``."""

    needs = "losses"

    def __init__(self, outer_lr: float, inner_lr: float, inner_step: int):
        self.outer_lr = check_positive("outer_lr", outer_lr)
        self.inner_lr = check_positive("inner_lr", inner_lr)
        self.inner_step = check_count("inner_step", inner_step)
        self.reset()

    def reset(self) -> None:
        self._raw, self._opt = None, None

    def init_raw(self, T: int, like: torch.Tensor) -> torch.Tensor:
        """Initial raw weight parameters [T] (before ``task_weights``)."""
        raise NotImplementedError

    def task_weights(self, raw: torch.Tensor) -> torch.Tensor:
        """λ [T] from the raw parameters (differentiable)."""
        return raw

    def _ensure(self, like: torch.Tensor) -> torch.Tensor:
        if self._raw is None:
            self._raw = self.init_raw(like.numel(), like).detach().requires_grad_()
            self._opt = torch.optim.Adam([self._raw], lr=self.outer_lr)
        return self._raw

    def outer_grad(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """Gradient [T] for the raw weights from a validation batch."""
        raise NotImplementedError

    def backward(self, losses: torch.Tensor, ctx: StepContext) -> dict:
        raw = self._ensure(losses)
        g = self.outer_grad(losses, ctx)
        self._opt.zero_grad()
        raw.grad = g.detach()
        self._opt.step()
        lam = self.task_weights(raw).detach()
        (lam * losses).sum().backward()
        return {"weights": lam}

    def _aggregate(self, J: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """Σ_t λ_t g_t with the initial λ (updating λ needs a model and a validation batch)."""
        self.reset()
        lam = self.task_weights(self._ensure(J[:, 0])).detach()
        return lam.to(J.dtype) @ J
