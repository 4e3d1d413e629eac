"""Backbones: an encoder plus the head each task kind gets on top of it."""
from __future__ import annotations

from typing import Callable

from torch import nn

from ..tasks import Task
from . import BACKBONES


class Backbone:
    """A shared encoder and a factory ``make_head(task) -> nn.Module`` for its output."""

    def __init__(self, encoder: nn.Module, make_head: Callable[[Task], nn.Module], out_features: int):
        self.encoder, self.make_head, self.out_features = encoder, make_head, out_features


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SegNet(nn.Module):
    """A SegNet encoder-decoder (Badrinarayanan et al. 2017) as shared in MTAN / Nash-MTL's NYUv2 protocol.

    ``stages`` down-sampling stages of ``convs`` conv-BN-ReLU blocks with widths ``width · 2^i``,
    max-pool with indices, and a mirrored decoder that unpools with those indices. Output
    [B, width, H, W] at input resolution. The paper-scale network is width 64, 5 stages, 2–3 convs.
    """

    def __init__(self, in_channels: int = 3, width: int = 16, stages: int = 3, convs: int = 2):
        super().__init__()
        widths = [width * 2**i for i in range(stages)]
        self.down = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.down.append(nn.Sequential(*[_conv_bn(cin if k == 0 else w, w) for k in range(convs)]))
            cin = w
        self.up = nn.ModuleList()
        for i in reversed(range(stages)):
            cout = widths[i - 1] if i > 0 else width
            self.up.append(nn.Sequential(*[_conv_bn(widths[i], widths[i] if k < convs - 1 else cout) for k in range(convs)]))
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, 2)

    def forward(self, x):
        idx, sizes = [], []
        for block in self.down:                      # [B, C, H, W] -> [B, 2C, H/2, W/2]
            x = block(x)
            sizes.append(x.shape)
            x, i = self.pool(x)
            idx.append(i)
        for block in self.up:
            x = self.unpool(x, idx.pop(), output_size=sizes.pop())
            x = block(x)
        return x                                      # [B, width, H, W]


def dense_head(cin: int) -> Callable[[Task], nn.Module]:
    """MTAN's task head: conv3×3 + ReLU + conv1×1 to the task's channels."""
    def make(task: Task) -> nn.Module:
        return nn.Sequential(nn.Conv2d(cin, cin, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(cin, task.out_channels, 1))
    return make


@BACKBONES.register("segnet")
def segnet(in_channels: int = 3, width: int = 16, stages: int = 3, convs: int = 2) -> Backbone:
    return Backbone(SegNet(in_channels, width, stages, convs), dense_head(width), width)


class LeNet(nn.Module):
    """The LeNet encoder of PaMaL / EXTRA MultiMNIST (seed 000 App. A.2): conv10-pool-ReLU, conv20-pool-ReLU, FC 320→50."""

    def __init__(self, in_channels: int = 1, features: int = 50):
        super().__init__()
        self.convs = nn.Sequential(nn.Conv2d(in_channels, 10, 5), nn.MaxPool2d(2), nn.ReLU(),
                                   nn.Conv2d(10, 20, 5), nn.MaxPool2d(2), nn.ReLU())
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(320, features), nn.ReLU())

    def forward(self, x):                             # [B, 1, 28, 28] -> [B, 50]
        return self.fc(self.convs(x))


def mlp_head(cin: int, hidden: int = 50) -> Callable[[Task], nn.Module]:
    """PaMaL's MultiMNIST head: FC cin→hidden, ReLU, FC hidden→classes."""
    def make(task: Task) -> nn.Module:
        return nn.Sequential(nn.Linear(cin, hidden), nn.ReLU(), nn.Linear(hidden, task.out_channels))
    return make


@BACKBONES.register("lenet")
def lenet(in_channels: int = 1, features: int = 50) -> Backbone:
    return Backbone(LeNet(in_channels, features), mlp_head(features), features)
