"""Section "Trade-off fronts" (mtl.studies.fronts): hypervolume table, order correlations and the F1/F2 verdicts."""
import numpy as np
import pytest

from mtl import stats as ST
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


RULES = {"F1_order": {"kind": "correlation", "direction": "greater", "floor": 0.5},
         "F2_hv": {"kind": "non-inferiority", "direction": "greater", "margin": 0.01}}
PASS = {"passed": True, "detail": "synthetic runs, well above trivial"}
FAIL = {"passed": False, "detail": "no validation history"}
RS = {k: ST.Rule.from_dict(v) for k, v in RULES.items()}


def test_f1_rule_each_way_but_the_verdict_is_untestable_without_the_control():
    up, down = F.f1_inputs(_results(+1)), F.f1_inputs(_results(-1))
    assert F.f1_decide(up, RS).verdict == "supports"
    assert F.f1_decide(down, RS).verdict == "contradicts"
    rng = np.random.default_rng(0)
    flat = (up[0], rng.normal(size=up[1].shape), rng.normal(size=up[2].shape))
    assert F.f1_decide(flat, RS).verdict == "inconclusive"
    for gate in (PASS, FAIL):
        v = F.f1_order_aware(_results(+1), RULES, gate)
        assert v["verdict"] == "untestable" and v["rule_verdict"] == "supports"
        assert "α = 0" in v["evidence"] and "needs new runs" in v["scale_needed"]


def test_f1_null_simulation():
    """Losses unrelated to t (5 seeds, 11 points): false supports / contradicts ≤ 5 % + 3 MC SE."""
    rng = np.random.default_rng(6)
    t = np.tile(np.linspace(0, 1, 11), (5, 1))
    v = np.array([F.f1_decide((t, rng.normal(size=t.shape), rng.normal(size=t.shape)), RS).verdict
                  for _ in range(400)])
    bound = 0.05 + 3 * np.sqrt(0.05 * 0.95 / 400)
    assert np.mean(v == "supports") <= bound and np.mean(v == "contradicts") <= bound


def test_hypervolumes_match_the_library_and_f2_follows_them():
    r = _results(+1)
    ref = F.reference_point(r, "errors", [1.0, 1.0])
    hv = F.hypervolumes(r, "errors", ref)
    e0 = hv[(hv.seed == 0) & (hv.method == "extra")]["hypervolume"].item()
    assert e0 == pytest.approx(hypervolume(np.asarray(r[0]["extra"]["errors"]), [1.0, 1.0]))
    assert F.f2_hypervolume(hv, ref, "error", RULES, PASS)["verdict"] == "supports"     # EXTRA's points dominate
    hv2 = F.hypervolumes(_results(+1, extra_shift=-0.2), "errors", ref)
    assert F.f2_hypervolume(hv2, ref, "error", RULES, PASS)["verdict"] == "contradicts"
    un = F.f2_hypervolume(hv, ref, "error", RULES, FAIL, scale_needed="record validation curves")
    assert un["verdict"] == "untestable" and un["rule_verdict"] == "supports"
    table = F.hv_table(hv)
    assert list(table.index) == [F.LABELS[m] for m in F.METHODS] and (table["HV mean ↑"] > 0).all()


@pytest.mark.parametrize("seeds", [3, 5])
def test_f2_null_simulation_at_the_margin(seeds):
    """EXTRA worse than PaMaL by exactly the margin: false supports ≤ 5 % + 3 MC SE; equal: false
    contradicts ≤ 5 % + 3 MC SE."""
    rng = np.random.default_rng(7)
    at = [F.f2_decide(0.5 - 0.01 + rng.normal(0, 0.02, seeds), np.full(seeds, 0.5), RS["F2_hv"]).verdict
          for _ in range(400)]
    eq = [F.f2_decide(0.5 + rng.normal(0, 0.02, seeds), np.full(seeds, 0.5), RS["F2_hv"]).verdict for _ in range(400)]
    bound = 0.05 + 3 * np.sqrt(0.05 * 0.95 / 400)
    assert np.mean(np.asarray(at) == "supports") <= bound and np.mean(np.asarray(eq) == "contradicts") <= bound


def test_the_gate_fails_points_without_a_validation_history(monkeypatch):
    monkeypatch.setattr(F.X, "gate_reference", lambda spec, out=None: ({"left": {"acc": 0.1}, "right": {"acc": 0.1}},
                                                                       {"left": {"acc": True}, "right": {"acc": True}}))
    r = _results(+1)
    g = F.gate(r, {"n_train": 8, "n_val": 4, "n_test": 4})
    assert not g.passed and "no validation history" in g.detail and "beat the trivial predictor" in g.detail


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
