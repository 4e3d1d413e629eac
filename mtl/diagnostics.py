"""Gradient diagnostics recorded during training (seed 004 §V-F, Figs. 7–13; seed 003's cosine matrices).

``GradientProbe(every=k)`` is passed to :func:`mtl.train.fit` as ``probes=[...]``. Every k-th step,
after the weighting's backward and before the optimizer step, it records per-task gradient norms
(last shared layer and all shared parameters), the cosine of each task gradient with the
aggregated update (the shared ``.grad`` the method wrote), the pairwise cosine and dot-product
matrices and the effective task weights. Without probes the loop does no extra work.

The per-task gradients are recomputed by one extra forward on the step's batch (the step's own
graph is already consumed); the random state and batch-norm buffers are restored, so a run with
probes follows the same trajectory as one without.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .checks import check_count
from .jacobian import flatten, jacobian


def gradient_stats(J: torch.Tensor, update: torch.Tensor, tasks: list[str], last: slice | None = None,
                   weights: torch.Tensor | None = None) -> dict:
    """Diagnostics of task gradients J [T, d] against the applied ``update`` [d] (pure function).

    ``last`` selects the columns of the last shared layer; ``weights`` are the method's logged
    weights (the effective weights are also fitted: argmin_w ‖Jᵀw − update‖, exact for weightings).
    """
    J, u = J.double(), update.double()
    G = J @ J.T                                                              # [T, T]
    n = G.diagonal().clamp_min(0).sqrt()                                     # [T]
    safe = n.clamp_min(1e-300)
    cos = G / (safe[:, None] * safe[None, :])
    cos_u = (J @ u) / (safe * u.norm().clamp_min(1e-300))
    w_fit = torch.linalg.lstsq(G, (J @ u)[:, None], driver="gelsd").solution[:, 0]
    name = lambda v: dict(zip(tasks, [float(x) for x in v]))  # noqa: E731
    out = {"grad_norm": name(n), "cos_update": name(cos_u), "weights_fit": name(w_fit),
           "update_norm": float(u.norm()), "cos": cos.tolist(), "dot": G.tolist()}
    if last is not None:
        out["grad_norm_last"] = name(J[:, last].norm(dim=1))
    if weights is not None:
        out["weights"] = name(weights)
    return out


def _last_slice(model, shared: list) -> slice | None:
    """Columns of J that belong to ``model.last_shared_parameters()`` (None if it has none)."""
    try:
        last = {id(p) for p in model.last_shared_parameters()}
    except (AttributeError, ValueError):
        return None
    offsets = np.cumsum([0] + [p.numel() for p in shared])
    idx = [i for i, p in enumerate(shared) if id(p) in last]
    if not idx or idx != list(range(idx[0], idx[-1] + 1)):
        return None
    return slice(int(offsets[idx[0]]), int(offsets[idx[-1] + 1]))


class GradientProbe:
    """Records :func:`gradient_stats` every ``every`` optimisation steps (``every`` ≥ 1)."""

    def __init__(self, every: int = 50, chunk_size: int | None = None):
        self.every, self.chunk_size = check_count("every", every), chunk_size

    def __repr__(self) -> str:
        return f"GradientProbe(every={self.every}, chunk_size={self.chunk_size})"

    def _task_jacobian(self, ctx, shared: list) -> torch.Tensor:
        model = ctx.model
        buffers = {k: b.clone() for k, b in model.named_buffers()}
        devices = sorted({p.device.index or 0 for p in shared if p.is_cuda})
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            if ctx.rep_loss_fn is not None:                                  # [T] at the pre-step parameters
                losses, rep = ctx.rep_loss_fn(ctx.batch)                     # (separate heads crossed once)
            else:
                losses, rep = ctx.loss_fn(ctx.batch), None
            J = jacobian(losses, shared, chunk_size=self.chunk_size, rep=rep)   # [T, d]
        with torch.no_grad():
            for k, b in model.named_buffers():
                b.copy_(buffers[k])
        return J.detach()

    def __call__(self, ctx, logs: dict) -> dict | None:
        if ctx.step % self.every:
            return None
        shared = list(ctx.model.shared_parameters())
        update = flatten([p.grad if p.grad is not None else torch.zeros_like(p) for p in shared]).detach()
        J = self._task_jacobian(ctx, shared)
        stats = gradient_stats(J, update, list(ctx.model.tasks), _last_slice(ctx.model, shared), logs.get("weights"))
        return {"probe": "gradients", "step": ctx.step, "epoch": ctx.epoch, **stats}


def probe_frame(history: list[dict], key: str = "grad_norm") -> pd.DataFrame:
    """Long table (step, epoch, task, value) of one per-task diagnostic from a run's epoch records."""
    rows = [{"step": r["step"], "epoch": r["epoch"], "task": t, key: v}
            for rec in history for r in rec.get("probes", []) if key in r for t, v in r[key].items()]
    return pd.DataFrame(rows, columns=["step", "epoch", "task", key])


def mean_matrix(history: list[dict], key: str = "cos") -> np.ndarray:
    """The mean over all probe records of a pairwise matrix (``"cos"`` or ``"dot"``) [T, T]."""
    mats = [np.asarray(r[key]) for rec in history for r in rec.get("probes", []) if key in r]
    if not mats:
        raise ValueError(f"no probe records with {key!r}; train with probes=[GradientProbe(...)]")
    return np.mean(mats, axis=0)
