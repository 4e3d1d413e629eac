"""Gradient diagnostics recorded during training (Guo et al. §V-F, Figs. 7–13; ConsMTL's cosine matrices).

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

from typing import Mapping

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_count
from .jacobian import flatten, jacobian, representation_grads
from .tasks import task_losses
from .weighting.url import adapter, distill_distance


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


def representation_cosines(D: list[torch.Tensor]) -> np.ndarray:
    """C [T, T] with C_ij = ⟨δ_i, δ_j⟩/(‖δ_i‖‖δ_j‖), δ flattened over batch and features (METHODS §3.4)."""
    M = torch.stack([d.reshape(-1) for d in D]).double()                     # [T, n]
    G = M @ M.T
    n = G.diagonal().clamp_min(0).sqrt().clamp_min(1e-300)
    return (G / (n[:, None] * n[None, :])).cpu().numpy()


class RepresentationProbe:
    """Every ``every`` steps, the cosine matrix of the tasks' representation gradients δ_k = ∂L_k/∂z_k
    at the pre-step parameters (Qin et al. 2025 Fig. 5); one extra forward, RNG and BN buffers restored."""

    def __init__(self, data, every: int = 10):
        self.data, self.every = data, check_count("every", every)

    def __repr__(self) -> str:
        return f"RepresentationProbe(every={self.every})"

    def __call__(self, ctx, logs: dict) -> dict | None:
        if ctx.step % self.every:
            return None
        model = ctx.model
        buffers = {k: b.clone() for k, b in model.named_buffers()}
        devices = sorted({p.device.index or 0 for p in model.parameters() if p.is_cuda})
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            x, y = ctx.batch
            z = model.encode(x)
            losses = task_losses(model, self.data, model.decode(z), y)                 # [T]
            D = [d.detach() for d in representation_grads(losses, z, getattr(model, "rep_layout", "shared"), False)]
        with torch.no_grad():
            for k, b in model.named_buffers():
                b.copy_(buffers[k])
        return {"probe": "rep_cos", "step": ctx.step, "epoch": ctx.epoch, "cos": representation_cosines(D).tolist()}


# ----------------------------------------------------------------------------- feature distance (URL adapter protocol)
@torch.no_grad()
def features(model: nn.Module, data, split: str, batch_size: int = 32, device="cpu") -> torch.Tensor:
    """``model.encode(x)`` over a whole split, eval mode, on the CPU: [N, C, H, W]."""
    was = model.training
    model.eval().to(device)
    out = [model.encode(x.to(device)).cpu() for x, _ in data.loader(split, batch_size)]
    model.train(was)
    return torch.cat(out)


def pixels(f: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] (or [N, C]) -> [N·H·W, C]: one row per pixel, the vectors a 1×1 adapter maps."""
    return f.movedim(1, -1).reshape(-1, f.shape[1]) if f.dim() > 2 else f


def fit_adapter(zs: torch.Tensor, ft: torch.Tensor, steps: int = 200, lr: float = 1e-2, batch: int = 4096,
                seed: int = 0) -> nn.Conv2d:
    """A URL adapter mapping frozen features ``zs`` [N, C, H, W] onto ``ft`` [N, C', H, W] by ℓ^f.

    A 1×1 convolution is a linear map per pixel, so it is fitted on pixel vectors: started at the
    least-squares map onto the normalised teacher vectors, then refined by Adam on ℓ^f over
    random batches of ``batch`` pixels (an unbiased estimate of the full objective).
    """
    if zs.shape[2:] != ft.shape[2:]:
        zs = F.interpolate(zs, ft.shape[2:], mode="bilinear", align_corners=False)
    X, Y = pixels(zs).double(), F.normalize(pixels(ft), dim=1).double()        # [P, C], [P, C']
    Wls = torch.linalg.lstsq(X, Y).solution.T.float()                          # [C', C]
    Wt = nn.Parameter(Wls.clone())
    X, Y = X.float(), Y.float()
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam([Wt], lr=lr)
    for _ in range(steps):
        idx = torch.randint(len(X), (min(batch, len(X)),), generator=g)
        loss = (F.normalize(X[idx] @ Wt.T, dim=1) - Y[idx]).pow(2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    a = adapter(zs.shape[1], ft.shape[1])
    with torch.no_grad():
        a.weight.copy_(Wt.detach()[:, :, None, None])                         # [C', C, 1, 1]
    return a.eval()


def feature_distance(model: nn.Module, teachers: Mapping[str, nn.Module], data, fit_split: str = "train",
                     eval_split: str = "test", steps: int = 200, lr: float = 1e-2, seed: int = 0) -> dict[str, float]:
    """Guo et al. Fig. 6: per task, ℓ^f between a multi-task model's shared feature and its single-task network's.

    Protocol (the URL adapter's, post hoc): both networks frozen; per task a fresh 1×1 adapter is
    fitted on ``fit_split`` features, then the distance is measured on ``eval_split``. Fitting
    the adapter for every method alike (URL included) makes the numbers comparable; the paper
    instead updates the adapter while the multi-task model trains.
    """
    zs_fit, zs_eval = features(model, data, fit_split), features(model, data, eval_split)
    out = {}
    for t, teacher in teachers.items():
        ft_fit, ft_eval = features(teacher, data, fit_split), features(teacher, data, eval_split)
        a = fit_adapter(zs_fit, ft_fit, steps, lr, seed=seed)
        with torch.no_grad():
            out[t] = float(distill_distance(a(zs_eval), ft_eval))
    return out
