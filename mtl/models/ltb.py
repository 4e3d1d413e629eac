"""Learning to Branch (Guo, Lee & Ulbricht, ICML 2020) on any staged backbone.

A tree-structured design space: every stage ("layer") holds T nodes (stage copies); child j of
layer i reads one parent of layer i−1, drawn by Gumbel-softmax over learnable branching logits
α_i[j] (paper §3.2): d = GumbelSoftmax(α_i[j], τ), hard with straight-through gradients, so the
forward pass is a tree and α still learns. τ is annealed per epoch as LibMTL does,
τ(e) = τ₀/√(e+1) with τ₀ = epochs/20 (floored at ``tau_min``), after a warm-up (the first
1 % of epochs) where each child reads the mean of all parents. Evaluation uses argmax α.

The schedule reaches the model through :meth:`LTB.start_epoch` (the loop's epoch hook). Nodes
below the last layer and α are shared; last-layer node t feeds only task t and belongs to it.
``encode`` returns the leaves [T, B, C, ...] (``rep_layout == "per_task"``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import ARCHITECTURES
from .base import PartitionedModel


class LTB(PartitionedModel):
    """T columns of stages; ``alpha[i-1]`` [T, T] picks each layer-i node's parent."""

    rep_layout = "per_task"

    def __init__(self, columns: list[list[nn.Module]], heads: dict[str, nn.Module], tau0: float | None = None,
                 tau_min: float = 0.1, warmup: float = 0.01):
        super().__init__(nn.ModuleList(nn.ModuleList(c) for c in columns), heads)
        n, depth = len(columns), len(columns[0])
        self.alpha = nn.Parameter(torch.zeros(depth - 1, n, n))     # uniform branching at start
        self.tau0, self.tau_min, self.warmup = tau0, tau_min, warmup
        self.epoch: int | None = None
        self.epochs: int | None = None

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.epoch, self.epochs = int(epoch), int(epochs)

    @property
    def in_warmup(self) -> bool:
        return self.epoch is not None and self.epoch < self.epochs * self.warmup

    @property
    def temperature(self) -> float:
        """τ for the current epoch (τ₀ alone before the first epoch hook)."""
        tau0 = self.tau0 if self.tau0 is not None else (self.epochs / 20 if self.epochs else 1.0)
        e = self.epoch or 0
        return max(self.tau_min, tau0 / math.sqrt(e + 1))

    def branching(self) -> torch.Tensor:
        """[S−1, T, T] parent weights: Gumbel-hard when training, argmax when evaluating, uniform in warm-up."""
        n = self.alpha.shape[-1]
        if not self.training:
            return F.one_hot(self.alpha.argmax(-1), n).to(self.alpha.dtype)
        if self.in_warmup:
            return torch.full_like(self.alpha, 1 / n)
        return F.gumbel_softmax(self.alpha, tau=self.temperature, hard=True, dim=-1)

    def encode(self, x) -> torch.Tensor:
        outs = [col[0](x, ()) for col in self.encoder]
        for i, d in enumerate(self.branching(), start=1):            # d [T children, T parents]
            mixed = torch.einsum("jk,kb...->jb...", d, torch.stack([h for h, _ in outs]))
            src = torch.arange(len(outs)) if self.in_warmup and self.training else d.argmax(-1)
            outs = [col[i](mixed[j], outs[int(src[j])][1]) for j, col in enumerate(self.encoder)]
        return torch.stack([h for h, _ in outs])                      # [T, B, C, ...]

    def decode(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        return {t: head(z[i]) for i, (t, head) in enumerate(self.heads.items())}

    def task_modules(self, task: str) -> list[nn.Module]:
        return [self.heads[task], self.encoder[self.tasks.index(task)][-1]]

    def last_shared_modules(self) -> list[nn.Module]:
        return [col[-2] for col in self.encoder] if len(self.encoder[0]) > 1 else []


@ARCHITECTURES.register("ltb", label="LTB", paper="Guo, Lee & Ulbricht, ICML 2020")
def ltb(backbone_fn, tasks, tau0: float | None = None, tau_min: float = 0.1, warmup: float = 0.01) -> LTB:
    """T nodes per stage. One task gives the single-task variant (a single chain of the same stages)."""
    if tau0 is not None and not tau0 > 0:
        raise ValueError(f"tau0 must be positive, got {tau0}")
    if not tau_min > 0 or not 0 <= warmup < 1:
        raise ValueError(f"need tau_min > 0 and 0 ≤ warmup < 1, got tau_min={tau_min}, warmup={warmup}")
    bbs = [backbone_fn() for _ in tasks]
    return LTB([b.staged("ltb") for b in bbs], {t.name: bbs[0].make_head(t) for t in tasks}, tau0, tau_min, warmup)
