"""Properties of the control-points section's logic (mtl.studies.controlpoints): geometry and the C14 verdict."""
import numpy as np
import pytest
import torch

from mtl.curves import curve_model
from mtl.data import load
from mtl.models import create_model
from mtl.studies import controlpoints as C


def _result(deltas: dict):
    """A fake result whose Δm at t = ½ per count and seed is ``deltas[n][seed]`` (one metric, drop)."""
    base = {"depth": {"abs_err": 1.0}}
    curves = {n: [{"metrics": {"t": [0.0, 0.5, 1.0],
                               "test": {"metrics": [None, {"depth": {"abs_err": 1 + d / 100}}, None]}}}
                  for d in ds] for n, ds in deltas.items()}
    return {"counts": list(deltas), "seeds": list(range(len(next(iter(deltas.values()))))), "curves": curves,
            "base": base, "dirs": {"depth": {"abs_err": False}}}


def test_seed_deltas_use_the_drop_convention():
    r = _result({3: [5.0, 6.0], 4: [1.0, 2.0]})
    assert C.seed_deltas(r, 3) == pytest.approx([5.0, 6.0])


RULES = {"C14_three": {"kind": "superiority", "direction": "greater", "floor": 1.0},
         "C14_more": {"kind": "non-inferiority", "direction": "greater", "margin": 1.0}}
PASS = {"passed": True, "detail": "synthetic runs, well above trivial"}
FAIL = {"passed": False, "detail": "0/3 runs beat the trivial predictor"}


def _counts(minus_four: dict, seeds=5, noise=0.1, seed=0):
    """Δm per count: Δm(4) + ``minus_four[n]`` + noise, over ``seeds`` seeds."""
    rng = np.random.default_rng(seed)
    d4 = 2 + rng.normal(0, 1, seeds)
    return _result({4: list(d4), **{n: list(d4 + d + rng.normal(0, noise, seeds)) for n, d in minus_four.items()}})


def test_c14_each_way_and_the_gate():
    best = {3: 4.0, 5: 0.5, 6: 0.0}
    assert C.c14_count(_counts(best), rules=RULES, adequacy=PASS)["verdict"] == "supports"
    assert C.c14_count(_counts({3: 4.0, 5: -3.0, 6: 0.0}), rules=RULES, adequacy=PASS)["verdict"] == "contradicts"
    assert C.c14_count(_counts({3: -3.0, 5: 0.5, 6: 0.0}), rules=RULES, adequacy=PASS)["verdict"] == "contradicts"
    inc = C.c14_count(_counts(best, noise=4.0), rules=RULES, adequacy=PASS)
    assert inc["verdict"] == "inconclusive"
    un = C.c14_count(_counts(best), rules=RULES, adequacy=FAIL, scale_needed="more epochs")
    assert un["verdict"] == "untestable" and un["rule_verdict"] == "supports"
    assert [p["part"] for p in un["parts"]] == ["3 worse than 4", "5 no better than 4", "6 no better than 4"]


def test_c14_needs_its_rules():
    with pytest.raises(ValueError, match="preregistered"):
        C.c14_count(_counts({3: 1.0}), rules={}, adequacy=PASS)


@pytest.mark.parametrize("seeds", [3, 5])
def test_c14_null_simulation(seeds):
    """3 = 4 and 5, 6 exactly at the margin (better than 4 by 1 point): false supports ≤ 5 % + 3 MC SE;
    3 = 4 and 5, 6 equal to 4: false contradicts ≤ 5 % + 3 MC SE."""
    rng = np.random.default_rng(4)
    rules = {k: C.ST.Rule.from_dict(r) for k, r in RULES.items()}
    margin, equal = [], []
    for _ in range(400):
        e = {n: rng.normal(0, 1.5, seeds) for n in (3, 5, 6)}
        margin.append(C.c14_decide({4: np.zeros(seeds), 3: e[3], 5: e[5] - 1.0, 6: e[6] - 1.0}, rules)[0].verdict)
        equal.append(C.c14_decide({4: np.zeros(seeds), **e}, rules)[0].verdict)
    bound = 0.05 + 3 * np.sqrt(0.05 * 0.95 / 400)
    assert np.mean(np.asarray(margin) == "supports") <= bound
    assert np.mean(np.asarray(equal) == "contradicts") <= bound


def test_c14_needs_four_points():
    with pytest.raises(ValueError, match="4 control points"):
        C.c14_count(_result({3: [1.0, 2.0], 5: [1.0, 2.0]}), rules=RULES)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    data = load("scenes", tasks=["segmentation", "depth"], height=16, width=24, train_scenes=2, val_scenes=1,
                test_scenes=1, scans_per_scene=2)
    ends = [create_model("hps", "segnet", data.tasks, backbone_kw=dict(width=4, stages=2, convs=1)) for _ in range(2)]
    return data, ends


def test_straight_curve_has_length_ratio_one(tiny):
    _, ends = tiny
    assert C.length_ratio(curve_model(ends, "nurbs", 4, init="linear")) == pytest.approx(1.0, abs=1e-4)
    assert C.length_ratio(curve_model(ends, "nurbs", 4, init="random")) > 1.0


def test_plane_is_orthonormal_and_the_landscape_passes_through_the_ends(tiny):
    data, ends = tiny
    curve = curve_model(ends, "nurbs", 4, init="random")
    o, e1, e2 = C.plane(curve)
    assert float(e1 @ e1) == pytest.approx(1.0, abs=1e-5) and float(e2 @ e2) == pytest.approx(1.0, abs=1e-5)
    assert abs(float(e1 @ e2)) < 1e-5
    L = C.landscape(curve, data, grid=3, batch_size=2)
    assert L["loss"].shape == (3, 3) and np.isfinite(L["loss"]).all()
    xy = L["curve_xy"]
    assert xy[0] == pytest.approx([0.0, 0.0], abs=1e-4)          # θ(0) is the origin
    assert xy[-1][1] == pytest.approx(0.0, abs=1e-3)              # θ(1) lies on the first axis
    assert L["x"].min() < 0 < L["x"].max()
