"""DSelect-k (Hazimeh et al., NeurIPS 2021): MMoE with differentiable sparse gates.

Gate (paper §3, Eq. (5)–(7)): k single-expert selectors r(z_i)_e = Π_j [S(z_ij) if bit j of e
else 1 − S(z_ij)] with the smooth step S_γ(t) = −2t³/γ³ + 3t/(2γ) + ½ on |t| ≤ γ/2 (0 / 1
outside), mixed by softmax weights: w = Σ_i softmax(α)_i r(z_i). Per-example routing
(z, α = linear maps of the experts' pooled features, as our MMoE gates). Training adds the
entropy regulariser λ Σ_i H(r(z_i)) (§3.3), plus Σ 1/Σ_e r_e when E is not a power of two
(the official code's guard against unreachable codes), for **every** task's selectors.

The term reaches the optimiser through :meth:`DSelectK.regularization`, which the training loop
adds to the backward after its ``zero_grad`` — unlike LibMTL, whose ``loss.backward()`` inside
``forward`` is wiped by the trainer's later ``zero_grad`` and only covers the last task.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..checks import check_count
from ._registry import ARCHITECTURES
from .mmoe import MixtureOfExperts, pooled

EPSILON = 1e-6


def smooth_step(t: torch.Tensor, gamma: float) -> torch.Tensor:
    """Hazimeh et al. 2020's cubic smooth step: 0 below −γ/2, 1 above γ/2, C¹ in between."""
    cubic = -2 / gamma**3 * t**3 + 3 / (2 * gamma) * t + 0.5
    return torch.where(t <= -gamma / 2, torch.zeros_like(t), torch.where(t >= gamma / 2, torch.ones_like(t), cubic))


class DSelectGate(nn.Module):
    """Example-conditioned DSelect-k gate over ``n_experts`` with ``k`` selectors; keeps its last selectors."""

    def __init__(self, channels: int, n_experts: int, k: int = 2, gamma: float = 1.0):
        super().__init__()
        if n_experts < 2:
            raise ValueError(f"DSelect-k needs at least 2 experts, got {n_experts}")
        if not gamma > 0:
            raise ValueError(f"gamma must be positive, got {gamma}")
        self.k, self.gamma, self.m = k, gamma, math.ceil(math.log2(n_experts))
        self.power_of_2 = n_experts == 2**self.m
        self.z_logits = nn.Linear(channels * n_experts, k * self.m)
        self.w_logits = nn.Linear(channels * n_experts, k)
        nn.init.uniform_(self.z_logits.weight, -gamma / 100, gamma / 100)   # official initialisers
        nn.init.uniform_(self.z_logits.bias, -gamma / 100, gamma / 100)
        nn.init.uniform_(self.w_logits.weight, -0.05, 0.05)
        nn.init.uniform_(self.w_logits.bias, -0.05, 0.05)
        codes = [[(e >> (self.m - 1 - j)) & 1 for j in range(self.m)] for e in range(n_experts)]
        self.register_buffer("codes", torch.tensor(codes, dtype=torch.bool), persistent=False)   # [E, m]
        self.selectors: torch.Tensor | None = None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        u = pooled(z)                                                      # [B, E·C]
        s = smooth_step(self.z_logits(u).view(-1, self.k, 1, self.m), self.gamma)   # [B, k, 1, m]
        r = torch.where(self.codes, s, 1 - s).prod(-1)                     # [B, k, E]
        a = torch.softmax(self.w_logits(u), dim=1)                         # [B, k]
        self.selectors = r
        return (a.unsqueeze(-1) * r).sum(1)                                # [B, E]

    def penalty(self) -> torch.Tensor:
        """Σ entropy of the last selectors (+ the unreachable-code guard), summed over the batch."""
        r = self.selectors
        loss = -(r * torch.log(r + EPSILON)).sum()
        return loss if self.power_of_2 else loss + (1 / r.sum(-1)).sum()


class DSelectK(MixtureOfExperts):
    """MMoE with :class:`DSelectGate` s; ``regularization()`` returns λ·Σ_t penalty of the last training forward."""

    def __init__(self, *args, entropy_reg: float = 1e-6, **kw):
        super().__init__(*args, **kw)
        self.entropy_reg = entropy_reg
        self._pending = False

    def decode(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        out = super().decode(z)
        self._pending = self.training and torch.is_grad_enabled()
        return out

    def regularization(self) -> torch.Tensor | None:
        if not self._pending:
            return None
        self._pending = False
        return self.entropy_reg * sum(g.penalty() for g in self.gates.values())


@ARCHITECTURES.register("dselect_k", label="DSelect-k", paper="Hazimeh et al., NeurIPS 2021")
def dselect_k(backbone_fn, tasks, num_experts: int = 2, num_nonzeros: int = 2, gamma: float = 1.0,
              entropy_reg: float = 1e-6) -> DSelectK:
    """DSelect-k with LibMTL's settings (2 experts, k = 2, γ = 1) and the official λ = 1e-6.
    One task gives its single-task variant."""
    n, k = check_count("num_experts", num_experts, 2), check_count("num_nonzeros", num_nonzeros)
    if entropy_reg < 0:
        raise ValueError(f"entropy_reg must be non-negative, got {entropy_reg}")
    bbs = [backbone_fn() for _ in range(n)]
    gates = {t.name: DSelectGate(bbs[0].out_features, n, k, gamma) for t in tasks}
    return DSelectK([b.encoder for b in bbs], {t.name: bbs[0].make_head(t) for t in tasks}, gates,
                    {t.name: list(range(n)) for t in tasks}, entropy_reg=entropy_reg)
