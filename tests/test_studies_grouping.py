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


def test_c11_supports_when_spectral_is_clearly_best_and_kmeans_unbalanced():
    v = G.c11_grouping(_result([-2.0, -2.1, -1.9], [0.0, 0.1, -0.1], [1.0, 1.2, 0.9]))
    assert v["id"] == "C11" and v["verdict"] == "supports"


def test_c11_contradicts_when_random_beats_spectral():
    v = G.c11_grouping(_result([1.0, 1.1, 0.9], [-1.0, -1.1, -0.9], [2.0, 2.1, 2.2]))
    assert v["verdict"] == "contradicts"


def test_c11_is_inconclusive_within_the_seed_spread():
    v = G.c11_grouping(_result([0.0, 1.0, -1.0], [0.5, -0.5, 0.0], [1.0, 1.2, 0.9]))
    assert v["verdict"] == "inconclusive"


def test_c11_contradicts_when_kmeans_is_more_balanced():
    v = G.c11_grouping(_result([-2.0, -2.1, -1.9], [0.0, 0.1, -0.1], [1.0, 1.2, 0.9],
                               sizes_k=(14, 13, 13), sizes_s=(38, 1, 1)))
    assert v["verdict"] == "contradicts"


def test_table_lists_every_strategy_and_the_check():
    tab = G.table(_result([-2.0, -2.1, -1.9], [0.0, 0.1, -0.1], [1.0, 1.2, 0.9]))
    assert len(tab) == 5
    assert tab.loc["K-means", "cluster sizes (per seed)"].startswith("38/1/1")
