"""Section "Gradient norms and conflicts" (mtl.studies.gradients): probe tables and the C8/C9 verdicts."""
import numpy as np
import pytest

from mtl import profiles
from mtl.experiment import train_run
from mtl.stats import Rule
from mtl.studies import gradients as G

TASKS = ["a", "b"]
DIRS = {"a": {"acc": True}, "b": {"acc": True}}
BASE = {"a": {"acc": 0.5}, "b": {"acc": 0.5}}


def _probe(epoch, step, norms, cos_u, pair, weights=None):
    return {"probe": "gradients", "epoch": epoch, "step": step, "grad_norm": dict(zip(TASKS, norms)),
            "cos_update": dict(zip(TASKS, cos_u)), "cos": [[1, pair], [pair, 1]],
            "dot": [[norms[0] ** 2, pair * norms[0] * norms[1]], [pair * norms[0] * norms[1], norms[1] ** 2]]}


def _record(acc_a, acc_b, spread, pair, norms=(1.0, 1.0), weights=(1.0, 1.0), early_pair=None):
    cos_u = (0.5 + spread / 2, 0.5 - spread / 2)
    hist = [{"epoch": e, "weights": dict(zip(TASKS, weights)),
             "probes": [_probe(e, e, norms, cos_u, pair if (e or early_pair is None) else early_pair)]}
            for e in range(2)]
    return {"metrics": {"a": {"acc": acc_a}, "b": {"acc": acc_b}}, "history": hist, "info": {"train_time": 2.0}}


def test_phase_matrix_and_mean_weights():
    r = _record(0.5, 0.5, 0.0, 0.3, early_pair=-0.4, weights=(2.0, 4.0))
    assert G.phase_matrix([r], "cos", "early")[0, 1] == pytest.approx(-0.4)
    assert G.phase_matrix([r], "cos", "late")[0, 1] == pytest.approx(0.3)
    assert G.mean_weights([r, r]) == {"a": 2.0, "b": 4.0}
    with pytest.raises(ValueError, match="phase"):
        G.phase_matrix([r], "cos", "middle")


def test_run_stats_measures_spread_and_conflict():
    s = G.run_stats(_record(0.6, 0.6, 0.4, -0.2, norms=(1.0, np.e)), BASE, DIRS)
    assert s["delta_m"] == pytest.approx(20.0)
    assert s["cos_update_spread"] == pytest.approx(0.2)
    assert s["pairwise_cos"] == pytest.approx(-0.2)
    assert s["norm_log_ratio"] == pytest.approx(1.0)


RULES = profiles.load("gradients", "cpu")["rules"]
TRIVIAL = {"a": {"acc": 0.1}, "b": {"acc": 0.1}}


def _res(probed, best=(1.0, 4.0), grid_cost=10.0, trivial=TRIVIAL):
    return {"probed": probed, "base": BASE, "dirs": DIRS, "best_weights": dict(zip(TASKS, best)),
            "grid_cost_s": grid_cost, "setting": "synthetic", "trivial": trivial}


def _flat(rec, epochs=5):
    """``rec`` with a flat validation curve over ``epochs`` epochs (passes the plateau test)."""
    h0 = rec["history"][0]
    val = {t: dict(m) for t, m in rec["metrics"].items()}
    return {**rec, "history": [{**h0, "epoch": e, "val": val} for e in range(epochs)]}


def _c8_probed(sign, seeds=4, methods=5, seed=0):
    """Methods whose Δm falls (sign −1) or rises (+1) with the spread of cosines in every seed, and
    whose pairwise cosine is rank-uncorrelated with Δm (ρ = 0 in every seed)."""
    rng = np.random.default_rng(seed)
    pair_rank = [2, 5, 3, 1, 4]                          # ρ with 1..5 is exactly 0
    probed = {}
    for m in range(methods):
        recs = []
        for s in range(seeds):
            acc = 0.5 + 0.02 * m + 0.001 * rng.standard_normal()
            spread = 0.05 * (m if sign > 0 else methods - m) + 0.001 * s
            recs.append(_flat(_record(acc, acc, spread, -0.5 + 0.1 * pair_rank[m])))
        probed[f"m{m}"] = recs
    return probed


def test_c8_is_decided_within_seed_over_methods_each_way():
    v = G.c8_cosine_not_conflict(_res(_c8_probed(-1)), RULES)
    assert v["verdict"] == "supports" and v["adequacy"]["passed"], v
    assert v["rule"]["combine"] == "all" and [p["kind"] for p in v["rule"]["parts"]] == ["correlation", "equivalence"]
    assert G.c8_cosine_not_conflict(_res(_c8_probed(+1)), RULES)["verdict"] == "contradicts"
    rng = np.random.default_rng(3)
    noisy = {f"m{m}": [_flat(_record(*(0.5 + 0.05 * rng.random(2)), rng.random() * 0.3, rng.uniform(-0.5, 0.5)))
                       for _ in range(3)] for m in range(5)}
    assert G.c8_cosine_not_conflict(_res(noisy), RULES)["verdict"] == "inconclusive"
    # the gate: metrics no better than the trivial predictor make the claim untestable, whatever the rule says
    v = G.c8_cosine_not_conflict(_res(_c8_probed(-1), trivial={"a": {"acc": 0.6}, "b": {"acc": 0.6}}), RULES)
    assert v["verdict"] == "untestable" and v["rule_verdict"] == "supports" and not v["adequacy"]["passed"]
    assert v["scale_needed"]


