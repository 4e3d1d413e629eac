"""FORUM: a first-order multi-gradient method for multi-objective bilevel problems (Ye et al., ECAI 2024)."""
from __future__ import annotations

import numpy as np
import torch

from ..checks import check_positive
from ._registry import register
from ..jacobian import block_gramian, write_grads
from ._bilevel import DDP_NOTE, BilevelWeighting, losses_at, trainable, virtual_steps
from ._linalg import normalized, psd_root, require
from .base import StepContext


class _ForumQP:
    """min_{w ∈ simplex, μ ≥ 0} ½‖Zᵀ[w; μ]‖² − μ φ for a (T+1)×(T+1) Gram matrix (cvxpy, Clarabel)."""

    def __init__(self):
        self.cp, self._cache = require("cvxpy", "forum"), {}

    def __deepcopy__(self, memo) -> "_ForumQP":
        """The compiled problems are a cache, not state (no warm start): copies share them."""
        return self

    def __call__(self, G: np.ndarray, phi: float) -> np.ndarray:
        cp, n = self.cp, len(G)
        if n not in self._cache:
            x, A, f = cp.Variable(n), cp.Parameter((n, n)), cp.Parameter(nonneg=True)
            prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(A @ x) - f * x[n - 1]),
                              [x >= 0, cp.sum(x[: n - 1]) == 1])
            self._cache[n] = (prob, x, A, f)
        prob, x, A, f = self._cache[n]
        Gn, s = normalized(G)
        A.value, f.value = psd_root(Gn), (phi / s if s > 0 else 0.0)
        prob.solve(solver="CLARABEL")
        if x.value is None:
            raise RuntimeError(f"forum: the multi-gradient QP failed with status {prob.status!r}")
        out = np.clip(np.asarray(x.value), 0.0, None)
        out[: n - 1] /= max(out[: n - 1].sum(), 1e-300)
        return out


@register("forum", label="FORUM", paper="Ye et al. 2024, https://arxiv.org/abs/2307.05958", needs="custom", batches=2,
          stateful=True,
          ddp_exact=False, ddp_note=DDP_NOTE)
class FORUM(BilevelWeighting):
    """FORUM, Ye et al. 2024 Alg. 1 (https://arxiv.org/abs/2307.05958), LibMTL's bilevel defaults.

    Upper objectives F_t = validation losses; lower level f = Σ_t λ_t L_t^train with λ = softmax(ω).
    The value gap q = f(λ, θ) − f(λ, θ_K) (θ_K: ``inner_step`` SGD steps, first order) is a
    constraint. The step is −d, d = Σ_t w_t ∇F_t + μ∇q with (w, μ) from the dual QP
    min_{w ∈ simplex, μ ≥ 0} ½‖Σ_t w_t ∇F_t + μ∇q‖² − μ φ‖∇q‖² (φ = ``phi``; cvxpy): all model
    parameters get d's θ-part as gradient, ω gets μ∇_ω q through its own Adam (``outer_lr``).
    The QP's Gram matrix comes from :func:`mtl.jacobian.block_gramian` and d's θ-part from one
    backward of Σ_t w_t F_t + μ f, so no Jacobian is formed.
    """

    def __init__(self, phi: float = 0.1, outer_lr: float = 1e-3, inner_lr: float = 0.1, inner_step: int = 5):
        self.phi = check_positive("phi", phi, allow_zero=True)
        self._qp = _ForumQP()
        super().__init__(outer_lr, inner_lr, inner_step)

    def init_raw(self, T, like):
        return torch.zeros(T, dtype=like.dtype, device=like.device)

    def task_weights(self, raw):
        return torch.softmax(raw, 0)

    def backward(self, losses: torch.Tensor, ctx: StepContext) -> dict:
        raw = self._ensure(losses)
        names, params = trainable(ctx.model)
        lam = self.task_weights(raw)                                          # [T], differentiable in ω
        theta_K = virtual_steps(ctx, names, params, losses, lam.detach(), self.inner_lr, self.inner_step, False)
        with torch.no_grad():
            L_K = losses_at(ctx, names, theta_K, ctx.batch)                  # [T]
        (q_raw,) = torch.autograd.grad((lam * (losses.detach() - L_K)).sum(), raw)    # ∇_ω q [T]
        f = (lam.detach() * losses).sum()                                     # ∇_θ f = ∇_θ q
        F = ctx.loss_fn(ctx.next_batch("val"))                                # [T] upper objectives
        G = block_gramian([F, f[None]], params).double()                      # [T+1, T+1], no Jacobian
        G[-1, -1] += q_raw.double() @ q_raw.double()
        G = G.cpu().numpy()
        x = torch.as_tensor(self._qp(G, self.phi * G[-1, -1]), dtype=F.dtype, device=F.device)
        T = F.numel()
        write_grads(params, torch.autograd.grad((x[:T] * F).sum() + x[T] * f, params, allow_unused=True))
        self._opt.zero_grad()
        raw.grad = (x[T] * q_raw).detach()
        self._opt.step()
        return {"weights": self.task_weights(raw).detach()}
