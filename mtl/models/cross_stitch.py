"""Cross-stitch networks (Misra et al., CVPR 2016) on any staged backbone.

One backbone column per task; after every stage a cross-stitch unit mixes the columns' activations
(paper Eq. (1)): x̃_t = Σ_s α_ts x_s. The α are initialised to the paper's best convex setting,
α_tt = 0.9 and α_ts = 0.1/(T−1) (Table 2's (α_S, α_D) = (0.9, 0.1); LibMTL initialises them to 1).
Columns and units are shared (every loss reaches every column through α); heads belong to
their task. ``encode`` returns the columns' final outputs [T, B, C, ...] (``rep_layout ==
"per_task"``). Each column keeps its own SegNet pooling indices / ViT prefix tokens.
"""
from __future__ import annotations

import torch
from torch import nn

from ._registry import ARCHITECTURES
from .base import PartitionedModel


def stitch_init(n: int, alpha_same: float) -> torch.Tensor:
    """[T, T] units: α_same on the diagonal, the rest spread evenly (rows sum to 1)."""
    if n == 1:
        return torch.ones(1, 1)
    off = (1 - alpha_same) / (n - 1)
    return torch.full((n, n), off) + (alpha_same - off) * torch.eye(n)


class CrossStitch(PartitionedModel):
    """T columns of stages with a learnable [T, T] mixing unit after each stage."""

    rep_layout = "per_task"

    def __init__(self, columns: list[list[nn.Module]], heads: dict[str, nn.Module], alpha_same: float = 0.9):
        super().__init__(nn.ModuleList(nn.ModuleList(c) for c in columns), heads)
        self.units = nn.ParameterList(nn.Parameter(stitch_init(len(columns), alpha_same)) for _ in columns[0])

    def encode(self, x) -> torch.Tensor:
        paths = [(x, ())] * len(self.encoder)
        for s, alpha in enumerate(self.units):
            outs = [col[s](h, memo) for col, (h, memo) in zip(self.encoder, paths)]
            mixed = torch.einsum("ts,sb...->tb...", alpha, torch.stack([h for h, _ in outs]))   # [T, B, C, ...]
            paths = [(mixed[t], memo) for t, (_, memo) in enumerate(outs)]
        return mixed

    def decode(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        return {t: head(z[i]) for i, (t, head) in enumerate(self.heads.items())}

    def last_shared_modules(self) -> list[nn.Module]:
        return [col[-1] for col in self.encoder]


@ARCHITECTURES.register("cross_stitch", label="Cross-stitch", paper="Misra et al., CVPR 2016")
def cross_stitch(backbone_fn, tasks, alpha_same: float = 0.9) -> CrossStitch:
    """One column per task. One task gives the single-task variant: one column with its (1×1) units."""
    if not 0 <= alpha_same <= 1:
        raise ValueError(f"alpha_same must lie in [0, 1], got {alpha_same}")
    bbs = [backbone_fn() for _ in tasks]
    return CrossStitch([b.staged("cross_stitch") for b in bbs], {t.name: bbs[0].make_head(t) for t in tasks},
                       alpha_same)
