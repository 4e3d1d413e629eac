"""Section "Multi-task optimisation methods" (mtl.studies.mto): Δm tables, rank agreement, C2 verdict."""
import numpy as np
import pandas as pd
import pytest

from mtl.metrics import delta_m
from mtl.studies import mto

DIRS = {"a": {"acc": True}, "b": {"err": False}}
BASE = {"a": {"acc": 0.5}, "b": {"err": 2.0}}


def _metrics(r: float) -> dict:
    """Metrics whose Δm% (improvement) against BASE is exactly ``r``."""
    return {"a": {"acc": 0.5 * (1 + r / 100)}, "b": {"err": 2.0 * (1 - r / 100)}}


def _result(dm: dict[str, list[float]]) -> dict:
    methods = {m: [{"metrics": _metrics(r), "info": {"train_time": 1.0}} for r in v] for m, v in dm.items()}
    methods["Single-task"] = [{"metrics": _metrics(0.0)} for _ in next(iter(dm.values()))]
    return {"methods": methods, "base": BASE, "dirs": DIRS, "seeds": list(range(len(next(iter(dm.values())))))}


JIT = np.array([0.01, -0.01, 0.0])


def _ordered(values: list[float], names=("Grid Search", "Uniform", "M1", "M2", "M3", "M4")) -> dict:
    return {n: list(v + JIT) for n, v in zip(names, values)}


def test_delta_matrix_recovers_the_constructed_deltas():
    r = _result(_ordered([5, 4, 3, 2, 1, 0]))
    dm = mto.delta_matrix(r)
    assert dm.loc["Grid Search"].tolist() == pytest.approx(list(5 + JIT))
    assert dm.loc["Single-task"].tolist() == pytest.approx([0, 0, 0])


def test_results_table_sorts_by_delta_and_ranks_best_first():
    t = mto.results_table(_result(_ordered([5, 4, 3, 2, 1, 0])))
    assert t.index[0] == "Grid Search" and t["delta_m"].is_monotonic_decreasing
    assert t.loc["Grid Search", "mean_rank"] == 1.0
    assert t.loc["M4", "mean_rank"] > t.loc["M1", "mean_rank"]


def test_rank_correlation_is_minus_one_for_reversed_orders():
    a = pd.Series({"x": 1.0, "y": 2.0, "z": 3.0, "Single-task": 0.0})
    corr = mto.rank_correlations({"d1": a, "d2": -a})
    assert corr.loc["d1", "d2"] == pytest.approx(-1.0)
    assert corr.loc["d1", "d1"] == 1.0


RULES = mto.section_rules(mto.profiles.load("mto", "cpu"))     # the preregistered rules, from the yaml
PASSED = {"passed": True, "detail": "constructed runs, trained"}
NAMES = ("Grid Search", "Uniform", "M1", "M2", "M3", "M4", "M5")
J4 = np.array([0.01, -0.01, 0.0, 0.005])


def _four(values) -> dict:
    return {n: list(v + J4) for n, v in zip(NAMES, values)}


def _c2(results, adequacy=PASSED) -> dict:
    return mto.c2_inconsistent(results, RULES, adequacy, n_perm=499)


def test_c2_supports_when_orders_change_between_datasets_and_grid_is_best():
    order = np.array([5, 4, 3, 2, 1, 0])                  # Uniform, M1..M5; each dataset rotates it
    res = {f"d{k}": _result(_four([9] + list(np.roll(order, 2 * k)))) for k in range(3)}
    v = _c2(res)
    assert v["id"] == "C2" and v["verdict"] == "supports", v["evidence"]
    assert v["fairgrad_alpha"] == [] and "FairGrad not run" in v["ours"]


def test_c2_contradicts_when_grid_is_far_below_the_median_method():
    res = {f"d{k}": _result(_four([-10, 5, 4, 3, 2, 1, 0])) for k in range(3)}
    assert _c2(res)["verdict"] == "contradicts"


def test_c2_is_inconclusive_when_every_dataset_orders_the_methods_alike():
    res = {f"d{k}": _result(_four([9, 5, 4, 3, 2, 1, 0])) for k in range(3)}
    v = _c2(res)
    assert v["verdict"] == "inconclusive" and "part 1 (inconclusive)" in v["evidence"]


def test_c2_is_untestable_when_the_gate_fails():
    res = {f"d{k}": _result(_four([-10, 5, 4, 3, 2, 1, 0])) for k in range(3)}
    v = _c2(res, {"passed": False, "detail": "short of the bar"})
    assert v["verdict"] == "untestable" and v["rule_verdict"] == "contradicts"


def test_fairgrad_alpha_is_read_from_the_run_records():
    r = _result(_four([1, 0, 0, 0, 0, 0, 0]))
    r["methods"]["FairGrad"] = [{"metrics": _metrics(0.0), "info": {"weighting": "FairGrad(mode='param', alpha=1.0)"}}]
    assert mto.fairgrad_alpha({"d": r}) == [1.0]


def test_c2_under_the_null_errs_at_most_alpha_each_way():
    """Rankings that do not depend on the dataset (fixed method effects + seed noise) and grid search
    exactly at the non-inferiority margin below the median method."""
    rng = np.random.default_rng(1)
    draws, seeds = 300, 3
    out = []
    for _ in range(draws):
        effect = rng.standard_normal(6)
        res = {}
        for k in range(3):
            others = effect[:, None] + rng.standard_normal((6, seeds))             # [method, seed]
            grid = np.median(others, axis=0) - RULES["C2_competitive"].margin + 0.5 * rng.standard_normal(seeds)
            res[f"d{k}"] = _result({n: list(v) for n, v in zip(NAMES, [grid, *others])})
        out.append(_c2(res)["verdict"])
    out = np.array(out)
    bound = 0.05 + 3 * np.sqrt(0.05 * 0.95 / draws)
    assert (out == "supports").mean() <= bound and (out == "contradicts").mean() <= bound


def test_paper_tables_are_consistent():
    rows = mto.SEED004_TABLE2_DELTA["rows"]
    assert rows["Single-task"] == (0.0, 0.0) and rows["FairGrad"][0] == 0.59
    assert -1 < mto.paper_rank_correlation() < 1
    d = mto.seed002_delta()
    assert d["Uniform"] == pytest.approx(0.0)
    cols = list(mto.SEED002_TABLE2_COLUMNS)
    ref = dict(zip(cols, mto.SEED002_TABLE2["rows"]["Uniform"]))
    assert d["CAGrad"] == pytest.approx(delta_m(dict(zip(cols, mto.SEED002_TABLE2["rows"]["CAGrad"])), ref,
                                                mto.SEED002_TABLE2_COLUMNS, "improvement"))
    assert all(len(v) == len(cols) for v in mto.SEED002_TABLE2["rows"].values())
