"""Functional weight-space models: a network whose parameters are Σ_i c_i(point) θ_i over n stored copies.

The stored copies are ordinary :class:`~mtl.models.MultiTaskModel` s (``model.points``); a
parameter-free template runs ``encode``/``decode``/``forward`` through ``torch.func.functional_call``
with the combined tensors, so every tensor (BatchNorm affine included) is differentiable in the
copies and in the family's own parameters (Zhou et al. 2025 Eq. 4; METHODS §5). BatchNorm running
statistics are one set held by the template, apart from the combined parameters (as in both codes).
"""
from __future__ import annotations

import contextlib
import copy
from typing import Iterable, Sequence

import torch
from torch import nn
from torch.func import functional_call

from ..models.base import MultiTaskModel
from ..train import to_device
from ._registry import create
from ._families import CurveFamily, Simplex


class _Caller(nn.Module):
    """Holds the parameter-free template; ``forward(method, *args)`` calls ``template.method(*args)``."""

    def __init__(self, template: nn.Module):
        super().__init__()
        self.net = template

    def forward(self, method: str, *args):
        return getattr(self.net, method)(*args)


def _strip_parameters(net: nn.Module) -> nn.Module:
    """Remove every registered parameter (functional_call supplies them); buffers stay."""
    for module in net.modules():
        for name in list(module._parameters):
            module._parameters.pop(name)
            setattr(module, name, None)
    return net


def _check_same_layout(points: Sequence[nn.Module]) -> list[str]:
    ref = [(n, p.shape) for n, p in points[0].named_parameters()]
    for i, pt in enumerate(points[1:], 1):
        other = [(n, p.shape) for n, p in pt.named_parameters()]
        if other != ref:
            raise ValueError(f"control point {i} has other parameter names or shapes than point 0; "
                             "all points must be copies of one architecture")
    return [n for n, _ in ref]


