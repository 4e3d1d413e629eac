"""ConsMTL / ULO (mtl.weighting.consmtl): λ = 0 equals ULO exactly, the lower-level gradient against finite
differences, the clip, the upper level against FairGrad's equation, per-task z (MTAN)."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from mtl import tasks as T
from mtl import weighting as W
from mtl.diagnostics import RepresentationProbe, representation_cosines
from mtl.jacobian import representation_grads
from mtl.weighting.consmtl import clip_to_ratio, lower_level_grads, upper_direction
from mtl.data import DataBundle
from mtl.jacobian import flatten, jacobian
from mtl.models import MultiTaskModel, create_model
from mtl.tasks import task_losses
from mtl.train import TrainConfig, fit
from mtl.weighting import StepContext

TASKS = ["a", "b", "c"]


class _Reg(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, generator=g)
        self.y = torch.stack([self.x[:, 0] * self.x[:, 1], self.x[:, 2] - self.x[:, 3], torch.sin(self.x[:, 0])], 1)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], {t: self.y[i, j] for j, t in enumerate(TASKS)}


class _Squeeze(nn.Module):
    def forward(self, x):
        return x.squeeze(-1)


def _bundle():
    return DataBundle("toy", [T.regression(t) for t in TASKS], _Reg(32, 0), _Reg(16, 1), _Reg(16, 2))


def _model(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    heads = {t: nn.Sequential(nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 1), _Squeeze()) for t in TASKS}
    return MultiTaskModel(nn.Sequential(nn.Linear(4, 5), nn.Tanh()), heads).to(dtype)


def _step(model, data, weighting):
    """One backward of ``weighting`` on the first 8 samples; returns (losses, z, logs)."""
    x, y = next(iter(data.loader("train", 8)))
    x, y = x.to(next(model.parameters()).dtype), {t: v.to(next(model.parameters()).dtype) for t, v in y.items()}
    z = model.encode(x)
    losses = task_losses(model, data, model.decode(z), y)
    model.zero_grad(set_to_none=True)
    ctx = StepContext(model=model, batch=(x, y), rep=z, loss_fn=None, next_batch=None)
    return losses, z, weighting.backward(losses, ctx)


def test_lambda_zero_equals_ulo_exactly():
    data = _bundle()
    states = []
    for w in (W.create("consmtl", lam=0.0), W.create("ulo")):
        model = _model()
        fit(model, data, w, TrainConfig(epochs=3, batch_size=8, lr=1e-2, device="cpu"))
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    model = _model()                        # and λ > 0 does change the trajectory
    fit(model, data, W.create("consmtl", lam=10.0, clip_ratio=0.5),
        TrainConfig(epochs=3, batch_size=8, lr=1e-2, device="cpu"))
    assert any(not torch.equal(model.state_dict()[k], states[0][k]) for k in states[0] if "heads" in k)


def test_lower_level_gradient_matches_finite_differences():
    data, lam = _bundle(), 0.7
    model = _model(dtype=torch.float64)
    x, y = next(iter(data.loader("train", 8)))
    x, y = x.double(), {t: v.double() for t, v in y.items()}
    heads = [list(model.heads[t].parameters()) for t in TASKS]
    w = torch.tensor([0.5, 1.3, 0.8], dtype=torch.float64)

    def deltas():
        z = model.encode(x)
        return z, task_losses(model, data, model.decode(z), y)

    z, losses = deltas()
    _, g2 = lower_level_grads(losses, z, "shared", heads, w, lam)
    bar = sum(wk * d for wk, d in zip(w, representation_grads(losses, z, "shared", False))).detach()

    def objective():                         # −λ Σ_k ⟨δ_k, δ̄⟩ with δ̄ held fixed
        with torch.enable_grad():
            z, L = deltas()
            return float(-lam * sum((d * bar).sum() for d in representation_grads(L, z, "shared", False)))

    eps = 1e-6
    for k, params in enumerate(heads):
        for p, g in zip(params, g2[k]):
            fd = torch.zeros_like(p)
            with torch.no_grad():
                for i in range(p.numel()):
                    p.view(-1)[i] += eps
                    up = objective()
                    p.view(-1)[i] -= 2 * eps
                    down = objective()
                    p.view(-1)[i] += eps
                    fd.view(-1)[i] = (up - down) / (2 * eps)
            assert torch.allclose(g, fd, rtol=1e-5, atol=1e-8), (k, g, fd)
    assert any(float(g.abs().max()) > 1e-4 for gs in g2 for g in gs)      # the term is not trivially zero


@pytest.mark.parametrize("ratio", [0.0, 0.05, [0.2, 0.0, 1e9]])
def test_clip_bounds_the_extra_head_gradient(ratio):
    data = _bundle()
    ratios = ratio if isinstance(ratio, list) else [ratio] * 3
    grads = {}
    for name, lam in (("plain", 0.0), ("extra", 1e4)):
        model = _model()
        _step(model, data, W.create("consmtl", lam=lam, clip_ratio=ratio))
        grads[name] = [flatten([p.grad for p in model.heads[t].parameters()]) for t in TASKS]
    for r, g1, g in zip(ratios, grads["plain"], grads["extra"]):
        extra = (g - g1).norm()
        assert extra <= r * g1.norm() * (1 + 1e-5) + 1e-12
        if r == 0.0:
            assert torch.equal(g, g1)
        elif r < 1:                           # λ = 1e4 makes the cap bind
            assert extra == pytest.approx(r * float(g1.norm()), rel=1e-4)


def test_clip_to_ratio_leaves_small_gradients_alone():
    g1 = [torch.tensor([3.0, 4.0])]
    same, s = clip_to_ratio([torch.tensor([0.1, 0.0])], g1, 0.1)
    assert s == 1.0 and torch.equal(same[0], torch.tensor([0.1, 0.0]))
    cut, s = clip_to_ratio([torch.tensor([0.0, 10.0])], g1, 0.1)
    assert float(cut[0].norm()) == pytest.approx(0.5) and s == pytest.approx(0.05)


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_upper_level_is_clipped_k_times_fairgrad(alpha):
    data = _bundle()
    model = _model(dtype=torch.float64)
    weighting = W.create("ulo", alpha=alpha, max_norm=None)
    losses, z, logs = _step(model, data, weighting)
    shared = list(model.encoder.parameters())
    model2 = _model(dtype=torch.float64)
    x, y = next(iter(data.loader("train", 8)))
    L2 = task_losses(model2, data, model2(x.double()), {t: v.double() for t, v in y.items()})
    J = jacobian(L2, list(model2.encoder.parameters()))                    # [T, d]
    w = logs["weights"]
    G = (J @ J.T).numpy()
    assert np.allclose(G @ w.numpy(), w.numpy() ** (-1 / alpha), rtol=1e-5)        # FairGrad's equation
    assert torch.allclose(flatten([p.grad for p in shared]), 3 * (w @ J), rtol=1e-6, atol=1e-10)
    d = upper_direction(J, w, 1.0)
    assert float(d.norm()) <= 1.0 + 1e-9 and torch.allclose(d / d.norm(), (w @ J) / (w @ J).norm())
    assert torch.allclose(W.aggregate("ulo", J, alpha=alpha), d)


def test_per_task_representation_mtan(tiny_scenes):
    data = tiny_scenes.select(["segmentation", "depth"])
    cfg = TrainConfig(epochs=1, batch_size=2, lr=1e-3, device="cpu", max_steps_per_epoch=2)
    states = []
    for w in (W.create("consmtl", lam=0.0), W.create("ulo")):
        torch.manual_seed(0)
        model = create_model("mtan", "segnet", data.tasks, backbone_kw=dict(width=4, stages=2, convs=1))
        assert model.rep_layout == "per_task"
        fit(model, data, w, cfg)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    torch.manual_seed(0)
    model = create_model("mtan", "segnet", data.tasks, backbone_kw=dict(width=4, stages=2, convs=1))
    probe = RepresentationProbe(data, every=1)
    hist = fit(model, data, W.create("consmtl", lam=1.0), cfg, probes=[probe])
    C = np.asarray(hist.epochs[0]["probes"][0]["cos"])
    assert C.shape == (2, 2) and np.allclose(np.diag(C), 1) and np.allclose(C, C.T)


def test_representation_cosines_and_bad_input():
    a = torch.tensor([[1.0, 0.0]])
    C = representation_cosines([a, -a, torch.tensor([[0.0, 2.0]])])
    assert np.allclose(C, [[1, -1, 0], [-1, 1, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match="clip_ratio"):
        W.create("consmtl", clip_ratio=-0.1)
    with pytest.raises(ValueError, match="upper"):
        W.create("consmtl", upper="heads")
    with pytest.raises(ValueError, match="one per task"):
        _step(_model(), _bundle(), W.create("consmtl", clip_ratio=[0.1, 0.1]))
    assert "lam=0.001" in repr(W.create("consmtl", lam=1e-3))
