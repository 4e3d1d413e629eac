"""Multi-Task Attention Network (Liu, Johns & Davison, CVPR 2019) on any staged backbone.

A shared trunk; for each task a soft-attention branch over every stage (paper Eq. (1)):
â_t^(j) = g_t^(j)([u^(j); f^(j)(â_t^(j−1))]) ⊙ p^(j), with p^(j) the trunk's stage-j output.
g_t^(j) (task-specific) is 1×1 conv-BN-ReLU, 1×1 conv-BN-sigmoid; f^(j) (shared across tasks) is
3×3 conv-BN-ReLU resized to stage j's resolution (max-pool down, bilinear up). Generic stages
expose no intra-stage tap, so u^(j) = p^(j) (the SegNet-MTAN code taps the block's first conv).

Partition: trunk and f^(j) shared, g_t^(j) and head t belong to task t. ``encode`` returns the
attended final features [T, B, C, ...] (``rep_layout == "per_task"``; Nash-MTL's z_k).
One task gives "MTAN single-task" of Guo et al. §V-C: the trunk plus that task's attention.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import ARCHITECTURES
from .base import PartitionedModel


def resize(a: torch.Tensor, size) -> torch.Tensor:
    """Bring a map [B, C, h, w] to ``size`` (adaptive max-pool when shrinking, bilinear when growing)."""
    if tuple(a.shape[-2:]) == tuple(size):
        return a
    if a.shape[-2] >= size[0] and a.shape[-1] >= size[1]:
        return F.adaptive_max_pool2d(a, size)
    return F.interpolate(a, size=tuple(size), mode="bilinear", align_corners=False)


def attention(cin: int, c: int, spatial: bool) -> nn.Sequential:
    """g_t^(j): [B, cin, ...] -> a mask in (0, 1) of shape [B, c, ...]."""
    if spatial:
        return nn.Sequential(nn.Conv2d(cin, c, 1), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                             nn.Conv2d(c, c, 1), nn.BatchNorm2d(c), nn.Sigmoid())
    return nn.Sequential(nn.Linear(cin, c), nn.BatchNorm1d(c), nn.ReLU(inplace=True),
                         nn.Linear(c, c), nn.BatchNorm1d(c), nn.Sigmoid())


class Bridge(nn.Module):
    """f^(j): previous attended features -> stage j's channels and resolution."""

    def __init__(self, prev, cur):
        super().__init__()
        if cur.spatial and not prev.spatial:
            raise ValueError("MTAN cannot attend from a vector stage back to a spatial one")
        self.spatial_in, self.spatial_out = prev.spatial, cur.spatial
        c_in, c = prev.out_channels, cur.out_channels
        if cur.spatial:
            self.body = nn.Sequential(nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                                      nn.ReLU(inplace=True))
        else:
            self.body = nn.Sequential(nn.Linear(c_in, c, bias=False), nn.BatchNorm1d(c), nn.ReLU(inplace=True))

    def forward(self, a: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if self.spatial_out:
            return resize(self.body(a), like.shape[-2:])
        if self.spatial_in:
            a = a.flatten(2).mean(-1)                  # [B, C, h, w] -> [B, C]
        return self.body(a)


class MTAN(PartitionedModel):
    """Shared trunk stages with per-task attention after each stage."""

    rep_layout = "per_task"

    def __init__(self, stages: list[nn.Module], heads: dict[str, nn.Module]):
        super().__init__(nn.ModuleList(stages), heads)
        self.bridges = nn.ModuleList(Bridge(p, c) for p, c in zip(stages[:-1], stages[1:]))
        self.attention = nn.ModuleDict({t: nn.ModuleList(
            attention(s.out_channels * (1 if j == 0 else 2), s.out_channels, s.spatial) for j, s in enumerate(stages))
            for t in heads})

    def encode(self, x) -> torch.Tensor:
        h, memo = x, ()
        att = {t: None for t in self.heads}
        for j, stage in enumerate(self.encoder):
            h, memo = stage(h, memo)                   # p^(j) [B, C_j, ...]
            for t, a in att.items():
                inp = h if j == 0 else torch.cat([h, self.bridges[j - 1](a, h)], 1)
                att[t] = self.attention[t][j](inp) * h
        return torch.stack([att[t] for t in self.heads])            # [T, B, C, ...]

    def decode(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        return {t: head(z[i]) for i, (t, head) in enumerate(self.heads.items())}

    def task_modules(self, task: str) -> list[nn.Module]:
        return [self.heads[task], self.attention[task]]

    def last_shared_modules(self) -> list[nn.Module]:
        return [self.encoder[-1]]


@ARCHITECTURES.register("mtan", label="MTAN", paper="Liu, Johns & Davison, CVPR 2019")
def mtan(backbone_fn, tasks) -> MTAN:
    bb = backbone_fn()
    return MTAN(bb.staged("mtan"), {t.name: bb.make_head(t) for t in tasks})
