"""Metrics: pure functions over predictions, streaming meters over a split, and Δm / Δp / rank.

Every meter has ``update(pred, target)`` and ``compute() -> dict[str, float]``; accumulation is
exact over the split (one confusion matrix for mIoU, every angle kept for the normal median).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------- segmentation


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[C, C] counts (row = ground truth, column = prediction); target -1 is ignored."""
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    keep = (target >= 0) & (target < num_classes)
    idx = target[keep] * num_classes + pred[keep]
    return torch.bincount(idx, minlength=num_classes**2).reshape(num_classes, num_classes)


def miou_from_confusion(cm: torch.Tensor) -> float:
    """Mean IoU over the classes present in prediction or ground truth (absent ones are excluded)."""
    cm = cm.double()
    inter = cm.diag()
    union = cm.sum(0) + cm.sum(1) - inter
    present = union > 0
    return float((inter[present] / union[present]).mean()) if present.any() else float("nan")


def pixel_accuracy_from_confusion(cm: torch.Tensor) -> float:
    return float(cm.diag().sum() / cm.sum().clamp(min=1))


class SegmentationMeter:
    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.cm = torch.zeros(num_classes, num_classes, dtype=torch.long)

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        # logits [B, C, H, W], target [B, H, W] with -1 = ignore
        self.cm += confusion_matrix(logits.argmax(1).cpu(), target.cpu(), self.num_classes)

    def compute(self) -> dict[str, float]:
        return {"miou": miou_from_confusion(self.cm), "pix_acc": pixel_accuracy_from_confusion(self.cm)}


# ----------------------------------------------------------------------------- depth


class DepthMeter:
    """Absolute error, relative error and RMSE over valid pixels (target > 0) of the whole split."""

    def __init__(self):
        self.abs = self.rel = self.sq = 0.0
        self.n = 0

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        # pred, target [B, 1, H, W]; target 0 = invalid
        valid = target > 0
        p, g = pred[valid].double().cpu(), target[valid].double().cpu()
        self.abs += float((p - g).abs().sum())
        self.rel += float(((p - g).abs() / g).sum())
        self.sq += float(((p - g) ** 2).sum())
        self.n += int(valid.sum())

    def compute(self) -> dict[str, float]:
        n = max(self.n, 1)
        return {"abs_err": self.abs / n, "rel_err": self.rel / n, "rmse": math.sqrt(self.sq / n)}


# ----------------------------------------------------------------------------- normals


