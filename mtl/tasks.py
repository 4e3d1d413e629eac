"""Tasks: a name, a loss, a meter factory and the direction of each metric.

``Task.metrics`` maps every reported metric to ``higher_is_better``; ``Task.primary`` names the
metrics that enter Δm in Guo et al.'s tables (one per task: mIoU, RMSE, mean angle, odsF, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from . import metrics as M


@dataclass(frozen=True)
class Task:
    name: str
    # segmentation | depth | normal | edge | classification | regression | binary
    kind: str
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    make_meter: Callable[[], object]
    metrics: dict[str, bool]                    # metric -> higher is better
    primary: tuple[str, ...]                    # metrics used for Δm
    out_channels: int = 1                       # channels/classes the head must produce
    info: dict = field(default_factory=dict)

    def primary_directions(self) -> dict[str, bool]:
        return {m: self.metrics[m] for m in self.primary}


# ----------------------------------------------------------------------------- losses (mean over valid elements)


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # logits [B, C, H, W], target [B, H, W] long, -1 ignored
    return F.cross_entropy(logits, target.long(), ignore_index=-1)


def depth_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # L1 on valid pixels (target > 0), as LibMTL / MTAN
    valid = target > 0
    return (pred - target).abs()[valid].mean() if valid.any() else pred.sum() * 0


def normal_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # 1 - cos on valid pixels (target ≠ 0); pred [B, 3, H, W]
    valid = target.abs().sum(1) > 0
    cos = (F.normalize(pred, dim=1) * target).sum(1)
    return (1 - cos[valid]).mean() if valid.any() else pred.sum() * 0


def edge_loss(logits: torch.Tensor, target: torch.Tensor, pos_weight: float = 0.95) -> torch.Tensor:
    """Class-balanced BCE of MTI-Net/ATRC: positives weighted 0.95, negatives 0.05; -1 ignored."""
    valid = target >= 0
    t = target.clamp(min=0).float()
    w = torch.where(t > 0.5, torch.full_like(t, pos_weight), torch.full_like(t, 1 - pos_weight))
    loss = F.binary_cross_entropy_with_logits(logits, t, weight=w, reduction="none")
    return loss[valid].mean() * 2  # ×2 so a balanced weight gives the unweighted BCE scale


def classification_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, target.long())


def regression_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred.reshape(target.shape), target.float())


def binary_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.reshape(target.shape), target.float())


# ----------------------------------------------------------------------------- task factories


def segmentation(name: str = "segmentation", num_classes: int = 13) -> Task:
    return Task(name, "segmentation", segmentation_loss, lambda: M.SegmentationMeter(num_classes),
                {"miou": True, "pix_acc": True}, ("miou",), num_classes)


def depth(name: str = "depth") -> Task:
    return Task(name, "depth", depth_loss, M.DepthMeter,
                {"rmse": False, "abs_err": False, "rel_err": False}, ("rmse",), 1)


def normal(name: str = "normal") -> Task:
    return Task(name, "normal", normal_loss, M.NormalMeter,
                {"mean": False, "median": False, "within_11": True, "within_22": True, "within_30": True},
                ("mean",), 3)


def edge(name: str = "edge") -> Task:
    return Task(name, "edge", edge_loss, M.EdgeMeter, {"odsf": True}, ("odsf",), 1)


def classification(name: str, num_classes: int) -> Task:
    return Task(name, "classification", classification_loss, M.AccuracyMeter, {"acc": True}, ("acc",), num_classes)


def binary(name: str) -> Task:
    return Task(name, "binary", binary_loss, M.AccuracyMeter, {"acc": True}, ("acc",), 1)


def regression(name: str, mean: float = 0.0, std: float = 1.0, scale: float = 1.0, unit: str = "") -> Task:
    """A z-scored regression target; MAE is reported in original units × ``scale`` (e.g. 1000 for meV)."""
    return Task(name, "regression", regression_loss, lambda: MAEMeter(mean, std, scale),
                {"mae": False}, ("mae",), 1, {"mean": mean, "std": std, "scale": scale, "unit": unit})


MAEMeter = M.MAEMeter


def evaluate_meters(tasks: list[Task]) -> dict[str, object]:
    return {t.name: t.make_meter() for t in tasks}


def task_losses(model, data, preds: dict, targets: dict) -> torch.Tensor:
    """[T] losses of ``model.tasks``, in that order, each by its task's loss in ``data`` (a DataBundle)."""
    return torch.stack([data.task(t).loss(preds[t], targets[t]) for t in model.tasks])
