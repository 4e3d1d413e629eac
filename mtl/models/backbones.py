"""Backbones: an encoder plus the head each task kind gets on top of it."""
from __future__ import annotations

from typing import Callable

from torch import nn

from ..tasks import Task
from ._registry import BACKBONES


class Stage(nn.Module):
    """One piece of an encoder for staged architectures: ``forward(h, memo) -> (h, memo)``.

    Running a backbone's stages in order equals running its encoder. ``memo`` is an immutable
    tuple a path carries from stage to stage (SegNet's pooling indices, a ViT's prefix tokens);
    most stages pass it through. ``out_channels`` and ``spatial`` (output [B, C, H, W] rather
    than [B, C]) let an architecture size the modules it puts between stages.
    """

    def __init__(self, body: nn.Module, out_channels: int, spatial: bool = True):
        super().__init__()
        self.body, self.out_channels, self.spatial = body, out_channels, spatial

    def forward(self, h, memo: tuple = ()):
        return self.body(h), memo


class Backbone:
    """A shared encoder and a factory ``make_head(task) -> nn.Module`` for its output.

    ``stages`` (optional) splits the same encoder into :class:`Stage` s for the architectures
    that act between stages (Cross-stitch, MTAN, PLE, LTB).
    """

    def __init__(self, encoder: nn.Module, make_head: Callable[[Task], nn.Module], out_features: int,
                 stages: list[Stage] | None = None):
        self.encoder, self.make_head, self.out_features = encoder, make_head, out_features
        self.stages = stages

    def staged(self, architecture: str = "this architecture") -> list[Stage]:
        """The encoder's stages; a clear error if the backbone does not define them."""
        if not self.stages:
            raise ValueError(f"{architecture} needs a backbone split into stages, but "
                             f"{type(self.encoder).__name__} defines none; "
                             "use segnet, resnet18, resnet50, vit or lenet")
        return self.stages


def run_stages(stages, x, memo: tuple = ()):
    """Run ``stages`` in order on ``x``; returns the last output and its memo."""
    h = x
    for stage in stages:
        h, memo = stage(h, memo)
    return h, memo


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
            self.up.append(nn.Sequential(*[_conv_bn(widths[i], widths[i] if k < convs - 1 else cout)
                                           for k in range(convs)]))
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, 2)

    def stages(self) -> list[Stage]:
        """The encoder as stages: each down block (conv, pool) then each up block (unpool, conv);
        the pooling indices travel in ``memo``."""
        down = [_SegNetDown(b, self.pool, b[-1][0].out_channels) for b in self.down]
        up = [_SegNetUp(b, self.unpool, b[-1][0].out_channels) for b in self.up]
        return down + up

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


class _SegNetDown(Stage):
    def __init__(self, block: nn.Module, pool: nn.Module, out_channels: int):
        super().__init__(block, out_channels)
        self.pool = pool

    def forward(self, h, memo: tuple = ()):
        h = self.body(h)                              # [B, C, H, W]
        size = h.shape
        h, idx = self.pool(h)                         # [B, C, H/2, W/2]
        return h, memo + ((idx, size),)


class _SegNetUp(Stage):
    def __init__(self, block: nn.Module, unpool: nn.Module, out_channels: int):
        super().__init__(block, out_channels)
        self.unpool = unpool

    def forward(self, h, memo: tuple = ()):
        idx, size = memo[-1]
        h = self.unpool(h, idx, output_size=size)     # [B, C, 2H, 2W]
        return self.body(h), memo[:-1]


def dense_head(cin: int) -> Callable[[Task], nn.Module]:
    """MTAN's task head: conv3×3 + ReLU + conv1×1 to the task's channels."""
    def make(task: Task) -> nn.Module:
        return nn.Sequential(nn.Conv2d(cin, cin, 3, padding=1), nn.ReLU(inplace=True),
                             nn.Conv2d(cin, task.out_channels, 1))
    return make


def upsample_head(cin: int, scale: int, width: int | None = None) -> Callable[[Task], nn.Module]:
    """A dense head for a stride-``scale`` feature map: conv3×3-BN-ReLU, conv1×1 to the task's
    channels, bilinear ×``scale`` back to input resolution (DeepLab-style decoding, one per task)."""
    width = width or min(cin, 256)

    def make(task: Task) -> nn.Module:
        return nn.Sequential(nn.Conv2d(cin, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                             nn.ReLU(inplace=True), nn.Conv2d(width, task.out_channels, 1),
                             nn.Upsample(scale_factor=scale, mode="bilinear", align_corners=False))
    return make


@BACKBONES.register("segnet", label="SegNet", paper="Badrinarayanan et al. 2017")
def segnet(in_channels: int = 3, width: int = 16, stages: int = 3, convs: int = 2) -> Backbone:
    net = SegNet(in_channels, width, stages, convs)
    return Backbone(net, dense_head(width), width, net.stages())


class LeNet(nn.Module):
    """The LeNet encoder of PaMaL / EXTRA MultiMNIST (Zhou et al. 2025 App. A.2):
    conv10-pool-ReLU, conv20-pool-ReLU, FC 320→50."""

    def __init__(self, in_channels: int = 1, features: int = 50):
        super().__init__()
        self.convs = nn.Sequential(nn.Conv2d(in_channels, 10, 5), nn.MaxPool2d(2), nn.ReLU(),
                                   nn.Conv2d(10, 20, 5), nn.MaxPool2d(2), nn.ReLU())
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(320, features), nn.ReLU())

    def forward(self, x):                             # [B, 1, 28, 28] -> [B, 50]
        return self.fc(self.convs(x))

    def stages(self) -> list[Stage]:
        """conv10 block [B, 10, 12, 12], conv20 block [B, 20, 4, 4], FC [B, 50]."""
        return [Stage(self.convs[:3], 10), Stage(self.convs[3:], 20),
                Stage(self.fc, self.fc[1].out_features, spatial=False)]


def mlp_head(cin: int, hidden: int = 50) -> Callable[[Task], nn.Module]:
    """PaMaL's MultiMNIST head: FC cin→hidden, ReLU, FC hidden→classes."""
    def make(task: Task) -> nn.Module:
        return nn.Sequential(nn.Linear(cin, hidden), nn.ReLU(), nn.Linear(hidden, task.out_channels))
    return make


@BACKBONES.register("lenet", label="LeNet", paper="PaMaL / EXTRA MultiMNIST (Zhou et al. 2025, App. A.2)")
def lenet(in_channels: int = 1, features: int = 50) -> Backbone:
    net = LeNet(in_channels, features)
    return Backbone(net, mlp_head(features), features, net.stages())
