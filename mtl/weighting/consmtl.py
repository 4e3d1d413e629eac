"""ConsMTL: bi-level optimisation of shared and task-specific parameters (Qin, Wang & Yan, CVPR 2025).

Paper: "Towards Consistent Multi-Task Learning: Unlocking the Potential of Task-Specific
Parameters", CVPR 2025, pp. 10067-10076 (Qin et al.). The update rules follow the authors' code
(``MTLlib/methods/weight_methods.py``, class ConsMTL; see ``METHODS.md`` §3.2):

* **upper level** (every parameter outside the task heads, as the code's "not 'pred'" rule, so
  MTAN's attention counts as shared): FairGrad weights w (α = 2) from the Gram matrix of the
  per-task Jacobian J, shared gradient K·wᵀJ clipped to norm ``max_norm`` (1.0);
* **lower level** (each head θ_k): δ_k = ∂L_k/∂z_k with its graph, δ̄ = stopgrad(Σ_j w_j δ_j),
  g2_k = ∇_θk(−λ⟨δ_k, δ̄⟩) clipped to ``ratio_k``·‖g1_k‖, where g1_k = ∇_θk L_k; the head's
  gradient is g1_k + clip(g2_k).

``ulo`` ("upper level only", Qin et al. 2025 Table 6) is the same step without the lower level. Both
are :class:`~mtl.weighting.base.Weighting` components registered in :mod:`mtl.weighting`, used
by the ordinary loop. :class:`mtl.diagnostics.RepresentationProbe` records the cosine matrix of
the δ_k (Qin et al. 2025 Fig. 5).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..checks import check_positive
from ..jacobian import jacobian, representation_grads, write_grads
from ._registry import create, register
from ._linalg import gram
from .base import StepContext, Weighting

UPPER = ("non_head", "shared")


# ----------------------------------------------------------------------------- pure pieces
def lower_level_grads(losses: torch.Tensor, z: torch.Tensor, layout: str, heads: list[list[torch.Tensor]],
                      w: torch.Tensor, lam: float) -> tuple[list, list]:
    """(g1, g2) per task: g1_k = ∇_θk L_k and g2_k = ∇_θk(−λ⟨δ_k, stopgrad(Σ_j w_j δ_j)⟩), unclipped.

    g2 is the mixed second-order term (how head k reshapes ∂L_k/∂z); with ``lam == 0`` it is zero.
    """
    flat = [p for h in heads for p in h]
    g1 = torch.autograd.grad(losses.sum(), flat, retain_graph=True, allow_unused=True)
    if lam == 0:
        g2 = [torch.zeros_like(p) for p in flat]
    else:
        D = representation_grads(losses, z, layout)                           # T × [B, ...]
        bar = sum(wk * d for wk, d in zip(w.to(D[0].dtype), D)).detach()      # [B, ...]
        extra = -lam * sum((d * bar).sum() for d in D)                        # Σ_k −λ⟨δ_k, δ̄⟩
        g2 = torch.autograd.grad(extra, flat, retain_graph=True, allow_unused=True)
    sizes = np.cumsum([0] + [len(h) for h in heads])
    fill = lambda gs: [g if g is not None else torch.zeros_like(p) for g, p in zip(gs, flat)]  # noqa: E731
    g1, g2 = fill(g1), fill(g2)
    return ([g1[a:b] for a, b in zip(sizes[:-1], sizes[1:])], [g2[a:b] for a, b in zip(sizes[:-1], sizes[1:])])


def clip_to_ratio(g2: list[torch.Tensor], g1: list[torch.Tensor], ratio: float) -> tuple[list, float]:
    """g2 scaled (global norm over the head) so that ‖g2‖ ≤ ratio·‖g1‖; returns it and the scale used."""
    n2 = torch.sqrt(sum((g.double() ** 2).sum() for g in g2)) if g2 else torch.tensor(0.0)
    n1 = torch.sqrt(sum((g.double() ** 2).sum() for g in g1)) if g1 else torch.tensor(0.0)
    bound = ratio * float(n1)
    scale = 1.0 if float(n2) <= bound else bound / float(n2)
    return [g * scale for g in g2], scale


def upper_direction(J: torch.Tensor, w: torch.Tensor, max_norm: float | None) -> torch.Tensor:
    """K·wᵀJ [d] clipped to global norm ``max_norm`` (the FairGrad/Nash-MTL code convention)."""
    d = J.shape[0] * (w.to(J.dtype) @ J)                                      # [d]
    n = float(d.norm())
    return d * (max_norm / n) if max_norm and n > max_norm else d


# ----------------------------------------------------------------------------- the weightings
class _BiLevel(Weighting):
    """Shared machinery of ConsMTL and ULO (``lower`` switches the lower level on)."""

    lower: bool = True
    needs = "rep"

    def __init__(self, lam: float = 1.0, alpha: float = 2.0, clip_ratio: float | Sequence[float] = 0.1,
                 max_norm: float | None = 1.0, upper: str = "non_head", chunk_size: int | None = None):
        if upper not in UPPER:
            raise ValueError(f"upper must be one of {UPPER}, got {upper!r}")
        ratios = list(clip_ratio) if isinstance(clip_ratio, (list, tuple)) else [clip_ratio]
        for r in ratios:
            check_positive("clip_ratio", r, allow_zero=True)
        self.lam = float(check_positive("lam", lam, allow_zero=True))
        self.alpha, self.clip_ratio = alpha, clip_ratio
        self.max_norm = None if max_norm is None else check_positive("max_norm", max_norm, allow_zero=True)
        self.upper, self.chunk_size = upper, chunk_size
        self._solver = create("fairgrad", alpha=alpha, max_norm=None)          # unclipped FairGrad weights

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"

    def ratios(self, T: int) -> list[float]:
        r = self.clip_ratio
        if isinstance(r, (list, tuple)):
            if len(r) != T:
                raise ValueError(f"clip_ratio has {len(r)} entries for {T} tasks; give one per task or one number")
            return [float(x) for x in r]
        return [float(r)] * T

    def split(self, model, tasks=None) -> tuple[list, list[list], list]:
        """(upper parameters, head parameters per task of ``tasks`` (default ``model.tasks``), others);
        heads are ``model.heads[t]``."""
        tasks = model.tasks if tasks is None else tasks
        heads = [[p for p in model.heads[t].parameters() if p.requires_grad] for t in tasks]
        in_heads = {id(p) for h in heads for p in h}
        upper_ids = {id(p) for p in (model.parameters() if self.upper == "non_head" else model.shared_parameters())}
        upper = [p for p in model.parameters() if p.requires_grad and id(p) in upper_ids and id(p) not in in_heads]
        taken = in_heads | {id(p) for p in upper}
        return upper, heads, [p for p in model.parameters() if p.requires_grad and id(p) not in taken]

    def task_weights(self, J: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """FairGrad's w [T] (unclipped) from G = JJᵀ."""
        w = self._solver.gram_weights(gram(J), losses.detach())
        return torch.as_tensor(w, dtype=J.dtype, device=J.device)

    def _aggregate(self, J: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        return upper_direction(J, self.task_weights(J, losses), self.max_norm)

    def backward(self, losses: torch.Tensor, ctx: StepContext) -> dict:
        model = ctx.model
        upper, heads, others = self.split(model, ctx.task_names())
        J = jacobian(losses, upper, chunk_size=self.chunk_size, retain_graph=True)      # [T, d]
        with torch.no_grad():
            w = self.task_weights(J, losses)                                             # [T]
            write_grads(upper, upper_direction(J, w, self.max_norm))
        if others:
            write_grads(others, torch.autograd.grad(losses.sum(), others, retain_graph=True, allow_unused=True))
        if self.lower and ctx.rep is None:
            raise ValueError(f"{type(self).__name__} needs ctx.rep (the loop keeps it when needs == 'rep')")
        lam = self.lam if self.lower else 0.0
        g1, g2 = lower_level_grads(losses, ctx.rep, getattr(model, "rep_layout", "shared"), heads, w, lam)
        scales = []
        for k, ratio in enumerate(self.ratios(len(heads))):
            c2, s = clip_to_ratio(g2[k], g1[k], ratio) if lam else (g2[k], 1.0)
            write_grads(heads[k], [a + b for a, b in zip(g1[k], c2)])
            scales.append(s)
        return {"weights": w.detach(), "clip_scale": torch.tensor(scales)}


@register("consmtl", label="ConsMTL", needs="custom", ddp_exact=False,
          ddp_note="its own backward takes J and the heads' representation gradients of this rank's shard",
          paper="Qin et al., Towards Consistent Multi-Task Learning, CVPR 2025")
class ConsMTL(_BiLevel):
    """ConsMTL (Qin et al., CVPR 2025; code ``MTLlib`` class ConsMTL): FairGrad(α) upper level on the
    shared parameters plus the lower-level consensus loss −λ⟨δ_k, stopgrad(Σ_j w_j δ_j)⟩ on each head.

    ``lam``: λ (QM9 1e-3, CityScapes/CelebA 50, NYUv2 1); ``clip_ratio``: the extra head gradient's
    cap relative to the plain head gradient (0.1; a list gives one per task, e.g. CityScapes
    [0.05, 0]); ``upper``: "non_head" (the code: every parameter outside the heads) or "shared"
    (the model's own partition; MTAN attention then gets its plain gradient).
    """


@register("ulo", label="ULO", needs="custom", ddp_exact=False,
          ddp_note="its own backward takes J of this rank's shard",
          paper="Qin et al., CVPR 2025, Table 6: ConsMTL's upper level only")
class ULO(_BiLevel):
    """ConsMTL's upper level only (Qin et al. 2025 Table 6, "ULO only"): FairGrad(α) with K·wᵀJ clipped to
    ``max_norm``; heads get their plain gradients. Hyper-parameters as :class:`ConsMTL` (λ unused)."""

    lower = False
    needs = "jacobian"                       # no representation needed without the lower level

    def __init__(self, alpha: float = 2.0, max_norm: float | None = 1.0, upper: str = "non_head",
                 chunk_size: int | None = None):
        super().__init__(lam=0.0, alpha=alpha, clip_ratio=0.0, max_norm=max_norm, upper=upper, chunk_size=chunk_size)
