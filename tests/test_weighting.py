"""Contract tests over the whole weighting registry (``W.names()``): construction and errors, the
``aggregate`` API, finite output on degenerate Jacobians, permutation equivariance, a few training
steps of a tiny model in every mode a method declares, and the declaration itself (``W.info``)
checked against what the class implements. A registered name runs every contract unless
:data:`EXCLUDED` names it with the reason."""
import inspect
import math

import numpy as np

import pytest
import torch
from torch import nn

import mtl.weighting as W
from mtl import tasks as TK
from mtl.data import DataBundle
from mtl.models import MultiTaskModel
from mtl.train import TrainConfig, fit

from _toy import DictSamples

# Registered names left out of the contracts below, each with the reason (and where it is tested instead).
EXCLUDED = {
    "url": "needs trained single-task teachers (run folders or models); tests/test_distill.py covers it",
}
NAMES = [n for n in W.names() if n not in EXCLUDED]
RANDOM = {"rlw", "graddrop", "pcgrad", "gradvac"}          # not deterministic by design: no equivariance contract


# ----------------------------------------------------------------------------- a tiny in-memory problem
def tiny_bundle(T=3, n=48, d_in=6, seed=0) -> DataBundle:
    """T regression tasks on one input; train/val/test of n/2, n/4, n/4 samples."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=g)
    y = torch.tanh(x @ torch.randn(d_in, T, generator=g)) + 0.1 * torch.randn(n, T, generator=g)
    names = [f"t{i}" for i in range(T)]
    cut = [0, n // 2, 3 * n // 4, n]
    parts = [DictSamples(x[a:b], {t: y[a:b, i] for i, t in enumerate(names)}) for a, b in zip(cut, cut[1:])]
    return DataBundle("tiny", [TK.regression(t) for t in names], *parts)


def tiny_model(T=3, d_in=6, width=8, seed=0) -> MultiTaskModel:
    torch.manual_seed(seed)
    enc = nn.Sequential(nn.Linear(d_in, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
    return MultiTaskModel(enc, {f"t{i}": nn.Linear(width, 1) for i in range(T)})


def modes_of(name):
    """The modes a method declares, or [None] when its constructor takes no ``mode``."""
    takes_mode = "mode" in inspect.signature(W.WEIGHTINGS.get(name)).parameters
    return list(W.info(name).modes) if takes_mode else [None]


def make(name, mode=None, **kw):
    return W.create(name, **kw) if mode is None else W.create(name, mode=mode, **kw)


# ----------------------------------------------------------------------------- registry and errors
def test_every_registered_method_is_covered_or_excluded_with_a_reason():
    assert set(EXCLUDED) <= set(W.names()), "stale exclusions"
    assert all(EXCLUDED.values()) and set(NAMES) | set(EXCLUDED) == set(W.names())


@pytest.mark.parametrize("name", NAMES)
def test_creates_with_defaults_and_honest_repr(name):
    w = W.create(name)
    r = repr(w)
    assert r.startswith(type(w).__name__ + "(")
    sig = inspect.signature(type(w))
    for p in sig.parameters:
        if p not in ("mode", "chunk_size", "weights", "solver") and hasattr(w, p):
            assert f"{p}=" in r, (p, r)


def test_unknown_name_lists_valid_names():
    with pytest.raises(KeyError, match="valid names:.*mgda"):
        W.create("mgdaa")


def test_unknown_hyperparameter_lists_valid_ones():
    with pytest.raises(TypeError, match=r"valid: \['c', 'rescale', 'mode', 'chunk_size'\]"):
        W.create("cagrad", calpha=0.5)


@pytest.mark.parametrize("name,kw,match", [
    ("mgda", {"normalize": "l3"}, "normalize must be one of"),
    ("mgda", {"mode": "features"}, "mode in"),
    ("graddrop", {"mode": "param"}, "mode in"),
    ("cagrad", {"c": -1}, "c must be non-negative"),
    ("cagrad", {"rescale": 3}, "rescale must be one of"),
    ("fairgrad", {"alpha": 0}, "alpha must be positive"),
    ("dwa", {"temp": "hot"}, "temp must be a number"),
    ("nashmtl", {"update_weights_every": 0}, "update_weights_every"),
    ("sdmgrad", {"niter": 1.5}, "niter"),
    ("avgnorm", {"layer": "first"}, "layer must be one of"),
    ("moml", {"inner_step": 0}, "inner_step"),
    ("gradvac", {"beta": 2}, "beta must be in"),
    ("stch", {"warmup_epoch": -1}, "warmup_epoch"),
])
def test_bad_hyperparameters_are_clear_errors(name, kw, match):
    with pytest.raises(ValueError, match=match):
        W.create(name, **kw)


def test_missing_cvxpy_raises_install_hint(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "cvxpy", None)
    for name in ("nashmtl", "forum"):
        with pytest.raises(ImportError, match=r"pip install"):
            W.create(name)


def test_aggregate_validates_inputs():
    with pytest.raises(ValueError, match=r"matrix \[T, d\]"):
        W.aggregate("ew", torch.ones(3))
    with pytest.raises(ValueError, match="2 losses for a Jacobian of 3 tasks"):
        W.aggregate("ew", torch.ones(3, 4), losses=[1.0, 2.0])


def test_aggregate_scale_convention_is_the_sum_for_ew():
    J = torch.randn(4, 9, dtype=torch.float64)
    torch.testing.assert_close(W.aggregate("ew", J), J.sum(0))
    torch.testing.assert_close(W.aggregate("ls", J, weights=[1, 2, 3, 4]),
                               torch.tensor([1.0, 2, 3, 4], dtype=J.dtype) @ J)


# ----------------------------------------------------------------------------- degenerate inputs
def _degenerate():
    g = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    h = torch.tensor([-1.0, 0.5, 2.0, 0.0], dtype=torch.float64)
    r = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return {
        "zero_row": torch.stack([g, torch.zeros(4, dtype=g.dtype), h]),
        "all_zero": torch.zeros(3, 4, dtype=g.dtype),
        "identical": torch.stack([g, g, g]),
        "collinear": torch.stack([g, 3 * g, 0.5 * g]),
        "opposite": torch.stack([g, -g]),
        "scaled": r * torch.tensor([1e-8, 1.0, 1e8], dtype=g.dtype)[:, None],
        "scaled_small": r * 1e-8,
        "scaled_large": r * 1e8,
        "single": g[None],
    }


@pytest.mark.parametrize("case", list(_degenerate()))
@pytest.mark.parametrize("name", NAMES)
def test_finite_on_degenerate_inputs(name, case):
    torch.manual_seed(0)
    J = _degenerate()[case]
    kw = {"weights": [1.0] * J.shape[0]} if name == "ls" else {}
    d = W.aggregate(name, J, losses=torch.linspace(0.5, 2.0, J.shape[0], dtype=J.dtype), **kw)
    assert d.shape == (J.shape[1],)
    assert torch.isfinite(d).all(), d


# ----------------------------------------------------------------------------- permutation equivariance
@pytest.mark.parametrize("name", sorted(set(NAMES) - RANDOM))
def test_permutation_equivariance(name):
    gen = torch.Generator().manual_seed(3)
    J = torch.randn(4, 12, generator=gen, dtype=torch.float64)
    losses = torch.rand(4, generator=gen, dtype=torch.float64) + 0.5
    perm = torch.tensor([2, 0, 3, 1])
    d = W.aggregate(name, J, losses)
    dp = W.aggregate(name, J[perm], losses[perm])
    torch.testing.assert_close(dp, d, rtol=1e-4, atol=1e-6 * float(d.norm()) + 1e-9)


# ----------------------------------------------------------------------------- training
CASES = [(n, m) for n in NAMES for m in modes_of(n)]


@pytest.mark.parametrize("name,mode", CASES, ids=[f"{n}-{m or 'losses'}" for n, m in CASES])
def test_trains_a_tiny_model(name, mode):
    data, model = tiny_bundle(), tiny_model()
    before = [p.detach().clone() for p in model.parameters()]
    w = make(name, mode)
    hist = fit(model, data, w, TrainConfig(epochs=2, batch_size=8, max_steps_per_epoch=2, device="cpu", seed=1))
    for rec in hist.epochs:
        assert all(math.isfinite(v) for v in rec["train_loss"].values())
        assert all(math.isfinite(v) for v in rec["weights"].values())
    shared_moved = any(not torch.equal(a, b) for a, b in zip(before, model.encoder.parameters()))
    heads_moved = any(not torch.equal(a, b) for a, b in zip(before[-6:], list(model.heads.parameters())))
    assert shared_moved and heads_moved


def test_needs_tells_the_loop_what_to_keep():
    assert W.create("ew").needs == "losses"
    assert W.create("mgda").needs == "rep"                # MGDA-UB by default (seed 002 Table 1)
    assert W.create("mgda", mode="param").needs == "rep"  # param mode starts the batched backward there
    assert W.create("autolambda").needs == "losses"


# ----------------------------------------------------------------------------- state and hooks
def test_dwa_state_and_reset():
    w = W.create("dwa", temp=2.0)
    L = torch.ones(2)
    w.end_epoch(0, torch.tensor([1.0, 1.0]))
    w.end_epoch(1, torch.tensor([0.5, 1.0]))
    r = torch.tensor([0.5, 1.0])
    torch.testing.assert_close(w.weights(L), 2 * torch.softmax(r / 2.0, 0))
    w.reset()
    torch.testing.assert_close(w.weights(L), torch.ones(2))


def test_avgnorm_records_mean_weights_over_training():
    data, model = tiny_bundle(), tiny_model()
    w = W.create("avgnorm")
    hist = fit(model, data, w, TrainConfig(epochs=2, batch_size=8, max_steps_per_epoch=3, device="cpu"))
    per_epoch = torch.tensor([[r["weights"][t] for t in model.tasks] for r in hist.epochs])
    torch.testing.assert_close(w.mean_weights.float(), per_epoch.mean(0), rtol=1e-5, atol=1e-6)
    assert w.mean_weights.shape == (3,)


def test_gradnorm_renormalises_after_step():
    data, model = tiny_bundle(), tiny_model()
    w = W.create("gradnorm")
    fit(model, data, w, TrainConfig(epochs=1, batch_size=8, max_steps_per_epoch=3, device="cpu", lr=0.1))
    p = w.parameters()[0].detach()
    assert p.shape == (3,) and abs(float(p.sum()) - 3.0) < 1e-5 and not torch.allclose(p, torch.ones(3))


def test_three_batch_methods_declare_it():
    assert W.info("modo").batches == 3 and W.info("sdmgrad").batches == 3


class _LSTMEncoder(nn.Module):
    """An encoder with an LSTM, like QM9's Set2Set readout (oneDNN's LSTM has no forward-AD rule)."""

    def __init__(self, d_in=6, width=8):
        super().__init__()
        self.lin, self.lstm = nn.Linear(d_in, width), nn.LSTM(width, width)

    def forward(self, x):
        out, _ = self.lstm(torch.tanh(self.lin(x))[None])                   # [1, n, width]
        return out[0]


def test_modo_trains_through_an_lstm():
    """MoDo's forward-mode product J₁v runs on models with an LSTM (it crashed on QM9's MPNN)."""
    torch.manual_seed(0)
    model = MultiTaskModel(_LSTMEncoder(), {f"t{i}": nn.Linear(8, 1) for i in range(3)})
    before = [p.detach().clone() for p in model.encoder.parameters()]
    hist = fit(model, tiny_bundle(), W.create("modo"),
               TrainConfig(epochs=1, batch_size=8, max_steps_per_epoch=2, device="cpu", seed=1))
    assert all(math.isfinite(v) for v in hist.epochs[-1]["train_loss"].values())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.encoder.parameters()))


# ----------------------------------------------------------------------------- the declaration matches the class
def implemented_needs(cls) -> str:
    """What the engine chose by introspecting a class's overrides before methods declared ``needs``
    (the removed ``gram_only`` / ``tracks`` properties, plus who writes ``backward``). Recorded for
    every method when the declarations were introduced: gram_only for alignedmtl, avgnorm, cagrad,
    fairgrad, gradnorm, gradvac, imtl, mgda, modo, nashmtl, pcgrad, sdmgrad, upgrad; tracks for
    dbmtl, excessmtl, moco; neither for graddrop (``direction``); modo writes its own backward."""
    G = W.GradientWeighting
    if issubclass(cls, W.LossWeighting):
        return "losses"
    if not issubclass(cls, G) or cls.backward is not G.backward:
        return "custom"
    if cls.track is not G.track:
        return "factored"
    if cls.gram_weights is not G.gram_weights and cls.weights is G.weights and cls.direction is G.direction:
        return "gramian"
    return "jacobian"


def implemented_batches(cls) -> int:
    """Bilevel methods draw a validation batch (2); the three-batch helpers draw two more (3)."""
    from mtl.weighting._bilevel import BilevelWeighting

    if issubclass(cls, BilevelWeighting):
        return 2
    return 3 if any(f in inspect.getsource(cls) for f in ("cross_gram", "cross_product")) else 1


@pytest.mark.parametrize("name", W.names())
def test_declaration_matches_what_the_class_implements(name):
    """A method implementing ``gram_weights`` only is declared "gramian", one with ``track`` "factored",
    one writing ``backward`` "custom"...; ``stateful`` iff it has a ``reset``; modes only for gradient methods."""
    cls, info = W.WEIGHTINGS.get(name), W.info(name)
    assert cls.info is info and info.name == name
    assert info.needs == implemented_needs(cls)
    assert info.stateful == (cls.reset is not W.Weighting.reset)
    assert bool(info.modes) == issubclass(cls, W.GradientWeighting)
    assert info.label and info.batches == implemented_batches(cls)


# ----------------------------------------------------------------------------- aggregate has no side effects; reset
def snapshot(obj):
    """A comparable copy of a weighting's state: tensors, arrays and numbers, nested weightings
    included (solver caches and other helper objects are compared by identity)."""
    if isinstance(obj, torch.Tensor):
        return ("tensor", obj.detach().clone(), obj.grad.clone() if obj.grad is not None else None)
    if isinstance(obj, np.ndarray):
        return ("array", obj.copy())
    if isinstance(obj, (bool, int, float, str, type(None))):
        return obj
    if isinstance(obj, dict):
        return {k: snapshot(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [snapshot(v) for v in obj]
    if isinstance(obj, (nn.Module, torch.optim.Optimizer)):
        return ("state_dict", snapshot(obj.state_dict()))
    if isinstance(obj, W.Weighting):
        return (type(obj).__name__, snapshot(vars(obj)))
    return ("id", id(obj))


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and \
            torch.equal(a, b)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def trained(name, mode=None):
    """Method ``name`` after a few real steps on the tiny problem (so its state is not the initial one)."""
    w = make(name, mode)
    fit(tiny_model(), tiny_bundle(), w,
        TrainConfig(epochs=2, batch_size=8, max_steps_per_epoch=2, device="cpu", seed=1))
    return w


def _J():
    gen = torch.Generator().manual_seed(5)
    return (torch.randn(3, 12, generator=gen, dtype=torch.float64),
            torch.rand(3, generator=gen, dtype=torch.float64) + 0.5)


@pytest.mark.parametrize("name,mode", CASES, ids=[f"{n}-{m or 'losses'}" for n, m in CASES])
def test_aggregate_leaves_a_live_object_unchanged(name, mode):
    w = trained(name, mode)
    before = snapshot(w)
    J, L = _J()
    torch.manual_seed(0)
    d1 = w.aggregate(J, L)
    assert same(snapshot(w), before), f"{name}.aggregate changed the object's state"
    torch.manual_seed(0)
    torch.testing.assert_close(w.aggregate(J, L), d1, rtol=0, atol=0)   # so a second call sees the same state


@pytest.mark.parametrize("name,mode", CASES, ids=[f"{n}-{m or 'losses'}" for n, m in CASES])
def test_reset_returns_to_a_fresh_state(name, mode):
    w = trained(name, mode)
    w.reset()
    J, L = _J()
    torch.manual_seed(0)
    d = w.aggregate(J, L)
    torch.manual_seed(0)
    torch.testing.assert_close(d, make(name, mode).aggregate(J, L), rtol=0, atol=0)
