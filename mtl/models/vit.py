"""ViT backbones through timm with dense-prediction heads (Guo et al. §IV "ViT", §V-D).

The patch tokens of the last block are reshaped to a feature map [B, D, H/p, W/p] and each task
head upsamples it ×p back to the input (the plain "ViT-T/16" MTL baseline of Guo et al. Fig. 4).
The default is a small ViT (``vit_tiny_patch16_224``'s shape with ``img_size`` set to the data);
any timm ViT name or a Guo et al. Table VIII key works, with weights from
:mod:`mtl.models.pretrained`.
"""
from __future__ import annotations

import torch
from torch import nn

from ._registry import BACKBONES
from .backbones import Backbone, Stage, upsample_head
from .pretrained import create_vit, timm_module


def _to_map(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)   # [B, N, D] -> [B, D, h, w]


def _to_tokens(fmap: torch.Tensor) -> torch.Tensor:
    return fmap.flatten(2).transpose(1, 2)                                          # [B, D, h, w] -> [B, N, D]


class _ViTBlocks(Stage):
    """A run of transformer blocks on a feature map; prefix tokens (class, registers) ride in ``memo``."""

    def __init__(self, blocks: list[nn.Module], dim: int, embed: nn.Module | None = None,
                 norm: nn.Module | None = None):
        super().__init__(nn.Sequential(*blocks), dim)
        self.embed, self.norm = embed, norm

    def forward(self, h, memo: tuple = ()):
        if self.embed is not None:
            x, grid = self.embed(h)                   # [B, P+N, D]
        else:
            grid, x = tuple(h.shape[-2:]), torch.cat([memo[-1], _to_tokens(h)], 1)
            memo = memo[:-1]
        x = self.body(x)
        if self.norm is not None:
            x = self.norm(x)
        p = x.shape[1] - grid[0] * grid[1]
        return _to_map(x[:, p:], grid), memo + (x[:, :p],)


class _ViTEmbed(nn.Module):
    """Patch embedding, prefix tokens and position embedding of a timm ``VisionTransformer``."""

    def __init__(self, vit: nn.Module):
        super().__init__()
        for name in ("patch_embed", "pos_drop", "patch_drop", "norm_pre", "cls_token", "reg_token", "pos_embed"):
            setattr(self, name, getattr(vit, name))
        self.no_embed_class, self.dynamic_img_size = vit.no_embed_class, vit.dynamic_img_size
        self.num_prefix_tokens = vit.num_prefix_tokens
        self._pos = type(vit)._pos_embed             # timm's own code, run on these modules

    def forward(self, x):
        x = self.patch_embed(x)                       # [B, N, D] (or [B, h, w, D] when dynamic)
        grid = tuple(x.shape[1:3]) if x.ndim == 4 else tuple(self.patch_embed.grid_size)
        x = self.norm_pre(self.patch_drop(self._pos(self, x)))
        return x, grid                                # [B, P+N, D]


class ViTEncoder(nn.Module):
    """A timm ViT as an encoder: [B, 3, H, W] -> [B, D, H/p, W/p]; ``stages()`` splits its blocks."""

    def __init__(self, vit: nn.Module, n_stages: int = 4):
        super().__init__()
        self.vit = vit
        self.n_stages = n_stages
        self.patch_size = int(vit.patch_embed.patch_size[0])
        self.out_channels = int(vit.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.vit.forward_features(x)
        if y.ndim == 4:                               # SAM-style models already return [B, C, h, w]
            return y
        grid = tuple(s // self.patch_size for s in x.shape[-2:])
        return _to_map(y[:, y.shape[1] - grid[0] * grid[1]:], grid)

    def stages(self) -> list[Stage]:
        """``n_stages`` even runs of blocks (the first with the embedding, the last with the norm);
        a non-``VisionTransformer`` (e.g. SAM's windowed ViT) is one stage."""
        timm = timm_module()
        if not isinstance(self.vit, timm.models.vision_transformer.VisionTransformer):
            return [Stage(self, self.out_channels)]
        blocks = list(self.vit.blocks)
        n = max(1, min(self.n_stages, len(blocks)))
        cuts = [round(i * len(blocks) / n) for i in range(n + 1)]
        return [_ViTBlocks(blocks[a:b], self.out_channels, _ViTEmbed(self.vit) if i == 0 else None,
                           self.vit.norm if i == n - 1 else None)
                for i, (a, b) in enumerate(zip(cuts[:-1], cuts[1:]))]


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, float)) else tuple(int(a) for a in v)


@BACKBONES.register("vit", label="ViT", paper="Dosovitskiy et al., ICLR 2021 (timm)")
def vit(model_name: str = "vit_tiny_patch16_224", img_size=(48, 64), patch_size: int | None = None,
        in_channels: int = 3, stages: int = 4, pretrained: bool = False, checkpoint: str | None = None,
        head_width: int | None = None, **timm_kw) -> Backbone:
    """A timm ViT with a per-task upsampling head (Dosovitskiy et al. 2021; Guo et al. §IV).

    :param model_name: timm name or Guo et al. Table VIII key (``"dino"``, ``"clip"``, ...).
    :param img_size: the data's (H, W); both must be multiples of the patch size.
    :param patch_size: override the model's patch size (e.g. 8 for 48×64 images); ``None`` keeps it.
    :param stages: how many block runs staged architectures (MTAN, Cross-stitch, PLE, LTB) see.
    :param pretrained, checkpoint: see :func:`mtl.models.pretrained.create_vit`.
    :param timm_kw: more ``timm.create_model`` arguments (``embed_dim``, ``depth``, ``num_heads``...).
    """
    size = _pair(img_size)
    kw = dict(img_size=size, in_chans=in_channels, **timm_kw)
    if patch_size is not None:
        kw["patch_size"] = int(patch_size)
    net = create_vit(model_name, pretrained=pretrained, checkpoint=checkpoint, **kw)
    enc = ViTEncoder(net, stages)
    if any(s % enc.patch_size for s in size):
        raise ValueError(f"img_size {size} must be divisible by the patch size {enc.patch_size}")
    return Backbone(enc, upsample_head(enc.out_channels, enc.patch_size, head_width), enc.out_channels, enc.stages())
