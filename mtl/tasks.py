"""Tasks: a name, a loss, a meter factory and the direction of each metric.

``Task.metrics`` maps every reported metric to ``higher_is_better``; ``Task.primary`` names the
metrics that enter Δm in Guo et al.'s tables (one per task: mIoU, RMSE, mean angle, odsF, ...).

**Partial labels.** A batch's targets may hold, under the reserved key :data:`LABELED`, a per-sample
mask ``{task: bool [B]}`` (a task left out of it is labelled for every sample): sample i has no
label for task t where ``targets[LABELED][t][i]`` is false. :func:`task_losses` then averages each
loss over the labelled samples only (and, inside them, the task's valid pixels); a task with no
labelled sample gets a loss of 0 with a zero gradient, and :func:`present` says which tasks the
batch labels (the training loop hands it to the weighting, see :mod:`mtl.weighting.base`).
Without the key, or with an all-true mask, everything is computed exactly as before.

**Multi-input tasks.** When each task has its own input domain (Office-31, Office-Home), a batch's
inputs are a :class:`TaskInputs`, one input batch per task; ``MultiTaskModel.encode`` runs the
shared encoder on each and each head reads its own task's features (see :mod:`mtl.models.base`).
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


class TaskInputs(dict):
    """{task: x_t [B_t, ...]}: one input batch per task (multi-input data, :class:`mtl.data.MultiInputBundle`);
    the targets of such a batch are {task: y_t [B_t, ...]} as usual."""

    def to(self, device) -> "TaskInputs":
        return TaskInputs({t: x.to(device) for t, x in self.items()})


LABELED = "_labeled"       # reserved target key: {task: bool [B]}, which samples carry a label of the task


def labeled(targets: dict, task: str) -> torch.Tensor | None:
    """bool [B]: which samples of the batch are labelled for ``task``; None when all are (no mask given)."""
    masks = targets.get(LABELED) if isinstance(targets, dict) else None
    if not masks or task not in masks:
        return None
    m = torch.as_tensor(masks[task]).reshape(-1).bool()
    return None if bool(m.all()) else m


def select(x, mask: torch.Tensor):
    """The samples of ``x`` (a tensor [B, ...], or a dict / tuple of them) where ``mask`` [B] is true."""
    if isinstance(x, dict):
        return {k: select(v, mask) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(select(v, mask) for v in x)
    return x[mask.to(x.device)]


def masked_loss(task: Task, pred, target, mask: torch.Tensor | None) -> torch.Tensor:
    """``task.loss`` over the labelled samples (``mask`` [B]; None: all): their mean, inside them the
    task's own mean over valid pixels; 0 with a zero gradient (the graph kept) when none is labelled."""
    if mask is None:
        return task.loss(pred, target)
    if not bool(mask.any()):
        return sum(p.sum() for p in (pred.values() if isinstance(pred, dict) else [pred])) * 0.0
    return task.loss(select(pred, mask), select(target, mask))


def present(model, targets: dict) -> torch.Tensor | None:
    """bool [T] over ``model.tasks``: which tasks have at least one labelled sample in the batch; None
    when the batch has no mask or labels every task of every sample (the usual, full case)."""
    masks = targets.get(LABELED) if isinstance(targets, dict) else None
    if not masks:
        return None
    p = torch.tensor([bool(torch.as_tensor(masks[t]).any()) if t in masks else True for t in model.tasks])
    return None if bool(p.all()) else p


def task_losses(model, data, preds: dict, targets: dict) -> torch.Tensor:
    """[T] losses of ``model.tasks``, in that order, each by its task's loss in ``data`` (a DataBundle);
    with a :data:`LABELED` mask in ``targets`` each is averaged over its labelled samples only."""
    return torch.stack([masked_loss(data.task(t), preds[t], targets[t], labeled(targets, t)) for t in model.tasks])
