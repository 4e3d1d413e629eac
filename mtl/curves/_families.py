"""Curve families: maps from a point (t in [0, 1], or α in the simplex) to n mixing coefficients.

Every family is an ``nn.Module`` (NURBS owns learnable rational weights) whose ``forward(point)``
returns the coefficients ``c`` [n] (or [m, n] for m points) with which the n stored networks are
combined, ``θ(point) = Σ_i c_i θ_i`` (Zhou et al. 2025 Eq. 4; PaMaL §3).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_count
from ._registry import register


class CurveFamily(nn.Module):
    """Base class: ``n_points`` stored networks, a point → coefficients map, a default point."""

    point_dim = 1                                   # a curve takes a scalar t

    def __init__(self, n_points: int):
        super().__init__()
        self.n_points = check_count("n_points", n_points, 2)

    def default_point(self):
        """The point evaluated when none was set: the curve's midpoint t = 1/2 (Zhou et al. 2025 App. A.1)."""
        return 0.5

    def check_point(self, t) -> torch.Tensor:
        """t as a float64 tensor of shape [] or [m]; raises unless every t is finite and in [0, 1]."""
        t = torch.as_tensor(t, dtype=torch.float64).detach().cpu()
        if t.dim() > 1:
            raise ValueError(f"t must be a scalar or a 1-D tensor of scalars, got shape {tuple(t.shape)}")
        if not torch.isfinite(t).all() or (t < 0).any() or (t > 1).any():
            raise ValueError(f"t must lie in [0, 1], got {t.tolist()}")
        return t

    def basis(self, t: torch.Tensor) -> torch.Tensor:
        """Coefficients at the points ``t`` [m] (float64 [m] checked), shape [m, n]."""
        raise NotImplementedError

    def forward(self, point) -> torch.Tensor:
        t = self.check_point(point)
        c = self.basis(t.reshape(-1))               # [m, n]
        return c[0] if t.dim() == 0 else c

    def extra_repr(self) -> str:
        return f"n_points={self.n_points}"


# ----------------------------------------------------------------------------- NURBS (EXTRA)