class WeightSpaceModel(MultiTaskModel):
    """n networks ``points`` mixed by ``family`` at the settable ``point`` (t for curves, α for the simplex).

    Satisfies the :class:`MultiTaskModel` contract: shared parameters are the points' shared parts
    plus the family's trainable parameters (NURBS weights), task parameters the points' heads.
    """

    def __init__(self, points: Sequence[MultiTaskModel], family: CurveFamily):
        nn.Module.__init__(self)
        if len(points) != family.n_points:
            raise ValueError(f"family {type(family).__name__} expects {family.n_points} points, got {len(points)}")
        self._names = _check_same_layout(points)
        self.points = nn.ModuleList(points)
        self.family = family
        self.net = _Caller(_strip_parameters(copy.deepcopy(points[0])))
        self.point = family.default_point()

    # ------------------------------------------------------------------ the evaluation point
    @property
    def point(self):
        return self._point

    @point.setter
    def point(self, value) -> None:
        p = self.family.check_point(value)
        want = (self.family.n_points,) if isinstance(self.family, Simplex) else ()
        if tuple(p.shape) != want:
            raise ValueError(f"a single point of shape {want} is needed, got shape {tuple(p.shape)}")
        self._point = float(p) if want == () else p

    @contextlib.contextmanager
    def at(self, point):
        """Evaluate at ``point`` inside the block, then restore the previous point."""
        old, self.point = self.point, point
        try:
            yield self
        finally:
            self.point = old

    # ------------------------------------------------------------------ combination
    def coefficients(self) -> torch.Tensor:
        """c(point) [n] on the parameters' device and dtype (differentiable in the family's parameters)."""
        ref = next(self.points[0].parameters())
        return self.family(self._point).to(device=ref.device, dtype=ref.dtype)

    def combined_parameters(self) -> dict[str, torch.Tensor]:
        """{name: Σ_i c_i θ_i[name]} for every parameter tensor of the architecture."""
        c = self.coefficients().unbind()                                     # n scalars
        per_point = [dict(pt.named_parameters()) for pt in self.points]
        out = {}
        for name in self._names:
            acc = per_point[0][name] * c[0]
            for i in range(1, len(per_point)):
                acc = torch.addcmul(acc, per_point[i][name], c[i])           # acc + c_i θ_i, one op
            out[f"net.{name}"] = acc
        return out

    def _call(self, method: str, *args):
        return functional_call(self.net, self.combined_parameters(), (method, *args))

    # ------------------------------------------------------------------ MultiTaskModel contract
    @property
    def tasks(self) -> list[str]:
        return self.points[0].tasks

    def encode(self, x):
        return self._call("encode", x)

    def decode(self, z):
        return self._call("decode", z)

    def forward(self, x):
        return self._call("forward", x)

    def shared_parameters(self) -> list[nn.Parameter]:
        own = [p for p in self.family.parameters() if p.requires_grad]
        return [p for pt in self.points for p in pt.shared_parameters()] + own

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return [p for pt in self.points for p in pt.task_parameters(task)]

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return [p for pt in self.points for p in pt.last_shared_parameters()]

    def regularization(self):
        return None

    # ------------------------------------------------------------------ training helpers
    def freeze_points(self, indices: Iterable[int]) -> "WeightSpaceModel":
        """Stop gradients to the given stored networks (EXTRA's stage 2 freezes the end points)."""
        for i in indices:
            if not -len(self.points) <= i < len(self.points):
                raise IndexError(f"point index {i} out of range for {len(self.points)} points")
            self.points[i].requires_grad_(False)
        return self

    def trainable_points(self) -> list[int]:
        return [i for i, pt in enumerate(self.points) if any(p.requires_grad for p in pt.parameters())]

    def running_stat_modules(self) -> list[nn.Module]:
        """The BatchNorm modules whose running statistics the evaluated network uses."""
        return [m for m in self.net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


class CurveModel(WeightSpaceModel):
    """A curve of networks C(t) (EXTRA); ``model.t`` sets the point ``forward`` evaluates (default ½)."""

    @property
    def t(self) -> float:
        return self.point

    @t.setter
    def t(self, value: float) -> None:
        self.point = value


class SimplexModel(WeightSpaceModel):
    """PaMaL's simplex of T members θ(α) = Σ_t α_t θ_t; ``model.alpha`` sets α (default the centroid)."""

    @property
    def alpha(self) -> torch.Tensor:
        return self.point

    @alpha.setter
    def alpha(self, value) -> None:
        self.point = value


# ----------------------------------------------------------------------------- builders


def _reinit(net: nn.Module) -> nn.Module:
    """Fresh default initialisation of every layer (EXTRA's interior points keep it: METHODS §1.2)."""
    for m in net.modules():
        if m is not net and hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return net


@torch.no_grad()
def _lerp(a: nn.Module, b: nn.Module, s: float) -> nn.Module:
    out = copy.deepcopy(a)
    for po, pb in zip(out.parameters(), b.parameters()):
        po.mul_(1 - s).add_(pb, alpha=s)
    return out


def curve_model(endpoints: Sequence[MultiTaskModel], family: str = "nurbs", n_points: int = 3,
                init: str = "random", freeze_endpoints: bool = True, **family_kw) -> CurveModel:
    """A curve from two end-point networks (copied) and ``n_points − 2`` new interior points.

    ``init="random"`` gives the interior points a fresh default initialisation, as EXTRA's code
    does (its ``init_linear`` is commented out); ``init="linear"`` places point i at
    (1 − i/(n−1)) θ_0 + i/(n−1) θ_{n−1}. End points are frozen by default (stage 2, Zhou et al. 2025 §5);
    ``freeze_endpoints=False`` trains them too, like the NYUv2 code run without ``--fix_end``.
    """
    if len(endpoints) != 2:
        raise ValueError(f"give exactly two end-point networks, got {len(endpoints)}")
    if init not in ("random", "linear"):
        raise ValueError(f"init must be 'random' or 'linear', got {init!r}")
    if family == "simplex":
        raise ValueError("'simplex' is not a curve; use simplex_model(members)")
    fam = create(family, n_points, **family_kw)
    a, b = (copy.deepcopy(e) for e in endpoints)
    inner = [_reinit(copy.deepcopy(a)) if init == "random" else _lerp(a, b, i / (n_points - 1))
             for i in range(1, n_points - 1)]
    model = CurveModel([a, *inner, b], fam)
    if freeze_endpoints:
        model.freeze_points([0, n_points - 1])
    return model


def simplex_model(members: Sequence[MultiTaskModel]) -> SimplexModel:
    """PaMaL's model from T independently initialised members (used as given, not copied)."""
    return SimplexModel(list(members), Simplex(len(members)))


# ----------------------------------------------------------------------------- BatchNorm recalibration


def _batch_size(x) -> int:
    if isinstance(x, torch.Tensor):
        return int(x.shape[0])
    return int(getattr(x, "num_graphs", None) or len(x))


@torch.no_grad()
def recalibrate_bn(model: nn.Module, loader: Iterable, point=None, max_batches: int | None = None) -> nn.Module:
    """Recompute BatchNorm running statistics at ``point`` with one pass over ``loader`` (EXTRA's ``update_bn``).

    The statistics are reset and then averaged cumulatively over samples (momentum b/(n_seen+b),
    as EXTRA's ``utils.update_bn``). Only BatchNorm layers are in train mode during the pass
    (the code puts the whole model in train mode; this differs only for dropout). ``point``
    (t or α) is set on the model and left there. A model without BatchNorm is returned untouched.
    """

    if point is not None:
        model.point = point
    bns = model.running_stat_modules() if hasattr(model, "running_stat_modules") else \
        [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return model
    was_training, momenta = model.training, [bn.momentum for bn in bns]
    device = next(model.parameters()).device
    model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.train()
    seen = 0
    for k, batch in enumerate(loader):
        if max_batches is not None and k >= max_batches:
            break
        x = to_device(batch[0] if isinstance(batch, (tuple, list)) else batch, device)
        b = _batch_size(x)
        for bn in bns:
            bn.momentum = b / (seen + b)
        model(x)
        seen += b
    for bn, m in zip(bns, momenta):
        bn.momentum = m
    model.train(was_training)
    return model
