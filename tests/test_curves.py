"""Curve families (seed 000 Eq. 4–5, PaMaL) and the functional weight-space model."""
import copy

import numpy as np
import pytest
import torch
from scipy.interpolate import BSpline
from torch import nn

import mtl.curves as C
from mtl.models.base import MultiTaskModel
from mtl.registry import UnknownNameError

T_GRID = torch.cat([torch.linspace(0, 1, 41), torch.tensor([0.5 - 1e-9, 0.5 + 1e-9, 1 - 1e-9])])


def curve_families():
    fams = [C.create("nurbs", n) for n in (2, 3, 4, 5, 6, 7)]
    fams += [C.create("nurbs", 5, weight_init="ones"), C.create("nurbs", 4, positive=False)]
    fams += [C.create("bezier", n) for n in (2, 3, 5)] + [C.create("polychain", n) for n in (2, 3, 5)]
    return fams


def tiny_net(seed=0, bn=True):
    """A MultiTaskModel with BatchNorm in the encoder and two linear heads."""
    torch.manual_seed(seed)
    layers = [nn.Linear(4, 6)] + ([nn.BatchNorm1d(6)] if bn else []) + [nn.ReLU()]
    return MultiTaskModel(nn.Sequential(*layers), {"a": nn.Linear(6, 2), "b": nn.Linear(6, 3)})


def test_registry_lists_the_four_families():
    assert C.names() == ["bezier", "nurbs", "polychain", "simplex"]
    with pytest.raises(UnknownNameError, match="nurbs"):
        C.create("bspline", 3)


@pytest.mark.parametrize("fam", curve_families(), ids=repr)
def test_partition_of_unity_and_end_points(fam):
    c = fam(T_GRID).detach().double()                                # [m, n]
    assert torch.allclose(c.sum(1), torch.ones(len(T_GRID), dtype=torch.float64), atol=1e-6)
    if getattr(fam, "positive", True):
        assert (c >= -1e-12).all()
    n = fam.n_points
    assert torch.allclose(fam(0.0).double(), torch.eye(n, dtype=torch.float64)[0], atol=1e-7)
    assert torch.equal(fam(1.0).double(), torch.eye(n, dtype=torch.float64)[-1])


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7])
def test_cox_de_boor_matches_scipy(n):
    p = min(3, n - 1)
    knots = C.clamped_knots(n, p)
    t = torch.linspace(0, 1, 23, dtype=torch.float64)
    ours = C.bspline_basis(t, knots, p)                              # [m, n]
    ref = BSpline(knots.numpy(), np.eye(n), p)(t.numpy())            # scipy: closed last span
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_equal_rational_weights_reduce_to_the_b_spline(n):
    fam = C.create("nurbs", n)
    with torch.no_grad():
        fam.raw_weights.fill_(2.7)                                   # all w equal
    t = torch.linspace(0, 1, 17, dtype=torch.float64)
    expected = BSpline(C.clamped_knots(n, fam.degree).numpy(), np.eye(n), fam.degree)(t.numpy())
    np.testing.assert_allclose(fam(t).detach().double().numpy(), expected, atol=1e-6)


def test_bezier_is_nurbs_with_bezier_knots_and_equal_weights():
    for n in (3, 4):
        nurbs = C.create("nurbs", n, degree=n - 1, weight_init="ones")
        torch.testing.assert_close(nurbs(T_GRID).double(), C.create("bezier", n)(T_GRID), atol=1e-6, rtol=0)


def test_five_point_nurbs_midpoint_uses_only_interior_points():
    fam = C.create("nurbs", 5, weight_init="ones")
    assert torch.allclose(fam(0.5), torch.tensor([0, 0.25, 0.5, 0.25, 0]))
    points = [tiny_net(s) for s in range(5)]
    model = C.CurveModel(points, C.create("nurbs", 5)).eval()      # random rational weights
    x = torch.randn(8, 4)
    before = model(x)
    with torch.no_grad():
        for p in list(model.points[0].parameters()) + list(model.points[4].parameters()):
            p.add_(torch.randn_like(p))
    after = model(x)
    for k in before:
        torch.testing.assert_close(before[k], after[k])
    model.t = 0.3                                                    # off the midpoint the ends matter
    assert not torch.allclose(model(x)["a"], before["a"])


def test_code_variants_degree_three_with_three_points_and_zero_network_at_one():
    code = C.create("nurbs", 3, degree=3)                          # the code's hard-coded cubic
    assert code.knots.tolist() == [0, 0, 0, 0, 1, 1, 1]
    basis = C.bspline_basis(torch.tensor([0.4], dtype=torch.float64), code.knots, 3)
    assert basis.sum() < 0.99                                        # not a partition of unity ...
    assert torch.allclose(code(torch.tensor([0.4])).sum(), torch.tensor(1.0))   # ... rational form still is
    raw = C.create("nurbs", 4, positive=False, clamp_end=False)
    assert torch.equal(raw(1.0), torch.zeros(4))                    # the official code's t = 1


