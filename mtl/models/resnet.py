"""Dilated ResNet-18 / ResNet-50 backbones (torchvision) for dense prediction, output stride 8.

The strides of ``layer3`` and ``layer4`` become dilations 2 and 4 (Yu & Koltun 2016; the
"dilated ResNet" of MTI-Net / ATRC / LibMTL that Guo et al. §IV uses), so the feature map stays at
1/8 of the input and each task head upsamples it ×8. ``weights=None`` by default: nothing is
downloaded unless a caller names torchvision weights (e.g. ``"IMAGENET1K_V1"``).
"""
from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torchvision.models import resnet as tvm

from ..checks import check_count
from ._registry import BACKBONES
from .backbones import Backbone, Stage, upsample_head

OUTPUT_STRIDE = 8
_SPECS = {"resnet18": (tvm.BasicBlock, [2, 2, 2, 2], tvm.resnet18),
          "resnet50": (tvm.Bottleneck, [3, 4, 6, 3], tvm.resnet50)}


class _NarrowResNet(tvm.ResNet):
    """torchvision's ResNet with every width scaled by ``width / 64`` (for fast CPU profiles and tests)."""

    def __init__(self, block, layers, width: int):
        self._width, self._first = width, True
        super().__init__(block, layers)
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if self._first:                               # the stem now has `width` channels
            self.inplanes, self._first = self._width, False
        return super()._make_layer(block, planes * self._width // 64, blocks, stride, dilate)


def _nostride_dilate(m: nn.Module, dilate: int) -> None:
    """Turn a stride-2 convolution into a dilated stride-1 one (the DeepLab / CSAIL recipe)."""
    if not isinstance(m, nn.Conv2d):
        return
    if m.stride == (2, 2):
        m.stride = (1, 1)
        if m.kernel_size == (3, 3):
            m.dilation, m.padding = (dilate // 2,) * 2, (dilate // 2,) * 2
    elif m.kernel_size == (3, 3):
        m.dilation, m.padding = (dilate,) * 2, (dilate,) * 2


def _channels(layer: nn.Module) -> int:
    return [m for m in layer.modules() if isinstance(m, nn.BatchNorm2d)][-1].num_features


class DilatedResNet(nn.Module):
    """A torchvision ResNet without pooling/classifier, ``layer3``/``layer4`` dilated:
    [B, 3, H, W] -> [B, C, H/8, W/8]."""

    def __init__(self, net: tvm.ResNet):
        super().__init__()
        net.layer3.apply(partial(_nostride_dilate, dilate=2))
        net.layer4.apply(partial(_nostride_dilate, dilate=4))
        net.fc, net.avgpool = nn.Identity(), nn.Identity()
        self.net = net
        self.out_channels = _channels(net.layer4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % OUTPUT_STRIDE or x.shape[-2] % OUTPUT_STRIDE:
            raise ValueError(f"the dilated ResNet needs height and width divisible by {OUTPUT_STRIDE}, "
                             f"got {tuple(x.shape[-2:])}")
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))      # [B, w, H/4, W/4]
        return n.layer4(n.layer3(n.layer2(n.layer1(x))))   # [B, C, H/8, W/8]

    def stages(self) -> list[Stage]:
        """Stem, layer1, layer2, layer3, layer4 (the five stages LibMTL's ResNet architectures use)."""
        n = self.net
        stem = Stage(nn.Sequential(n.conv1, n.bn1, n.relu, n.maxpool), n.bn1.num_features)
        return [stem] + [Stage(layer, _channels(layer)) for layer in (n.layer1, n.layer2, n.layer3, n.layer4)]


def _resnet(name: str, in_channels: int, width: int, weights: str | None, head_width: int | None) -> Backbone:
    check_count("width", width)
    block, layers, factory = _SPECS[name]
    if width == 64:
        net = factory(weights=weights)
    elif weights is not None:
        raise ValueError(f"pretrained weights {weights!r} need width=64, got width={width}")
    else:
        net = _NarrowResNet(block, layers, width)
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, net.conv1.out_channels, 7, 2, 3, bias=False)
    enc = DilatedResNet(net)
    return Backbone(enc, upsample_head(enc.out_channels, OUTPUT_STRIDE, head_width), enc.out_channels, enc.stages())


@BACKBONES.register("resnet18", label="ResNet-18 (dilated)", paper="He et al. 2016; Yu & Koltun 2016")
def resnet18(in_channels: int = 3, width: int = 64, weights: str | None = None,
             head_width: int | None = None) -> Backbone:
    """Dilated ResNet-18 (He et al. 2016; torchvision), 512·width/64 channels at stride 8.

    :param width: stem width (64 is torchvision's network; smaller scales every layer).
    :param weights: torchvision weights name, e.g. ``"IMAGENET1K_V1"`` (downloads); ``None``: random.
    :param head_width: hidden channels of each task head (default ``min(C, 256)``).
    """
    return _resnet("resnet18", in_channels, width, weights, head_width)


@BACKBONES.register("resnet50", label="ResNet-50 (dilated)", paper="He et al. 2016; Yu & Koltun 2016")
def resnet50(in_channels: int = 3, width: int = 64, weights: str | None = None,
             head_width: int | None = None) -> Backbone:
    """Dilated ResNet-50 (He et al. 2016; torchvision), 2048·width/64 channels at stride 8 (Guo et al. Table III)."""
    return _resnet("resnet50", in_channels, width, weights, head_width)
