"""Vision-foundation-model initialisations of Guo et al. (§V-D, Table VIII), loaded through timm.

One code path for every source: ``timm.create_model(name, pretrained=True, ...)``. With a local
``checkpoint`` it goes through timm's own pretrained mechanism with
``pretrained_cfg_overlay=dict(file=checkpoint)`` (so timm's checkpoint filters still resample the
position embedding and patch embedding to our image and patch size); without one timm fetches the
weights from the Hugging Face hub — only on a machine that has it, never in tests.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from ..paths import repo_root

# Guo et al. Table VIII, keyed by the initialisation names of its Table IV
VFM_INITIALISATIONS: dict[str, str] = {
    "imagenet-1k": "vit_base_patch16_384.augreg_in1k",
    "imagenet-21k": "vit_base_patch16_224.augreg_in21k",
    "imagenet-22k": "vit_base_patch16_384.augreg_in21k_ft_in1k",
    "clip": "vit_base_patch16_clip_384",
    "sam": "samvit_base_patch16",
    "dino": "vit_base_patch16_224.dino",
    "dinov2": "vit_base_patch14_reg4_dinov2",
}


def timm_module():
    """``timm``, or an ImportError that says how to install it."""
    try:
        import timm
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the ViT backbone needs timm: pip install 'mtl-imbalance[vit]' (or pip install timm)") from e
    return timm


def resolve_name(name: str) -> str:
    """A Table VIII key (``"dino"``) -> its timm name; any other name is passed to timm unchanged."""
    return VFM_INITIALISATIONS.get(str(name).lower(), name)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextmanager
def _timm_load_log():
    """Collect timm's load messages (it only logs missing keys when a classifier is dropped)."""
    logger, handler = logging.getLogger("timm.models._builder"), _Records()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _strip_head(model: nn.Module) -> nn.Module:
    """Drop classifier-side modules ``forward_features`` never uses, so no parameter is left without a gradient."""
    for attr in ("head", "fc_norm", "head_drop"):
        if isinstance(getattr(model, attr, None), nn.Module):
            setattr(model, attr, nn.Identity())
    if getattr(model, "attn_pool", None) is not None:
        model.attn_pool = None
    return model


def create_vit(model_name: str, *, pretrained: bool = False, checkpoint: str | Path | None = None,
               **timm_kw) -> nn.Module:
    """A timm ViT without classifier, optionally initialised from pretrained weights.

    :param model_name: a timm model name or a key of :data:`VFM_INITIALISATIONS`.
    :param pretrained: load weights through timm (from ``checkpoint`` if given, else from the hub).
    :param checkpoint: a local state-dict file (implies ``pretrained``); a missing file or missing
        keys raise instead of silently leaving layers random. A relative path not found from the
        working folder is taken from the repository root (run specs store it that way, so a moved
        checkout keeps its run ids).
    :param timm_kw: passed to ``timm.create_model`` (``img_size``, ``patch_size``, ``depth``, ...).
    """
    timm = timm_module()
    name = resolve_name(model_name)
    overlay = None
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_absolute() and not path.is_file():
            path = repo_root() / path
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file {checkpoint} does not exist (nor under {repo_root()})")
        pretrained, overlay = True, dict(file=str(path))
    with _timm_load_log() as log:
        model = timm.create_model(name, pretrained=pretrained, pretrained_cfg_overlay=overlay, num_classes=0, **timm_kw)
    missing = [m for m in log if m.startswith("Missing keys")]
    if missing:
        raise ValueError(f"loading {name} from {checkpoint or 'the hub'}: {missing[0]}")
    return _strip_head(model)


def save_checkpoint(model: nn.Module, path: str | Path) -> Path:
    """Save a timm model's state dict (or the ViT inside a :class:`~mtl.models.vit.ViTEncoder`)
    where :func:`create_vit` (``checkpoint=path``) loads it back."""
    vit = getattr(model, "vit", model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in vit.state_dict().items()}, path)
    return path