def _rates(verdicts):
    v = np.asarray(verdicts)
    n = len(v)
    bound = 0.05 + 3 * np.sqrt(0.05 * 0.95 / n)
    return (v == "supports").mean(), (v == "contradicts").mean(), bound


def test_c8_null_simulation():
    """No association of Δm with either statistic: false supports and false contradicts ≤ 5 % + 3 MC SE."""
    rng = np.random.default_rng(1)
    r = {k: Rule.from_dict(RULES[k]) for k in ("C8_spread", "C8_pairwise")}
    out = [G.decide_c8(*rng.standard_normal((3, 3, 5)), r).verdict for _ in range(400)]
    sup, con, bound = _rates(out)
    assert sup <= bound and con <= bound, (sup, con)


def _c9_rec(tasks_acc, norms, weights=None):
    t4 = ["a", "b", "c", "d"]
    hist = [{"epoch": 0, "weights": dict(zip(t4, weights)) if weights else {},
             "probes": [{"probe": "gradients", "epoch": 0, "step": 0, "grad_norm": dict(zip(t4, norms))}]}]
    return _flat({"metrics": {t: {"acc": x} for t, x in zip(t4, tasks_acc)}, "history": hist,
                  "info": {"train_time": 2.0}})


D4 = {t: {"acc": True} for t in "abcd"}
B4 = {t: {"acc": 0.5} for t in "abcd"}
T4 = {t: {"acc": 0.1} for t in "abcd"}


def _c9_res(avg_shift=0.0, best=(1.0, 2.0, 4.0, 8.0), an_w=(1.0, 2.5, 3.0, 9.0), norm_sign=1):
    rng = np.random.default_rng(0)
    uni = [_c9_rec([0.46 + 0.03 * k * norm_sign + 0.002 * s for k in range(4)], [np.exp(k) for k in range(4)])
           for s in range(4)]
    grid = [_c9_rec([0.55 + 0.001 * s] * 4, [1.0] * 4) for s in range(4)]
    avg = [_c9_rec([0.55 + avg_shift + 0.001 * s + 0.0005 * rng.standard_normal()] * 4, [1.0] * 4,
                   [w * (1 + 0.01 * s) for w in an_w]) for s in range(4)]
    return {"probed": {"Uniform": uni, "Grid Search": grid, "AvgNorm": avg}, "base": B4, "dirs": D4,
            "best_weights": dict(zip("abcd", best)), "grid_cost_s": 20.0, "setting": "synthetic", "trivial": T4}


def test_c9_is_decided_each_way_and_a_tied_grid_is_untestable():
    v = G.c9_norm_imbalance(_c9_res(), RULES)
    assert v["verdict"] == "supports" and v["adequacy"]["passed"], v
    assert [p["kind"] for p in v["rule"]["parts"]] == ["correlation", "non-inferiority", "correlation"]
    assert G.c9_norm_imbalance(_c9_res(avg_shift=-0.2), RULES)["verdict"] == "contradicts"   # Δm far below the grid
    assert G.c9_norm_imbalance(_c9_res(norm_sign=-1), RULES)["verdict"] == "contradicts"      # big-norm tasks lag
    v = G.c9_norm_imbalance(_c9_res(avg_shift=-0.005), RULES)          # −1 Δm point: at the margin, undecided
    assert v["verdict"] == "inconclusive", v
    v = G.c9_norm_imbalance(_c9_res(best=(1.0, 1.0, 1.0, 4.0)), RULES)
    assert v["verdict"] == "untestable" and "undecidable" in v["evidence"] and "12 points" in v["scale_needed"]
    v = G.c9_norm_imbalance({**_c9_res(), "trivial": {t: {"acc": 0.9} for t in "abcd"}}, RULES)
    assert v["verdict"] == "untestable" and v["rule_verdict"] == "supports"


def test_c9_null_simulation():
    """No norm–improvement or weight association and AvgNorm exactly one margin below the grid."""
    rng = np.random.default_rng(2)
    r = {k: Rule.from_dict(RULES[k]) for k in ("C9_norms", "C9_avgnorm", "C9_weights")}
    m = r["C9_avgnorm"].margin
    out = []
    for _ in range(400):
        grid = rng.standard_normal(3)
        c, _, _ = G.decide_c9(np.exp(rng.standard_normal((3, 4))), rng.standard_normal((3, 4)),
                              grid - m + rng.standard_normal(3), grid, dict(zip("abcd", [1.0, 2.0, 4.0, 8.0])),
                              rng.random((3, 4)), True, r)
        out.append(c.verdict)
    sup, con, bound = _rates(out)
    assert sup <= bound and con <= bound, (sup, con)


def test_train_run_records_probes_from_the_spec(tmp_path):
    spec = {"name": "p", "dataset": "multimnist", "dataset_kw": {"n_train": 64, "n_val": 32, "n_test": 32},
            "backbone": "lenet", "weighting": "avgnorm", "probes": {"every": 1},
            "train": {"epochs": 1, "batch_size": 32}}
    rec = train_run(tmp_path, spec)
    probes = rec["history"][0]["probes"]
    assert len(probes) == 2 and set(probes[0]["grad_norm"]) == {"left", "right"}
    assert np.asarray(probes[0]["cos"]).shape == (2, 2)
    with pytest.raises(ValueError, match="every"):
        train_run(tmp_path, {**spec, "name": "bad", "probes": {"every": 0}})