def test_polychain_hits_its_points_and_simplex_validates():
    chain = C.create("polychain", 5)
    for i in range(5):
        assert torch.allclose(chain(i / 4).float(), torch.eye(5)[i])
    simplex = C.create("simplex", 3)
    assert torch.allclose(simplex([0.2, 0.3, 0.5]), torch.tensor([0.2, 0.3, 0.5]))
    for bad in ([0.5, 0.6, 0.1], [1.2, -0.2, 0.0], [0.5, 0.5]):
        with pytest.raises(ValueError, match="α"):
            simplex(bad)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        chain(1.5)
    with pytest.raises(ValueError, match="n_points"):
        C.create("bezier", 1)
    with pytest.raises(ValueError, match="degree"):
        C.create("nurbs", 3, degree=4)
    with pytest.raises(ValueError, match="weight_init"):
        C.create("nurbs", 3, weight_init="normal")


# ----------------------------------------------------------------------------- the model


def test_curve_interpolates_its_end_networks():
    e0, e1 = tiny_net(0), tiny_net(1)
    model = C.curve_model([e0, e1], "nurbs", 4).train()
    x = torch.randn(8, 4)
    for t, net in ((0.0, e0), (1.0, e1)):
        model.t = t
        torch.testing.assert_close(model(x)["b"], net.train()(x)["b"])
        torch.testing.assert_close(model.decode(model.encode(x))["a"], net(x)["a"])


def test_gradients_reach_exactly_the_trainable_control_points():
    model = C.curve_model([tiny_net(0), tiny_net(1)], "nurbs", 5)
    assert model.trainable_points() == [1, 2, 3]
    model.t = 0.37                                                   # every interior coefficient > 0
    out = model(torch.randn(8, 4))
    (out["a"].sum() + out["b"].pow(2).sum()).backward()
    for i, pt in enumerate(model.points):
        for name, p in pt.named_parameters():
            if i in (0, 4):
                assert p.grad is None and not p.requires_grad, (i, name)
            else:
                assert p.grad is not None and p.grad.abs().sum() > 0, (i, name)
    assert model.family.raw_weights.grad is not None and model.family.raw_weights.grad.abs().sum() > 0
    shared = {id(p) for p in model.shared_parameters()}
    expected = {id(p) for i in (1, 2, 3) for p in model.points[i].encoder.parameters()} | {id(model.family.raw_weights)}
    assert shared == expected
    assert len(model.task_parameters("a")) == 3 * 2


def test_linear_init_and_point_context():
    e0, e1 = tiny_net(0), tiny_net(1)
    model = C.curve_model([e0, e1], "bezier", 3, init="linear")
    mid = dict(model.points[1].named_parameters())
    for name, p in e0.named_parameters():
        torch.testing.assert_close(mid[name], 0.5 * (p + dict(e1.named_parameters())[name]))
    assert model.t == 0.5
    with model.at(0.2):
        assert model.t == 0.2
    assert model.t == 0.5
    with pytest.raises(ValueError, match="single point"):
        model.t = [0.1, 0.2]
    with pytest.raises(ValueError, match="two end-point"):
        C.curve_model([e0], "nurbs", 3)


def test_simplex_vertices_are_the_members():
    members = [tiny_net(s) for s in range(3)]
    model = C.simplex_model(members).train()
    x = torch.randn(8, 4)
    assert torch.allclose(model.alpha, torch.full((3,), 1 / 3, dtype=torch.float64))
    model.alpha = [0.0, 1.0, 0.0]
    torch.testing.assert_close(model(x)["a"], members[1].train()(x)["a"])
    with pytest.raises(ValueError, match="shape"):
        model.alpha = [0.5, 0.5]


def test_state_dict_round_trip_reproduces_the_curve():
    model = C.curve_model([tiny_net(0), tiny_net(1)], "nurbs", 4).eval()
    clone = C.curve_model([tiny_net(2), tiny_net(3)], "nurbs", 4).eval()
    clone.load_state_dict(model.state_dict())
    x = torch.randn(5, 4)
    model.t = clone.t = 0.61
    torch.testing.assert_close(model(x)["a"], clone(x)["a"])


def test_recalibrate_bn_is_a_cumulative_average_at_the_point():
    model = C.curve_model([tiny_net(0), tiny_net(1)], "nurbs", 3)
    xs = [torch.randn(n, 4) * 3 + 1 for n in (16, 16, 5)]           # an uneven last batch
    ends = copy.deepcopy([model.points[0].state_dict(), model.points[2].state_dict()])
    C.recalibrate_bn(model, [(x, {}) for x in xs], 0.25)
    assert model.t == 0.25 and model.training
    coef = model.coefficients()
    W = sum(c * dict(p.named_parameters())["encoder.0.weight"] for c, p in zip(coef, model.points))
    b = sum(c * dict(p.named_parameters())["encoder.0.bias"] for c, p in zip(coef, model.points))
    h = [x @ W.T + b for x in xs]                                    # pre-BN activations per batch
    bn = model.running_stat_modules()[0]
    torch.testing.assert_close(bn.running_mean, torch.cat(h).mean(0).detach(), atol=1e-5, rtol=1e-5)
    var = sum(len(z) * z.var(0, unbiased=True) for z in h) / sum(len(z) for z in h)
    torch.testing.assert_close(bn.running_var, var.detach(), atol=1e-4, rtol=1e-4)
    assert bn.momentum == 0.1
    for sd, i in zip(ends, (0, 2)):                                 # the stored networks' stats are untouched
        for k, v in model.points[i].state_dict().items():
            assert torch.equal(v, sd[k])
    plain = C.curve_model([tiny_net(0, bn=False), tiny_net(1, bn=False)], "nurbs", 3)
    assert C.recalibrate_bn(plain, [(x, {}) for x in xs]) is plain
