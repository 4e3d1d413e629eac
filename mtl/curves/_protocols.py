"""Training protocols built on :func:`mtl.train.fit`: EXTRA's two stages, PaMaL, and a linear-scalarisation sweep.

``make_model()`` builds a fresh :class:`~mtl.models.MultiTaskModel` (one call per network);
each helper seeds the global RNG before building so runs are reproducible.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from .. import weighting as W
from ..train import TrainConfig, fit, seed_everything
from ._extra import ExtraStep, default_control_points
from ._model import CurveModel, SimplexModel, curve_model, simplex_model
from ._pamal import PamalStep


@dataclass
class ExtraResult:
    """EXTRA's trained curve, its two end points and the histories of both stages."""

    curve: CurveModel
    endpoints: list
    stage1: list = field(default_factory=list)
    stage2: object = None


def train_endpoints(make_model: Callable, data, config: TrainConfig, base: str = "ls", base_kw: dict | None = None,
                    endpoint_kw: Sequence[dict] | None = None) -> tuple[list, list]:
    """EXTRA stage 1 (Zhou et al. 2025 §5, App. B.4): two end-point networks, each a full multi-task network
    trained by the base weighting ``base`` (``ls``/``cagrad``/``fairgrad`` → EXTRA-L/C/F).

    The end points differ by seed (``config.seed`` and ``config.seed + 1000``); ``endpoint_kw``
    gives each its own weighting arguments, e.g. LS weights favouring E1 for one end and E2 for the
    other (the paper's stage-1 details are not recoverable: METHODS §1.10).
    """
    kws = list(endpoint_kw) if endpoint_kw is not None else [{}, {}]
    if len(kws) != 2:
        raise ValueError(f"endpoint_kw needs one dict per end point (2), got {len(kws)}")
    models, hists = [], []
    for k, kw in enumerate(kws):
        cfg = replace(config, seed=config.seed + 1000 * k)
        seed_everything(cfg.seed)
        model = make_model()
        hists.append(fit(model, data, W.create(base, **{**(base_kw or {}), **kw}), cfg))
        models.append(model)
    return models, hists


def train_extra(make_model: Callable, data, config: TrainConfig, stage2_config: TrainConfig | None = None, *,
                base: str = "ls", base_kw: dict | None = None, endpoint_kw: Sequence[dict] | None = None,
                family: str = "nurbs", n_points: int | None = None, init: str = "random",
                family_kw: dict | None = None, **step_kw) -> ExtraResult:
    """EXTRA (Zhou et al. 2025 §5): stage 1 trains the end points, stage 2 the interior points and NURBS weights.

    ``n_points`` defaults to the protocol's count (:func:`default_control_points`); ``step_kw``
    goes to :class:`ExtraStep` (``groups``, ``alpha``, code options). ``stage2_config`` defaults
    to ``config``.
    """
    endpoints, hist1 = train_endpoints(make_model, data, config, base, base_kw, endpoint_kw)
    n = n_points or default_control_points(data.name, len(endpoints[0].tasks))
    cfg2 = stage2_config or config
    seed_everything(cfg2.seed + 1)
    curve = curve_model(endpoints, family, n, init=init, **(family_kw or {}))
    hist2 = fit(curve, data, W.create("ls"), cfg2, step_rule=ExtraStep(**step_kw))
    return ExtraResult(curve, endpoints, hist1, hist2)


def train_pamal(make_model: Callable, data, config: TrainConfig, **step_kw) -> tuple[SimplexModel, object]:
    """PaMaL: T independently initialised members (code ``reinit_flag``) trained with :class:`PamalStep`."""
    seed_everything(config.seed)
    first = make_model()
    members = [first] + [make_model() for _ in range(len(first.tasks) - 1)]
    model = simplex_model(members)
    return model, fit(model, data, W.create("ls"), config, step_rule=PamalStep(**step_kw))


def train_ls_sweep(make_model: Callable, data, config: TrainConfig, weights: Sequence[Sequence[float]]) -> list[tuple]:
    """One model per fixed preference ``w`` (weighting ``ls``): the linear-scalarisation baseline front."""
    out = []
    for w in weights:
        seed_everything(config.seed)
        model = make_model()
        out.append((tuple(float(v) for v in w), model, fit(model, data, W.create("ls", weights=list(w)), config)))
    return out

