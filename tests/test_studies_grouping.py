"""Properties of the task-grouping section's logic (mtl.studies.grouping): ARI, roles, C11 verdict."""
import numpy as np
import pandas as pd
import pytest

from mtl.studies import grouping as G


def _result(spectral, random, kmeans, sizes_k=(38, 1, 1), sizes_s=(20, 12, 8)):
    rows = []
    for s, (a, b, c) in enumerate(zip(spectral, random, kmeans)):
        rows += [{"seed": s, "strategy": "spectral", "delta_m": a, "sizes": list(sizes_s), "ari": 0.3},
                 {"seed": s, "strategy": "random", "delta_m": b, "sizes": [14, 13, 13], "ari": 0.0},
                 {"seed": s, "strategy": "kmeans", "delta_m": c, "sizes": list(sizes_k), "ari": 0.1},
                 {"seed": s, "strategy": "spectral-k8", "sizes": [5] * 8, "ari": 0.6},
                 {"seed": s, "strategy": "uniform", "delta_m": 0.0}]
    return {"rows": pd.DataFrame(rows), "seeds": list(range(len(spectral))), "k": 3, "n_planted": 8}


def test_ari_is_one_for_the_planted_grouping_and_invariant_to_relabelling():
    truth = np.repeat(np.arange(4), 5)
    groups = [list(np.flatnonzero(truth == g)) for g in (2, 0, 3, 1)]
    assert G.ari(groups, truth) == pytest.approx(1.0)
    assert G.ari([list(range(20))], truth) == pytest.approx(0.0)


def test_labels_of_covers_every_task():
    lab = G.labels_of([[0, 3], [1], [2, 4]], 5)
    assert lab.tolist() == [0, 1, 2, 0, 2]


def test_endpoint_weights_favour_each_end_cluster():
    w = G.endpoint_weights([[0, 1], [2], [3, 4]], 5, 0.1)
    assert w[0]["weights"] == [1.0, 1.0, 0.1, 0.1, 0.1]
    assert w[1]["weights"] == [0.1, 0.1, 1.0, 0.1, 0.1]


def test_drop_is_negative_when_accuracy_rises():
    base = {"a": {"acc": 0.5}, "b": {"acc": 0.8}}
    assert G.drop({"a": {"acc": 0.6}, "b": {"acc": 0.8}}, base) < 0
    assert G.drop(base, base) == pytest.approx(0.0)


RULES = {"C11_spectral": {"kind": "superiority", "direction": "less", "floor": 0.5},
         "C11_balance": {"kind": "superiority", "direction": "less", "floor": 1.0}}
PASS = {"passed": True, "detail": "synthetic runs, well above trivial"}
FAIL = {"passed": False, "detail": "0/3 runs beat the trivial predictor"}


def _c11(spec_minus_random, spec_minus_kmeans, seeds=5, noise=0.1, seed=0, **kw):
    rng = np.random.default_rng(seed)
    sp = rng.normal(0, 1, seeds)
    return _result(list(sp), list(sp - spec_minus_random + rng.normal(0, noise, seeds)),
                   list(sp - spec_minus_kmeans + rng.normal(0, noise, seeds)), **kw)


def test_c11_each_way_and_the_gate():
    assert G.c11_grouping(_c11(-2.0, -2.0), RULES, PASS)["verdict"] == "supports"
    assert G.c11_grouping(_c11(+2.0, -2.0), RULES, PASS)["verdict"] == "contradicts"      # random beats spectral
    balanced = G.c11_grouping(_c11(-2.0, -2.0, sizes_k=(14, 13, 13), sizes_s=(38, 1, 1)), RULES, PASS)
    assert balanced["verdict"] == "contradicts" and balanced["parts"][2]["verdict"] == "contradicts"
    assert G.c11_grouping(_c11(-2.0, -2.0, noise=5.0), RULES, PASS)["verdict"] == "inconclusive"
    un = G.c11_grouping(_c11(-2.0, -2.0), RULES, FAIL, scale_needed="more epochs")
    assert un["verdict"] == "untestable" and un["rule_verdict"] == "supports"
    assert "fails to deliver satisfactory results" in un["paper"] and "worst" not in un["paper"]


@pytest.mark.parametrize("seeds", [3, 5])
def test_c11_null_simulation(seeds):
    """No difference between the groupings and equally balanced clusters (sizes vary by seed):
    false supports and false contradicts each ≤ 5 % + 3 MC SE."""
    rng = np.random.default_rng(5)
    rules = {k: G.ST.Rule.from_dict(r) for k, r in RULES.items()}
    out = []
    for _ in range(400):
        sp, ra, km = (rng.normal(0, 1.0, seeds) for _ in range(3))
        sk, ss = rng.integers(4, 14, seeds).astype(float), rng.integers(4, 14, seeds).astype(float)
        out.append(G.c11_decide(sp, ra, km, sk, ss, rules).verdict)
    v = np.asarray(out)
    bound = 0.05 + 3 * np.sqrt(0.05 * 0.95 / 400)
    assert np.mean(v == "supports") <= bound and np.mean(v == "contradicts") <= bound


def test_pick_t_prefers_the_interior():
    acc = lambda a: {"x": {"acc": a}}   # noqa: E731
    rec = {"metrics": {"t": [0.0, 0.5, 1.0], "val": {"metrics": [acc(0.9), acc(0.7), acc(0.8)]}}}
    assert G.pick_t(rec) == 1 and G.pick_t(rec, interior=False) == 0
    ends_only = {"metrics": {"t": [0.0, 1.0], "val": {"metrics": [acc(0.6), acc(0.8)]}}}
    assert G.pick_t(ends_only) == 1


def test_table_lists_every_strategy_and_the_check():
    tab = G.table(_result([-2.0, -2.1, -1.9], [0.0, 0.1, -0.1], [1.0, 1.2, 0.9]))
    assert len(tab) == 5
    assert tab.loc["K-means", "cluster sizes (per seed)"].startswith("38/1/1")
