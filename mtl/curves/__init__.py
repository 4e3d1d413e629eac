"""Weight-space curves and simplices of networks (EXTRA, Zhou et al. 2025; PaMaL, Dimitriadis et al. 2023).

A :class:`WeightSpaceModel` stores n copies ("control points" or "members") of a multi-task
network and evaluates the network whose every parameter tensor is ``Σ_i c_i(point) θ_i``; the
coefficient map ``c`` is a curve family chosen by name (``names()``: ``nurbs``, ``bezier``,
``polychain``, ``simplex``). EXTRA's stage-2 objective and PaMaL's window objective are step
rules for :func:`mtl.train.fit`; :func:`recalibrate_bn` recomputes BatchNorm statistics at a point.
"""
from __future__ import annotations

from ._registry import FAMILIES, create, info, names, register  # noqa: F401
from ._families import Bezier, CurveFamily, NURBS, PolyChain, Simplex, bspline_basis, clamped_knots  # noqa: E402
from ._model import CurveModel, SimplexModel, WeightSpaceModel, curve_model, recalibrate_bn, simplex_model  # noqa: E402
from ._extra import ExtraStep, default_control_points, default_groups  # noqa: E402
from ._pamal import PamalStep, ordering_penalty, simplex_grid  # noqa: E402
from ._extra import alignment_loss, order_aware_loss  # noqa: E402
from ._protocols import ExtraResult, train_endpoints, train_extra, train_ls_sweep, train_pamal  # noqa: E402

__all__ = [
    "names", "info", "create", "register", "FAMILIES",
    "CurveFamily", "NURBS", "Bezier", "PolyChain", "Simplex", "bspline_basis", "clamped_knots",
    "WeightSpaceModel", "CurveModel", "SimplexModel", "curve_model", "simplex_model", "recalibrate_bn",
    "ExtraStep", "default_control_points", "default_groups", "order_aware_loss", "alignment_loss",
    "PamalStep", "ordering_penalty", "simplex_grid",
    "ExtraResult", "train_endpoints", "train_extra", "train_pamal", "train_ls_sweep",
]
