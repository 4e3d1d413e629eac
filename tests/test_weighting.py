"""Contract tests over the whole weighting registry: names, construction and errors, the
``aggregate`` API, finite output on degenerate Jacobians, permutation equivariance, and a few
training steps of a tiny model in every mode a method defines."""
import inspect
import math

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

import mtl.weighting as W
from mtl import tasks as TK
from mtl.data import DataBundle
from mtl.models import MultiTaskModel
from mtl.train import TrainConfig, fit

LOSS = ["ew", "ls", "uw", "dwa", "gls", "rlw", "stch", "famo"]
GRADIENT = ["gradnorm", "mgda", "imtl", "alignedmtl", "graddrop", "pcgrad", "gradvac", "cagrad", "nashmtl", "moco",
            "dbmtl", "excessmtl", "fairgrad", "modo", "sdmgrad", "upgrad", "avgnorm"]
BILEVEL = ["moml", "forum", "autolambda"]
RANDOM = {"rlw", "graddrop", "pcgrad", "gradvac"}          # not deterministic by design


# ----------------------------------------------------------------------------- a tiny in-memory problem
class _Pairs(Dataset):
    def __init__(self, x, ys):
        self.x, self.ys = x, ys

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], {t: y[i] for t, y in self.ys.items()}


def tiny_bundle(T=3, n=48, d_in=6, seed=0) -> DataBundle:
    """T regression tasks on one input; train/val/test of n/2, n/4, n/4 samples."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=g)
    y = torch.tanh(x @ torch.randn(d_in, T, generator=g)) + 0.1 * torch.randn(n, T, generator=g)
    names = [f"t{i}" for i in range(T)]
    cut = [0, n // 2, 3 * n // 4, n]
    parts = [_Pairs(x[a:b], {t: y[a:b, i] for i, t in enumerate(names)}) for a, b in zip(cut, cut[1:])]
    return DataBundle("tiny", [TK.regression(t) for t in names], *parts)


def tiny_model(T=3, d_in=6, width=8, seed=0) -> MultiTaskModel:
    torch.manual_seed(seed)
    enc = nn.Sequential(nn.Linear(d_in, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
    return MultiTaskModel(enc, {f"t{i}": nn.Linear(width, 1) for i in range(T)})


def modes_of(name):
    cls = W.WEIGHTINGS.get(name)
    return list(getattr(cls, "modes", (None,))) if "mode" in inspect.signature(cls).parameters else [None]


def make(name, mode=None, **kw):
    return W.create(name, **kw) if mode is None else W.create(name, mode=mode, **kw)


# ----------------------------------------------------------------------------- registry and errors
def test_every_method_is_registered():
    assert set(LOSS + GRADIENT + BILEVEL) <= set(W.names())


@pytest.mark.parametrize("name", LOSS + GRADIENT + BILEVEL)
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
    torch.testing.assert_close(W.aggregate("ls", J, weights=[1, 2, 3, 4]), torch.tensor([1.0, 2, 3, 4], dtype=J.dtype) @ J)


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
@pytest.mark.parametrize("name", LOSS + GRADIENT + BILEVEL)
def test_finite_on_degenerate_inputs(name, case):
    torch.manual_seed(0)
    J = _degenerate()[case]
    kw = {"weights": [1.0] * J.shape[0]} if name == "ls" else {}
    d = W.aggregate(name, J, losses=torch.linspace(0.5, 2.0, J.shape[0], dtype=J.dtype), **kw)
    assert d.shape == (J.shape[1],)
    assert torch.isfinite(d).all(), d


# ----------------------------------------------------------------------------- permutation equivariance
@pytest.mark.parametrize("name", sorted(set(LOSS + GRADIENT + BILEVEL) - RANDOM))
def test_permutation_equivariance(name):
    gen = torch.Generator().manual_seed(3)
    J = torch.randn(4, 12, generator=gen, dtype=torch.float64)
    losses = torch.rand(4, generator=gen, dtype=torch.float64) + 0.5
    perm = torch.tensor([2, 0, 3, 1])
    d = W.aggregate(name, J, losses)
    dp = W.aggregate(name, J[perm], losses[perm])
    torch.testing.assert_close(dp, d, rtol=1e-4, atol=1e-6 * float(d.norm()) + 1e-9)


# ----------------------------------------------------------------------------- training
CASES = [(n, m) for n in LOSS + GRADIENT + BILEVEL for m in modes_of(n)]


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
    assert W.create("modo").batches == 3 and W.create("sdmgrad").batches == 3


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
