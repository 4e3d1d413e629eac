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


def test_c14_supports_when_four_is_best():
    r = _result({3: [5.0, 6.0, 5.5], 4: [1.0, 1.2, 0.9], 5: [3.0, 3.2, 3.1], 6: [4.0, 4.1, 4.3]})
    assert C.c14_count(r)["verdict"] == "supports"


def test_c14_contradicts_when_another_count_is_clearly_better():
    r = _result({3: [0.0, 0.1, -0.1], 4: [2.0, 2.2, 1.9], 5: [3.0, 3.2, 3.1], 6: [4.0, 4.1, 4.3]})
    assert C.c14_count(r)["verdict"] == "contradicts"


def test_c14_needs_four_points():
    with pytest.raises(ValueError, match="4 control points"):
        C.c14_count(_result({3: [1.0, 2.0], 5: [1.0, 2.0]}))


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
