"""Multi-gate Mixture-of-Experts (Ma et al., KDD 2018), and the expert/gate machinery CGC, PLE and DSelect-k reuse.

Paper Eq. (5)–(6): y_t = h_t(f_t(x)), f_t(x) = Σ_e g_t(x)_e f_e(x), g_t(x) = softmax(W_t x).
Each expert f_e is a full copy of the backbone's encoder. The gate does **not** read the raw
flattened image (LibMTL's choice: a 331,776·E-weight linear map per gate on NYUv2 that only sees
pixels); it reads the experts' own globally pooled features, so a gate has E·C·E weights on any
backbone, image or vector.

``encode`` returns the stacked expert outputs z [E, B, C, ...] — a representation every task
reads, so ``rep_layout == "shared"`` and "rep" mode differentiates the losses w.r.t. all expert
outputs; ``decode`` gates and heads. Experts are shared; gate t and head t belong to task t.
"""
from __future__ import annotations

import torch
from torch import nn

from ..checks import check_count
from ._registry import ARCHITECTURES
from .base import PartitionedModel


def pooled(z: torch.Tensor) -> torch.Tensor:
    """[E, B, C, ...] -> [B, E·C]: global average over any spatial axes, experts side by side."""
    v = z.flatten(3).mean(-1) if z.dim() > 3 else z     # [E, B, C]
    return v.permute(1, 0, 2).flatten(1)                 # [B, E·C]


def mix(z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Σ_e w[b, e] z[e, b, ...]: z [E, B, ...], w [B, E] -> [B, ...]."""
    return torch.einsum("eb...,be->b...", z, w)


class Gate(nn.Module):
    """MMoE's softmax gate g(x) = softmax(W u(x) + b) over ``n_experts``, u = the experts' pooled features."""

    def __init__(self, channels: int, n_experts: int):
        super().__init__()
        self.linear = nn.Linear(channels * n_experts, n_experts)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.linear(pooled(z)), dim=-1)   # [B, E]


class MixtureOfExperts(PartitionedModel):
    """Experts on the input, one gate and one head per task; ``routes[t]`` lists the experts gate t mixes.

    MMoE and DSelect-k route every task to every expert; CGC routes task t to the shared experts
    plus its own (``owned[t]``), which then belong to task t.
    """

    def __init__(self, experts: list[nn.Module], heads: dict[str, nn.Module], gates: dict[str, nn.Module],
                 routes: dict[str, list[int]], owned: dict[str, list[int]] | None = None):
        super().__init__(nn.ModuleList(experts), heads)
        self.gates = nn.ModuleDict(gates)
        self.routes = {t: list(r) for t, r in routes.items()}
        self.owned = {t: list((owned or {}).get(t, [])) for t in heads}

    def encode(self, x) -> torch.Tensor:
        return torch.stack([e(x) for e in self.encoder])          # [E, B, C, ...]

    def decode(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for t, head in self.heads.items():
            zt = z[self.routes[t]]                                 # [E_t, B, C, ...]
            out[t] = head(mix(zt, self.gates[t](zt)))
        return out

    def task_modules(self, task: str) -> list[nn.Module]:
        return [self.heads[task], self.gates[task]] + [self.encoder[i] for i in self.owned[task]]

    def last_shared_modules(self) -> list[nn.Module]:
        mine = {i for o in self.owned.values() for i in o}
        return [e for i, e in enumerate(self.encoder) if i not in mine]


@ARCHITECTURES.register("mmoe", label="MMoE", paper="Ma et al., KDD 2018")
def mmoe(backbone_fn, tasks, num_experts: int = 2) -> MixtureOfExperts:
    """MMoE with ``num_experts`` backbone copies (LibMTL's NYUv2 benchmark: 2). One task gives its single-task
    variant: the same experts and a single gate."""
    n = check_count("num_experts", num_experts)
    bbs = [backbone_fn() for _ in range(n)]
    gates = {t.name: Gate(bbs[0].out_features, n) for t in tasks}
    return MixtureOfExperts([b.encoder for b in bbs], {t.name: bbs[0].make_head(t) for t in tasks}, gates,
                            {t.name: list(range(n)) for t in tasks})
