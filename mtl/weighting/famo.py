"""Fast Adaptive Multitask Optimization (Liu, Feng, Stone & Liu, NeurIPS 2023)."""
from __future__ import annotations

import torch

from ..checks import check_positive
from ._registry import register
from .base import LossWeighting, StepContext


@register("famo", label="FAMO", paper="Liu et al. 2023, https://arxiv.org/abs/2306.03792", needs="losses",
          stateful=True)
class FAMO(LossWeighting):
    """FAMO, Liu et al. 2023 Alg. 1 / Eq. 10 (https://arxiv.org/abs/2306.03792), as the official code.

    Logits ξ, z = softmax(ξ); the model gets ∇ Σ_t (z_t / c) log(L_t + ε) with c = Σ_t z_t / (L_t + ε)
    (detached), i.e. weights w_t = z_t / (c (L_t + ε)). After the optimizer step (``after_step``)
    a no-grad forward on the same batch gives L'; ξ takes an Adam step (lr ``w_lr``, weight decay
    ``gamma``) along J_softmax(ξ)ᵀ (log(L + ε) − log(L' + ε)).
    """

    def __init__(self, w_lr: float = 0.025, gamma: float = 1e-3, eps: float = 1e-8):
        self.w_lr = check_positive("w_lr", w_lr)
        self.gamma = check_positive("gamma", gamma, allow_zero=True)
        self.eps = check_positive("eps", eps)
        self.reset()

    def reset(self) -> None:
        self._xi, self._opt, self._prev = None, None, None

    def _logits(self, like: torch.Tensor) -> torch.Tensor:
        if self._xi is None:
            self._xi = torch.zeros(like.numel(), dtype=like.dtype, device=like.device, requires_grad=True)
            self._opt = torch.optim.Adam([self._xi], lr=self.w_lr, weight_decay=self.gamma)
        return self._xi

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        z = torch.softmax(self._logits(losses).detach(), 0)                  # [T]
        D = losses.detach() + self.eps
        c = (z / D).sum()
        return z / (c * D)

    def backward(self, losses: torch.Tensor, ctx: StepContext) -> dict:
        self._prev = losses.detach()
        return super().backward(losses, ctx)

    def after_step(self, ctx: StepContext) -> None:
        with torch.no_grad():
            new = ctx.loss_fn(ctx.batch).detach()                              # [T] after the step
        delta = torch.log(self._prev + self.eps) - torch.log(new + self.eps)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(torch.softmax(self._xi, 0), self._xi, grad_outputs=delta)
        self._opt.zero_grad()
        self._xi.grad = g
        self._opt.step()
