"""Section "Trade-off fronts" (mtl.studies.fronts): hypervolume table, order correlations and the F1/F2 verdicts."""
import numpy as np
import pytest

from mtl.fronts import hypervolume
from mtl.studies import fronts as F


def _results(sign: float = 1.0, extra_shift: float = 0.0, seeds=(0, 1, 2)) -> dict:
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 6)
    out = {}
    for s in seeds:
        l1 = 1 + sign * t + 0.01 * rng.random(6)
        l2 = 2 - sign * t + 0.01 * rng.random(6)
        extra = np.stack([0.2 + 0.3 * t, 0.5 - 0.3 * t], 1) - extra_shift
        pamal = np.stack([0.25 + 0.3 * t, 0.55 - 0.3 * t], 1) + 0.001 * s
        ls = np.array([[0.3, 0.3], [0.4, 0.25]])
        out[s] = {"extra": {"points": t.tolist(), "losses": np.stack([l1, l2], 1).tolist(), "errors": extra.tolist()},
                  "pamal": {"points": [[a, 1 - a] for a in t], "losses": pamal.tolist(), "errors": pamal.tolist()},
                  "ls": {"points": [[0.5, 0.5], [0.3, 0.7]], "losses": ls.tolist(), "errors": ls.tolist()}}
    return out


def test_order_aware_curve_supports_f1_and_reversed_contradicts():
    assert F.f1_order_aware(F.order_correlations(_results(+1)))["verdict"] == "supports"
    assert F.f1_order_aware(F.order_correlations(_results(-1)))["verdict"] == "contradicts"


def test_f1_needs_more_than_one_seed():
    assert F.f1_order_aware(F.order_correlations(_results(+1, seeds=(0,))))["verdict"] == "inconclusive"


def test_hypervolumes_match_the_library_and_f2_follows_them():
    r = _results(+1)
    ref = F.reference_point(r, "errors", [1.0, 1.0])
    hv = F.hypervolumes(r, "errors", ref)
    e0 = hv[(hv.seed == 0) & (hv.method == "extra")]["hypervolume"].item()
    assert e0 == pytest.approx(hypervolume(np.asarray(r[0]["extra"]["errors"]), [1.0, 1.0]))
    assert F.f2_hypervolume(hv, ref, "error")["verdict"] == "supports"     # EXTRA's points dominate PaMaL's
    worse = _results(+1, extra_shift=-0.2)
    hv2 = F.hypervolumes(worse, "errors", ref)
    assert F.f2_hypervolume(hv2, ref, "error")["verdict"] == "contradicts"
    table = F.hv_table(hv)
    assert list(table.index) == [F.LABELS[m] for m in F.METHODS] and (table["HV mean ↑"] > 0).all()


def test_auto_reference_point_bounds_every_point():
    r = _results(+1)
    ref = F.reference_point(r, "errors")
    allp = np.concatenate([np.asarray(r[s][m]["errors"]) for s in r for m in F.METHODS])
    assert (allp < ref).all() and ref == pytest.approx(1.1 * allp.max(0))


def test_losses_along_t_long_frame():
    df = F.losses_along_t(_results(+1))
    assert set(df.columns) == {"seed", "t", "task", "loss"} and len(df) == 3 * 6 * 2


def test_multimnist_fronts_returns_all_three_fronts():
    out = F.multimnist_fronts(n_train=32, n_val=16, n_test=16, epochs=1, n_grid=3, n_sweep=2,
                              batch_size=16, device="cpu", max_steps_per_epoch=1)
    assert set(out) == {"extra", "extra_val", "pamal", "ls"}
    assert out["extra"].losses.shape == (3, 2) and out["pamal"].losses.shape == (3, 2)
    assert np.allclose(out["ls"].points, [(1 / 3, 2 / 3), (2 / 3, 1 / 3)])