def clamped_knots(n_points: int, degree: int) -> torch.Tensor:
    """The clamped uniform knot vector of EXTRA's code: p zeros, linspace(0, 1, n−p+1), p ones (n+p+1 knots).

    With p = n − 1 it is the Bézier knot vector; n = 5, p = 3 gives [0,0,0,0,½,1,1,1,1]. The code's
    n = 3, p = 3 case gives [0,0,0,0,1,1,1], whose basis is not a partition of unity (METHODS §1.2).
    """
    if not 1 <= degree <= n_points:
        raise ValueError(f"degree must be in [1, n_points={n_points}], got {degree}")
    inner = torch.linspace(0.0, 1.0, n_points - degree + 1, dtype=torch.float64)
    return torch.cat([torch.zeros(degree, dtype=torch.float64), inner, torch.ones(degree, dtype=torch.float64)])


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den with 0/0 := 0 (the Cox–de Boor convention for repeated knots)."""
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(num))


def bspline_basis(t: torch.Tensor, knots: torch.Tensor, degree: int, closed: bool = True) -> torch.Tensor:
    """B-spline basis N_{i,p}(t) by the Cox–de Boor recursion (Zhou et al. 2025 Eq. 5), shape [m, K−p−1].

    ``closed=True`` makes the last non-empty knot span closed, so t = u_max lies in it and the
    basis stays a partition of unity there; ``closed=False`` keeps half-open spans as EXTRA's
    code does, which makes every N_{i,p}(1) zero.
    """
    u = knots.to(torch.float64)
    t = t.to(torch.float64).reshape(-1, 1)                          # [m, 1]
    N = ((u[:-1] <= t) & (t < u[1:])).double()                      # [m, K-1] degree-0 spans
    if closed:
        last = int(torch.nonzero(u[:-1] < u[1:]).max())             # last non-empty span
        N[:, last] = torch.where(t[:, 0] == u[-1], 1.0, N[:, last])
    K = u.numel()
    for k in range(1, degree + 1):                                  # N: [m, K-k] -> [m, K-k-1]
        left = _ratio(t - u[:K - 1 - k], u[k:K - 1] - u[:K - 1 - k]) * N[:, :-1]
        right = _ratio(u[k + 1:] - t, u[k + 1:] - u[1:K - k]) * N[:, 1:]
        N = left + right
    return N


@register("nurbs", label="NURBS", paper="EXTRA (Zhou et al., NeurIPS 2025) Eq. 4–5")
class NURBS(CurveFamily):
    """EXTRA's NURBS curve (Zhou et al. 2025 Eq. 4–5): c_i(t) = N_{i,p}(t) w_i / Σ_j N_{j,p}(t) w_j.

    Clamped uniform knots, degree ``min(3, n−1)`` by default (the code hard-codes 3, which for
    n = 3 is not a partition of unity; pass ``degree=3`` for it). Rational weights w are learnable
    and kept positive by default (w = softplus(raw)); ``positive=False`` is the code's
    unconstrained w with a 1e-8 guard on the denominator. ``weight_init``: "uniform" (the code's
    U(0, 1)) or "ones" (a plain B-spline). ``clamp_end=True`` returns the last control point at
    t = 1 (the code's half-open spans give an all-zero network there: ``clamp_end=False``).
    """

    def __init__(self, n_points: int, degree: int | None = None, positive: bool = True,
                 weight_init: str = "uniform", clamp_end: bool = True):
        super().__init__(n_points)
        self.degree = min(3, self.n_points - 1) if degree is None else int(degree)
        self.knots = clamped_knots(self.n_points, self.degree)            # [n+p+1] float64, kept on the CPU
        self.positive, self.clamp_end, self.weight_init = bool(positive), bool(clamp_end), weight_init
        self.raw_weights = nn.Parameter(self._init_raw(weight_init))

    def _init_raw(self, weight_init: str) -> torch.Tensor:
        inits = {"uniform": lambda: torch.rand(self.n_points).clamp(min=1e-3),
                 "ones": lambda: torch.ones(self.n_points)}
        if weight_init not in inits:
            raise ValueError(f"weight_init must be one of {sorted(inits)}, got {weight_init!r}")
        w = inits[weight_init]()
        return torch.log(torch.expm1(w)) if self.positive else w       # softplus⁻¹ for the positive variant

    @property
    def weights(self) -> torch.Tensor:
        """The rational weights w [n] (positive unless ``positive=False``)."""
        return F.softplus(self.raw_weights) if self.positive else self.raw_weights

    def basis(self, t: torch.Tensor) -> torch.Tensor:
        w = self.weights                                                # [n]
        N = bspline_basis(t, self.knots, self.degree, closed=self.clamp_end).to(w)   # [m, n]
        num = N * w                                                     # [m, n]
        eps = 0.0 if self.positive else 1e-8                            # the code's guard for raw w
        den = num.sum(-1, keepdim=True) + eps                          # [m, 1]
        c = num / torch.where(den == 0, torch.ones_like(den), den)      # 0/0 only at t = 1 with degree = n
        if self.clamp_end:                                              # C(1) = θ_{n-1} exactly
            at_end = (t >= 1).to(w.device).unsqueeze(-1)
            c = torch.where(at_end, F.one_hot(torch.tensor(self.n_points - 1), self.n_points).to(w), c)
        return c

    def extra_repr(self) -> str:
        return (f"n_points={self.n_points}, degree={self.degree}, positive={self.positive}, "
                f"weight_init={self.weight_init!r}, clamp_end={self.clamp_end}")


# ----------------------------------------------------------------------------- Bézier, PolyChain


@register("bezier", label="Bézier", paper="EXTRA (Zhou et al., NeurIPS 2025) App. B.1")
class Bezier(CurveFamily):
    """Bézier curve, EXTRA's ablation baseline (Zhou et al. 2025 App. B.1): c_i(t) = C(n−1, i) tᶦ (1−t)ⁿ⁻¹⁻ᶦ.

    ``jitter > 0`` reproduces the NYUv2 code's training-time perturbation: each interior binomial
    coefficient gets ±U(0, 1)·jitter (random sign) on every forward pass in training mode (code: 1e-2).
    """

    def __init__(self, n_points: int, jitter: float = 0.0):
        super().__init__(n_points)
        if not jitter >= 0:
            raise ValueError(f"jitter must be non-negative, got {jitter}")
        self.jitter = float(jitter)
        k = self.n_points - 1
        self.binom = torch.tensor([math.comb(k, i) for i in range(k + 1)], dtype=torch.float64)   # [n], CPU

    def basis(self, t: torch.Tensor) -> torch.Tensor:
        k = self.n_points - 1
        i = torch.arange(k + 1, dtype=torch.float64)
        b = self.binom.clone()
        if self.training and self.jitter > 0:
            sign = torch.where(torch.rand(k - 1) < 0.5, -1.0, 1.0).double()
            b[1:-1] += sign * torch.rand(k - 1, dtype=torch.float64) * self.jitter
        t = t.reshape(-1, 1)                                             # [m, 1]
        return b * t.pow(i) * (1 - t).pow(k - i)                         # [m, n]

    def extra_repr(self) -> str:
        return f"n_points={self.n_points}, jitter={self.jitter}"


@register("polychain", label="Polygonal chain", paper="Garipov et al. 2018 (as in EXTRA's code)")
class PolyChain(CurveFamily):
    """Piecewise-linear chain through the n points placed at t_i = i/(n−1) (EXTRA's code; Garipov et al. 2018)."""

    def basis(self, t: torch.Tensor) -> torch.Tensor:
        s = torch.linspace(0, 1, self.n_points, dtype=torch.float64)     # [n]
        return (1 - (t.reshape(-1, 1) - s).abs() * (self.n_points - 1)).clamp(min=0)   # [m, n]


# ----------------------------------------------------------------------------- simplex (PaMaL)


@register("simplex", label="Simplex", paper="Dimitriadis et al. 2023 (PaMaL) §3")
class Simplex(CurveFamily):
    """PaMaL's simplex of T members (Dimitriadis et al. 2023 §3): c(α) = α for α in Δ^{T−1}."""

    def __init__(self, n_points: int, atol: float = 1e-5):
        super().__init__(n_points)
        self.point_dim, self.atol = self.n_points, float(atol)

    def default_point(self):
        """The centroid (1/T, …, 1/T)."""
        return torch.full((self.n_points,), 1.0 / self.n_points, dtype=torch.float64)

    def check_point(self, alpha) -> torch.Tensor:
        a = torch.as_tensor(alpha, dtype=torch.float64).detach().cpu()
        if a.dim() not in (1, 2) or a.shape[-1] != self.n_points:
            raise ValueError(f"α must have shape [{self.n_points}] or [m, {self.n_points}], got {tuple(a.shape)}")
        sums_to_one = torch.allclose(a.sum(-1), torch.ones((), dtype=torch.float64), atol=self.atol)
        ok = torch.isfinite(a).all() and (a >= -self.atol).all() and sums_to_one
        if not ok:
            raise ValueError(f"α must be non-negative and sum to 1 (a point of the simplex), got {a.tolist()}")
        return a.clamp(min=0)

    def forward(self, alpha) -> torch.Tensor:
        return self.check_point(alpha).float()
