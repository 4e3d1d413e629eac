"""EXTRA's stage-2 objective (Zhou et al. 2025 §5, Eq. 2, 3, 6, 7) as a step rule for :func:`mtl.train.fit`.

One step draws t₁, t₂ ~ U[0, 1), runs the curve at both on the same batch and minimises
``L_T + R_align + α·R_o`` over the interior control points and the rational weights (the end
points are frozen by :func:`~mtl.curves.curve_model`). The paper's displayed equations were not
recoverable; the forms below follow METHODS.md §1.4 (prose + the official code), with the code's
dataset-specific quirks as options.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..tasks import task_losses
from ..train import StepInfo, check_finite

#: Datasets whose protocol uses 3 control points with 1 trainable (Zhou et al. 2025 App. A.2).
THREE_POINT_DATASETS = ("multimnist", "celeba", "attributes", "attributes40")


def default_control_points(dataset: str, n_tasks: int) -> int:
    """Control points per protocol (Zhou et al. 2025 App. A.2): 3 for MultiMNIST/CelebA-like sets,
    else 4 for 2 tasks, 5 for 3."""
    if dataset.lower() in THREE_POINT_DATASETS or n_tasks > 3:
        return 3
    if n_tasks < 2:
        raise ValueError(f"EXTRA needs at least 2 tasks, got {n_tasks}")
    return {2: 4, 3: 5}[n_tasks]


def default_groups(tasks: Sequence[str]) -> list[list[str]]:
    """E1 = first task (t = 0), E2 = last task (t = 1), E3 = the rest (aligned at t = ½).

    For NYUv2's [segmentation, depth, normal] this is the code's seg / normal / depth split. With
    more than 3 tasks clusters are needed: see :func:`mtl.grouping.cluster_tasks`.
    """
    tasks = list(tasks)
    if len(tasks) < 2:
        raise ValueError(f"EXTRA needs at least 2 tasks, got {tasks}")
    if len(tasks) > 3:
        raise ValueError(f"{len(tasks)} tasks need explicit groups (E1, E2, E3); use mtl.grouping.cluster_tasks")
    groups = [[tasks[0]], [tasks[-1]]]
    return groups + ([tasks[1:-1]] if len(tasks) == 3 else [])


def order_aware_loss(l1: torch.Tensor, l2: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """R_o (Zhou et al. 2025 Eq. 2, code form): ½[exp((L₁(t₁)−L₁(t₂))(t₂−t₁)) + exp((L₂(t₁)−L₂(t₂))(t₁−t₂))].

    ``l1``, ``l2`` [2] are the (cluster-mean) losses at t = ``t`` [2]. Below 1 when L₁ rises and
    L₂ falls with t, above 1 when the order is violated.
    """
    dt = t[1] - t[0]
    return 0.5 * (torch.exp((l1[0] - l1[1]) * dt) + torch.exp((l2[0] - l2[1]) * -dt))


def alignment_loss(lr: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """R_align (Zhou et al. 2025 Eq. 6, code form): [exp(−|t₁−½|) + exp(−|t₂−½|)] · ½[L_r(t₁) + L_r(t₂)].

    ``lr`` [2]: mean loss of the remaining cluster E3 at ``t`` [2]; it weighs E3's loss most near
    the midpoint so that E3 is best at t = ½. (A rank form is a possible reading of the paper
    that the code does not use; it is not implemented.)
    """
    return torch.exp(-(t - 0.5).abs()).sum() * lr.mean()


def _group_index(groups, tasks: list[str]) -> list[list[int]]:
    if len(groups) not in (2, 3):
        raise ValueError(f"EXTRA takes 2 or 3 task groups (E1, E2[, E3]), got {len(groups)}")
    idx = []
    for g in groups:
        if len(g) == 0:
            raise ValueError(f"task groups must be non-empty, got {groups}")
        try:
            idx.append([tasks.index(x) if isinstance(x, str) else int(x) for x in g])
        except ValueError:
            raise ValueError(f"groups {groups} name tasks that the model lacks; tasks: {tasks}") from None
    flat = sorted(i for g in idx for i in g)
    if flat != list(range(len(tasks))):
        raise ValueError(f"groups must partition the tasks {tasks} (each exactly once), got {groups}")
    return idx


class ExtraStep:
    """EXTRA stage 2 (Zhou et al. 2025 Eq. 7): mean loss at t₁, t₂ ~ U[0, 1) + R_align + α·R_o, one optimiser step.

    :param groups: E1 (best at t = 0), E2 (best at t = 1) and optionally E3 (best at t = ½), as task
        names or indices; default :func:`default_groups`.
    :param alpha: weight of R_o (paper default 0.5, App. B.6).
    :param ro_weight: "alpha" (paper) or "t" — the CityScapes code's a(t₁,t₂) = ½Σ_k exp(−|t_k−½|) instead of α.
    :param task_weights: per-task multipliers inside L_T (the code hard-codes 1 and 10; paper: none).
    :param reduce: "mean" — L_T = mean over t_k of ½(L_E1 + L_E2) (paper: "mean task losses");
        "sum" — the code's L_E1 + L_E2.
    :param skip_above: skip the update when the total exceeds it (NYUv2 code: 20; paper: None).

    The weighting passed to ``fit`` is not used: as in the released code, stage 2 minimises the
    curve loss directly (base weightings act in stage 1).
    """

    def __init__(self, groups=None, alpha: float = 0.5, ro_weight: str = "alpha",
                 task_weights: Sequence[float] | None = None, reduce: str = "mean", skip_above: float | None = None):
        if not alpha >= 0:
            raise ValueError(f"alpha must be non-negative, got {alpha}")
        if ro_weight not in ("alpha", "t"):
            raise ValueError(f"ro_weight must be 'alpha' (paper) or 't' (CityScapes code), got {ro_weight!r}")
        if reduce not in ("mean", "sum"):
            raise ValueError(f"reduce must be 'mean' (paper) or 'sum' (code), got {reduce!r}")
        self.groups, self.alpha, self.ro_weight, self.reduce = groups, float(alpha), ro_weight, reduce
        self.task_weights = None if task_weights is None else tuple(float(w) for w in task_weights)
        self.skip_above = skip_above

    def objective(self, L: torch.Tensor, t: torch.Tensor, tasks: list[str]) -> dict[str, torch.Tensor]:
        """Total loss and its parts from the task losses ``L`` [2, T] at ``t`` [2]."""
        idx = _group_index(self.groups or default_groups(tasks), tasks)
        Lw = L
        if self.task_weights is not None:
            if len(self.task_weights) != L.shape[1]:
                raise ValueError(f"task_weights has {len(self.task_weights)} entries for {L.shape[1]} tasks")
            Lw = L * torch.tensor(self.task_weights, dtype=L.dtype, device=L.device)
        g = [L[:, i].mean(1) for i in idx]                                   # cluster means, each [2]
        gw = [Lw[:, i].mean(1) for i in idx[:2]]
        base = (gw[0] + gw[1]).mean() * (0.5 if self.reduce == "mean" else 1.0)
        r_o = order_aware_loss(g[0], g[1], t)
        coef = self.alpha if self.ro_weight == "alpha" else 0.5 * torch.exp(-(t - 0.5).abs()).sum()
        r_align = alignment_loss(g[2], t) if len(idx) == 3 else torch.zeros((), dtype=L.dtype, device=L.device)
        return {"total": base + r_align + coef * r_o, "base": base, "r_o": r_o, "r_align": r_align}

    def step(self, model, data, batch, weighting, optimizer, info: StepInfo) -> dict:
        x, y = batch
        t = torch.rand(2, dtype=torch.float64)                              # t₁, t₂ ~ U[0, 1)
        rows = []
        for tk in t.tolist():
            with model.at(tk):
                rows.append(task_losses(model, data, model(x), y))           # [T]
        L = torch.stack(rows)                                               # [2, T]
        for row in L:
            check_finite(row, model.tasks, info.epoch, info.step)
        parts = self.objective(L, t.to(L), model.tasks)
        optimizer.zero_grad(set_to_none=True)
        skipped = self.skip_above is not None and float(parts["total"].detach()) > self.skip_above
        if not skipped:
            parts["total"].backward()
            optimizer.step()
        return {"losses": L.detach().mean(0), "t": t, "skipped": skipped,
                **{k: v.detach() for k, v in parts.items()}}

    def __repr__(self) -> str:
        return (f"ExtraStep(groups={self.groups}, alpha={self.alpha}, ro_weight={self.ro_weight!r}, "
                f"task_weights={self.task_weights}, reduce={self.reduce!r}, skip_above={self.skip_above})")
