"""PaMaL's simplex training step, ordering regulariser and evaluation grid (METHODS §2)."""
import math

import pytest
import torch

import mtl.curves as C
from mtl import weighting as W
from mtl.models import create_model
from mtl.train import TrainConfig, fit


def test_simplex_grid_shapes_and_membership():
    g2, g3, g5 = C.simplex_grid(2), C.simplex_grid(3), C.simplex_grid(5)
    assert g2.shape == (11, 2) and g3.shape == (66, 3) and g5.shape == (6, 5)
    for g in (g2, g3, g5):
        assert torch.allclose(g.sum(1), torch.ones(len(g), dtype=torch.float64)) and (g >= 0).all()
    assert len({tuple(r) for r in g3.round(decimals=6).tolist()}) == 66
    assert torch.allclose(g5[-1], torch.full((5,), 0.2, dtype=torch.float64))


def test_ordering_penalty_direction_pairs_and_code_sign():
    alphas = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]])
    good = torch.tensor([[0.1, 0.9], [0.5, 0.5], [0.8, 0.2]])       # bigger α_t, smaller L_t
    assert C.ordering_penalty(alphas, good) == 0
    bad = good.flip(0)
    r = C.ordering_penalty(alphas, bad)
    # task 0, all pairs: diffs 0.4, 0.7, 0.3 -> log mean exp; task 1 the same by symmetry
    expected = 2 * math.log((math.exp(0.4) + math.exp(0.7) + math.exp(0.3)) / 3)
    assert math.isclose(float(r), expected, rel_tol=1e-6)
    chain = 2 * math.log((math.exp(0.4) + math.exp(0.3)) / 2)
    assert math.isclose(float(C.ordering_penalty(alphas, bad, pairs="chain")), chain, rel_tol=1e-6)
    assert math.isclose(float(C.ordering_penalty(alphas, good, code_sign=True)), expected, rel_tol=1e-6)


def test_one_step_trains_every_member_with_a_window(tiny_mnist):
    torch.manual_seed(0)
    members = [create_model("hps", "lenet", tiny_mnist.tasks) for _ in range(2)]
    model = C.simplex_model(members)
    before = [p.detach().clone() for p in model.parameters()]
    rule = C.PamalStep(window=3, reg=1.0)
    cfg = TrainConfig(epochs=1, batch_size=16, device="cpu", max_steps_per_epoch=1)
    hist = fit(model, tiny_mnist, W.create("ls"), cfg, step_rule=rule)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    w = hist.epochs[0]["weights"]
    assert math.isclose(sum(w.values()), 1.0, rel_tol=1e-5)
    assert torch.allclose(model.alpha, torch.tensor([0.5, 0.5], dtype=torch.float64))


def test_dirichlet_samples_follow_the_concentration():
    torch.manual_seed(0)
    a = C.PamalStep(window=4000, concentration=5.0).sample(3)
    assert a.shape == (4000, 3) and torch.allclose(a.sum(1), torch.ones(4000, dtype=torch.float64))
    # Dir(p·1) on 3 coordinates: Var α_t = (1/3)(2/3) / (3p + 1)
    assert abs(float(a[:, 0].var()) - (2 / 9) / 16) < 2e-3
    with pytest.raises(ValueError, match="window"):
        C.PamalStep(window=0)
    with pytest.raises(ValueError, match="concentration"):
        C.PamalStep(concentration=0)
