"""The 9-layer CNN of the CelebA experiments (EXTRA, Zhou et al. 2025 App. A.2; FAMO / FairGrad's ``Network``).

Seven 3×3 conv-BN-ReLU layers (widths w, 2w, 2w, 4w, 4w, 8w, 8w with 2×2 max-pools after the
1st, 3rd and 5th) and global average pooling, then two bias-free linear-BN-ReLU layers of 8w
features: 9 weight layers shared by all tasks, each task adding one linear head. ``width=64``
is the paper's network (512 features); smaller widths are for CPU profiles.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from ..checks import check_count
from ..tasks import Task
from ._registry import BACKBONES
from .backbones import Backbone, Stage


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _fc(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Linear(cin, cout, bias=False), nn.BatchNorm1d(cout), nn.ReLU(inplace=True)]


class CNN9(nn.Module):
    """[B, C, H, W] -> [B, 8·width]; H and W at least 8 (three 2× pools, then global pooling).

    Four blocks (conv-pool | 2 conv-pool | 2 conv-pool | 2 conv, pooling, 2 linear) that double as
    the backbone's stages.
    """

    def __init__(self, in_channels: int = 3, width: int = 64):
        super().__init__()
        check_count("width", width)
        w1, w2, w4, w8 = width, 2 * width, 4 * width, 8 * width
        self.blocks = nn.ModuleList([
            nn.Sequential(*_conv(in_channels, w1), nn.MaxPool2d(2)),                    # [B, w, H/2, W/2]
            nn.Sequential(*_conv(w1, w2), *_conv(w2, w2), nn.MaxPool2d(2)),              # [B, 2w, H/4, W/4]
            nn.Sequential(*_conv(w2, w4), *_conv(w4, w4), nn.MaxPool2d(2)),              # [B, 4w, H/8, W/8]
            nn.Sequential(*_conv(w4, w8), *_conv(w8, w8), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          *_fc(w8, w8), *_fc(w8, w8)),                                   # [B, 8w]
        ])
        self.widths = (w1, w2, w4, w8)
        self.out_features = w8

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x                                             # [B, 8·width]


class _Squeeze(nn.Module):
    def forward(self, x):
        return x.squeeze(-1)                                 # [B, 1] -> [B]


def linear_head(cin: int) -> Callable[[Task], nn.Module]:
    """One linear layer per task; single-output tasks (binary, regression) give [B] rather than [B, 1]."""
    def make(task: Task) -> nn.Module:
        if task.out_channels == 1:
            return nn.Sequential(nn.Linear(cin, 1), _Squeeze())
        return nn.Linear(cin, task.out_channels)
    return make


@BACKBONES.register("cnn9", label="CNN-9",
                    paper="EXTRA (Zhou et al., NeurIPS 2025) App. A.2; FAMO / FairGrad's CelebA network")
def cnn9(in_channels: int = 3, width: int = 64) -> Backbone:
    enc = CNN9(in_channels, width)
    stages = [Stage(b, c, spatial=i < 3) for i, (b, c) in enumerate(zip(enc.blocks, enc.widths))]
    return Backbone(enc, linear_head(enc.out_features), enc.out_features, stages)