def normal_angles(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Angles in degrees between L2-normalised predictions and targets on valid pixels (target ≠ 0)."""
    # pred, target [B, 3, H, W]
    valid = target.abs().sum(1) > 0                       # [B, H, W]
    p = F.normalize(pred, dim=1).permute(0, 2, 3, 1)[valid]   # [N, 3]
    g = F.normalize(target, dim=1).permute(0, 2, 3, 1)[valid]
    cos = (p * g).sum(-1).clamp(-1, 1)
    return torch.rad2deg(torch.acos(cos.double()))


class NormalMeter:
    """Mean and median angle error and the fraction within 11.25°, 22.5°, 30° (every angle kept)."""

    def __init__(self):
        self.angles: list[torch.Tensor] = []

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self.angles.append(normal_angles(pred.detach(), target).cpu())

    def compute(self) -> dict[str, float]:
        a = torch.cat(self.angles) if self.angles else torch.zeros(0, dtype=torch.float64)
        if a.numel() == 0:
            return {k: float("nan") for k in ("mean", "median", "within_11", "within_22", "within_30")}
        return {
            "mean": float(a.mean()),
            "median": float(a.median()),
            "within_11": float((a < 11.25).double().mean()),
            "within_22": float((a < 22.5).double().mean()),
            "within_30": float((a < 30).double().mean()),
        }


# ----------------------------------------------------------------------------- edges

EDGE_THRESHOLDS = tuple(np.round(np.linspace(0.05, 0.95, 19), 2))


class EdgeMeter:
    """Dataset-level F-measure at the best of fixed thresholds (a simplified odsF).

    A predicted edge pixel counts as correct if a ground-truth edge lies within ``tolerance`` pixels
    (max-pool dilation) and vice versa for recall; the threshold is shared by the whole split
    (optimal dataset scale). The BSDS benchmark's one-to-one matching is not done.
    """

    def __init__(self, thresholds: Sequence[float] = EDGE_THRESHOLDS, tolerance: int = 1):
        self.thresholds = torch.tensor(thresholds, dtype=torch.float32)
        self.tolerance = tolerance
        self.tp_p = torch.zeros(len(thresholds))   # predicted edges near a true edge
        self.n_p = torch.zeros(len(thresholds))
        self.tp_r = torch.zeros(len(thresholds))   # true edges near a predicted edge
        self.n_g = 0.0

    def _dilate(self, x: torch.Tensor) -> torch.Tensor:
        k = 2 * self.tolerance + 1
        return F.max_pool2d(x, k, stride=1, padding=self.tolerance) if self.tolerance else x

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        # logits, target [B, 1, H, W]; target in {0, 1}, -1 = ignore
        prob = torch.sigmoid(logits.detach().float()).cpu()
        gt = (target.cpu() > 0.5).float()
        valid = (target.cpu() >= 0).float()
        gt_near = self._dilate(gt)
        self.n_g += float(gt.sum())
        for i, th in enumerate(self.thresholds):
            pe = (prob >= th).float() * valid
            self.n_p[i] += pe.sum()
            self.tp_p[i] += (pe * gt_near).sum()
            self.tp_r[i] += (gt * self._dilate(pe)).sum()

    def compute(self) -> dict[str, float]:
        prec = self.tp_p / self.n_p.clamp(min=1)
        rec = self.tp_r / max(self.n_g, 1.0)
        f = 2 * prec * rec / (prec + rec).clamp(min=1e-12)
        i = int(f.argmax())
        return {"odsf": float(f[i]), "threshold": float(self.thresholds[i])}


# ----------------------------------------------------------------------------- classification / regression


class AccuracyMeter:
    """Top-1 accuracy of class logits [B, C] (or of binary logits [B] at 0)."""

    def __init__(self):
        self.correct = 0
        self.n = 0

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        if logits.dim() > target.dim() and logits.shape[-1] > 1:
            pred = logits.argmax(-1)                                   # class logits [B, C]
        else:
            pred = (logits.reshape(target.shape) > 0).long()            # binary logits [B] or [B, 1]
        self.correct += int((pred.cpu() == target.cpu().long()).sum())
        self.n += target.numel()

    def compute(self) -> dict[str, float]:
        return {"acc": self.correct / max(self.n, 1)}


class MAEMeter:
    """Mean absolute error in original units: predictions and targets are de-standardised first."""

    def __init__(self, mean: float = 0.0, std: float = 1.0, scale: float = 1.0):
        self.mean, self.std, self.scale = mean, std, scale
        self.total = 0.0
        self.n = 0

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        err = (pred.detach().reshape(-1) - target.reshape(-1)).abs().double() * self.std * self.scale
        self.total += float(err.sum())
        self.n += err.numel()

    def compute(self) -> dict[str, float]:
        return {"mae": self.total / max(self.n, 1)}


# ----------------------------------------------------------------------------- Δm, Δp, rank


def _check_keys(result: Mapping[str, float], base: Mapping[str, float], higher: Mapping[str, bool]) -> None:
    missing = [k for k in higher if k not in result or k not in base]
    if missing:
        raise KeyError(f"metrics {missing} missing from the result or the baseline; have {sorted(result)}")


def relative_improvements(result: Mapping[str, float], base: Mapping[str, float],
                          higher_is_better: Mapping[str, bool]) -> dict[str, float]:
    """Per metric M_i = (-1)^{l_i} (M_m,i - M_b,i) / M_b,i × 100 (Guo et al. Eq. 5, l_i = 1 if lower is better).

    A baseline of exactly 0 (e.g. an untrained edge detector) makes the ratio undefined: NaN.
    """
    _check_keys(result, base, higher_is_better)
    out = {}
    for k, hib in higher_is_better.items():
        sign = 1.0 if hib else -1.0
        out[k] = sign * (result[k] - base[k]) / base[k] * 100.0 if base[k] != 0 else float("nan")
    return out


def delta_m(result: Mapping[str, float], base: Mapping[str, float],
            higher_is_better: Mapping[str, bool], convention: str = "improvement") -> float:
    """Δm% over all metrics (Guo et al. Eq. 5).

    ``convention="improvement"`` (Guo et al., LibMTL): higher is better, 0 = single-task baseline.
    ``convention="drop"`` (EXTRA, ConsMTL, Nash-MTL, Maninis et al.): the negative, lower is better.
    Metrics whose baseline is 0 are undefined and left out of the mean (NaN if none is left).

    >>> round(delta_m({"acc": 0.9, "err": 1.1}, {"acc": 1.0, "err": 1.0}, {"acc": True, "err": False}), 9)
    -10.0
    """
    if convention not in ("improvement", "drop"):
        raise ValueError(f"convention must be 'improvement' or 'drop', got {convention!r}")
    rel = relative_improvements(result, base, higher_is_better)
    vals = np.array(list(rel.values()), dtype=float)
    value = float(np.mean(vals[~np.isnan(vals)])) if (~np.isnan(vals)).any() else float("nan")
    return value if convention == "improvement" else -value


def delta_p(result: Mapping[str, Mapping[str, float]], base: Mapping[str, Mapping[str, float]],
            higher_is_better: Mapping[str, Mapping[str, bool]]) -> float:
    """LibMTL's task-level Δp% (``count_improvement``): the mean over tasks of each task's mean over its metrics."""
    per_task = [np.mean(list(relative_improvements(result[t], base[t], higher_is_better[t]).values()))
                for t in higher_is_better]
    return float(np.mean(per_task))


def mean_rank(scores: Mapping[str, Mapping[str, float]], higher_is_better: Mapping[str, bool]) -> dict[str, float]:
    """Mean over metrics of each method's rank (1 = best); ties share the mean rank."""
    import pandas as pd

    df = pd.DataFrame(scores).T  # methods × metrics
    ranks = [df[k].rank(ascending=not hib, method="average") for k, hib in higher_is_better.items()]
    return pd.concat(ranks, axis=1).mean(axis=1).to_dict()


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("mean_se needs at least one value")
    se = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0
    return float(v.mean()), se


def paired_difference(a: Sequence[float], b: Sequence[float], z: float = 2.0) -> tuple[str, float, float]:
    """Sign of mean(a - b) over paired seeds: ``"greater"``, ``"less"`` or ``"undecided"``, with mean and SE.

    With one seed the SE is unknown and the answer is ``"undecided"``.
    """
    d = np.asarray(a, float) - np.asarray(b, float)
    if d.shape != np.asarray(b, float).shape:
        raise ValueError(f"paired values need equal lengths, got {len(a)} and {len(b)}")
    m, se = mean_se(d)
    if d.size < 2:
        return "undecided", m, se
    if m - z * se > 0:
        return "greater", m, se
    if m + z * se < 0:
        return "less", m, se
    return "undecided", m, se
