"""Non-dominated fronts, the indicators (exact hypervolume, IGD, IGD+) and grid evaluation of curves and simplices."""
import itertools

import numpy as np
import pytest
import torch

import mtl.curves as C
from mtl import fronts as F
from mtl.models import create_model


def hv_inclusion_exclusion(P, ref):
    """Oracle: the exact volume of the union of boxes [p, ref] by inclusion–exclusion."""
    P = np.asarray([p for p in P if (np.asarray(p) < ref).all()])
    total = 0.0
    for k in range(1, len(P) + 1):
        for S in itertools.combinations(range(len(P)), k):
            total += (-1) ** (k + 1) * np.prod(ref - P[list(S)].max(0))
    return total


def test_pareto_mask_and_front():
    P = np.array([[1, 3], [2, 2], [3, 1], [2, 3], [1, 3], [4, 4]])
    assert F.pareto_mask(P).tolist() == [True, True, True, False, True, False]   # duplicates both kept
    assert F.pareto_front(P).tolist() == [[1, 3], [1, 3], [2, 2], [3, 1]]


def test_hypervolume_2d_known_values():
    assert F.hypervolume([[1, 2], [2, 1]], [3, 3]) == 3.0
    assert F.hypervolume([[0.5, 0.5]], [1, 1]) == 0.25
    assert F.hypervolume([[1, 2], [2, 1], [2.5, 2.5]], [3, 3]) == 3.0             # dominated point adds nothing
    assert F.hypervolume([[3, 0], [0, 4]], [3, 3]) == 0.0                         # not better than ref
    assert F.hypervolume(np.zeros((0, 2)), [1, 1]) == 0.0


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("m", [2, 3, 4])
def test_hypervolume_matches_inclusion_exclusion(seed, m):
    rng = np.random.default_rng(seed)
    P = rng.uniform(0, 1, size=(6, m))
    ref = np.full(m, 1.05)
    assert np.isclose(F.hypervolume(P, ref), hv_inclusion_exclusion(P, ref), rtol=1e-10, atol=1e-12)
    assert np.isclose(F.hypervolume(P[::-1], ref), F.hypervolume(P, ref))


def test_hypervolume_rejects_bad_input():
    with pytest.raises(ValueError, match="objectives"):
        F.hypervolume([[1, 2, 3]], [4, 4])
    with pytest.raises(ValueError, match="non-finite"):
        F.hypervolume([[np.nan, 1]], [2, 2])
    with pytest.raises(ValueError, match="ref"):
        F.hypervolume([[1, 1]], [np.inf, 2])


# ----------------------------------------------------------------------------- IGD, IGD+ (pymoo), by hand
Z3 = [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]                                         # a reference front


def test_igd_and_igd_plus_hand_computed():
    # the two end points: distances 0, √0.5, 0 for IGD; for IGD+ only the worse coordinates count:
    # from (0.5, 0.5) to (0, 1) or (1, 0) that is 0.5
    assert np.isclose(F.igd([[0, 1], [1, 0]], Z3), np.sqrt(0.5) / 3)
    assert np.isclose(F.igd_plus([[0, 1], [1, 0]], Z3), 0.5 / 3)
    # one point dominating the whole reference front: IGD sees distances, IGD+ sees none
    assert np.isclose(F.igd([[0, 0]], Z3), (1 + np.sqrt(0.5) + 1) / 3)
    assert F.igd_plus([[0, 0]], Z3) == 0.0
    # one point worse than all of it: d⁺ = d, so IGD+ = IGD
    assert np.isclose(F.igd_plus([[1, 1]], Z3), (1 + np.sqrt(0.5) + 1) / 3)
    assert np.isclose(F.igd([[1, 1]], Z3), F.igd_plus([[1, 1]], Z3))
    assert F.igd(Z3, Z3) == F.igd_plus(Z3, Z3) == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_igd_plus_is_at_most_igd_and_weakly_pareto_compliant(seed):
    rng = np.random.default_rng(seed)
    Z = F.pareto_front(rng.uniform(0, 1, size=(20, 3)))
    A = rng.uniform(0, 1, size=(8, 3))
    B = A + rng.uniform(0, 0.3, size=A.shape)                                     # every b dominated by its a
    assert F.igd_plus(A, Z) <= F.igd(A, Z) + 1e-12
    assert F.igd_plus(A, Z) <= F.igd_plus(B, Z) + 1e-12


def test_front_indicators_against_the_union_front():
    sets = {"ends": [[0, 1], [1, 0]], "middle": [[0.5, 0.5]], "worse": [[1, 1]]}
    t = F.front_indicators(sets, ref=[2, 2])
    assert list(t.index) == ["ends", "middle", "worse"] and list(t.columns) == ["hypervolume", "IGD", "IGD+"]
    assert np.isclose(t.loc["ends", "hypervolume"], 3.0) and np.isclose(t.loc["middle", "hypervolume"], 2.25)
    assert np.isclose(t.loc["ends", "IGD"], np.sqrt(0.5) / 3)                      # union front = Z3
    assert np.isclose(t.loc["middle", "IGD"], 2 * np.sqrt(0.5) / 3)
    assert np.isclose(t.loc["worse", "IGD+"], (1 + np.sqrt(0.5) + 1) / 3)
    given = F.front_indicators(sets, ref=[2, 2], reference_front=[[0, 0]])
    assert np.isclose(given.loc["middle", "IGD"], np.sqrt(0.5))


def test_igd_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one point"):
        F.igd(np.zeros((0, 2)), Z3)
    with pytest.raises(ValueError, match="objectives"):
        F.igd_plus([[1, 2, 3]], Z3)
    with pytest.raises(ValueError, match="at least one point set"):
        F.front_indicators({}, ref=[1, 1])


def test_grid_evaluation_of_a_simplex_hits_its_members(tiny_mnist):
    torch.manual_seed(0)
    members = [create_model("hps", "lenet", tiny_mnist.tasks) for _ in range(2)]
    model = C.simplex_model(members)
    ev = F.evaluate_grid(model, tiny_mnist, C.simplex_grid(2, 3), split="val", batch_size=8)
    assert ev.losses.shape == (3, 2) and len(ev.metrics) == 3 and ev.tasks == ["left", "right"]
    for i, member in ((0, members[0]), (2, members[1])):
        losses, metrics = F.evaluate_at(member, tiny_mnist, "val", batch_size=32)
        np.testing.assert_allclose(ev.losses[i], losses, rtol=1e-5)
        assert metrics == ev.metrics[i]
    err = ev.objectives("error", tiny_mnist)
    assert np.allclose(err[:, 0], [1 - m["left"]["acc"] for m in ev.metrics])
    assert F.best_point(ev) == ev.points[int(np.argmin(ev.losses.mean(1)))]
    with pytest.raises(ValueError, match="data bundle"):
        ev.objectives("error")


def test_grid_evaluation_of_a_curve_with_bn_recalibration(tiny_scenes):
    data = tiny_scenes.select(["segmentation", "depth"])
    torch.manual_seed(0)
    ends = [create_model("hps", "segnet", data.tasks, backbone_kw=dict(width=4, stages=1, convs=1)) for _ in range(2)]
    curve = C.curve_model(ends, "nurbs", 4)
    ev = F.evaluate_grid(curve, data, [0.0, 0.5], split="val", batch_size=4, bn_split="train")
    assert ev.losses.shape == (2, 2) and np.isfinite(ev.losses).all() and curve.t == 0.5
