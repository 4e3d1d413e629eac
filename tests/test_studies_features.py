"""The verdict logic of the "Feature similarity" section (mtl.studies.features) on synthetic runs."""
import numpy as np
import pandas as pd
import pytest

from mtl import profiles
from mtl.stats import Rule
from mtl.studies import features as F

METHODS = ["Uniform", "Grid Search", "CAGrad", "Nash-MTL", "AvgNorm", "URL"]
TASKS = ["segmentation", "depth"]


def _distances(slope: float, seeds=(0, 1, 2), noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Δm = slope · distance + seed offset (+ noise); per task distances spread around the mean."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in seeds:
        for i, m in enumerate(METHODS):
            d = 0.2 + 0.1 * i + 0.01 * s
            dm = slope * d + 5.0 * s + noise * rng.standard_normal()   # large seed offsets: pooled ρ is confounded
            rows += [{"method": m, "seed": s, "task": t, "distance": d + (0.02 if t == "depth" else -0.02),
                      "improvement": dm, "delta_m": dm} for t in TASKS]
    return pd.DataFrame(rows)


RULES = profiles.load("features", "cpu")["rules"]
RULE = Rule.from_dict(RULES["C7"])
DIRS = {t: {"acc": True} for t in TASKS}


def _rec(acc=0.6, epochs=5):
    """A run record that passes the gate against TRIVIAL: metrics well above it, a flat validation curve."""
    m = {t: {"acc": acc} for t in TASKS}
    return {"metrics": m, "history": [{"epoch": e, "val": m} for e in range(epochs)]}


def _res(dist, trivial=0.1):
    seeds = sorted(dist["seed"].unique())
    return {"distances": dist, "stl": {t: [_rec() for _ in seeds] for t in TASKS},
            "methods": {"Single-task": [{"metrics": _rec()["metrics"]}],
                        **{m: [_rec() for _ in seeds] for m in METHODS}},
            "trivial": {t: {"acc": trivial} for t in TASKS}, "dirs": DIRS}


def test_closer_and_better_supports():
    v = F.c7_verdict(_res(_distances(-10.0)), RULES, "synthetic")
    assert v["id"] == "C7" and v["verdict"] == "supports" and v["adequacy"]["passed"]
    assert v["rule"] == RULE.to_dict()


def test_farther_and_better_contradicts():
    assert F.c7_verdict(_res(_distances(+10.0)), RULES, "synthetic")["verdict"] == "contradicts"


def test_no_relation_or_one_seed_is_inconclusive():
    assert F.c7_verdict(_res(_distances(-10.0, seeds=(0,))), RULES, "one seed")["verdict"] == "inconclusive"
    flat = _distances(0.0, noise=1.0, seed=3)
    flat["delta_m"] = np.tile(np.repeat([0.3, -0.1, 0.2, -0.3, 0.1, 0.0], len(TASKS)), 3)
    flat.loc[flat.seed == 1, "delta_m"] *= -1                       # opposite rankings in different seeds
    v = F.c7_verdict(_res(flat), RULES, "flat")
    assert v["verdict"] == "inconclusive" and "seeds needed" in v["evidence"]


def test_failing_gate_is_untestable():
    v = F.c7_verdict(_res(_distances(-10.0), trivial=0.7), RULES, "synthetic")
    assert v["verdict"] == "untestable" and v["rule_verdict"] == "supports" and v["scale_needed"]


def test_c7_null_simulation():
    """Distances and Δm independent within every seed: false supports / contradicts ≤ 5 % + 3 MC SE."""
    rng = np.random.default_rng(0)
    n = 400
    out = []
    for _ in range(n):
        d, dm = rng.standard_normal((2, 3, len(METHODS)))
        rows = [{"method": m, "seed": s, "task": t, "distance": d[s, i], "improvement": 0.0, "delta_m": dm[s, i]}
                for s in range(3) for i, m in enumerate(METHODS) for t in TASKS]
        out.append(F.decide_c7(pd.DataFrame(rows), RULE).verdict)
    out = np.asarray(out)
    bound = 0.05 + 3 * np.sqrt(0.05 * 0.95 / n)
    assert (out == "supports").mean() <= bound and (out == "contradicts").mean() <= bound


def test_within_seed_correlation_ignores_seed_offsets():
    runs = F.per_run(_distances(-10.0))
    rc = F.rank_correlation(runs)
    assert rc["rho_per_seed"] == pytest.approx([-1.0, -1.0, -1.0])
    assert rc["rho"] > -1.0          # pooled over seeds the offsets blur the ranking
    assert F.rank_correlation(runs, exclude=("URL",))["n"] == 15


def test_distance_table_means_and_columns():
    t = F.distance_table(_distances(-10.0))
    assert list(t.index) == METHODS
    assert {"dist segmentation", "dist depth", "dist_mean", "delta_m", "delta_m_se", "seeds"} <= set(t.columns)
    assert t.loc["Uniform", "dist_mean"] == pytest.approx(0.21)
    assert t.loc["URL", "seeds"] == 3


def test_reference_rows_transcribed():
    r2, r3 = F.SEED004_TABLE2_NYUD_R18_MTO["rows"], F.SEED004_TABLE3_NYUD_R50_URL["rows"]
    assert r2["URL"]["delta_m"] == -0.16 and r3["URL"]["delta_m"] == 1.91
    assert max(r3, key=lambda m: r3[m]["delta_m"]) == "URL"     # Table III: URL is best on NYUD-v2, ResNet-50


def test_reference_tables_agree_with_each_other():
    """The per-metric rows and the Δm-only tables of seed 004 are transcribed once and must agree."""
    from mtl.studies import _paper as R
    alias = {"Nash-MTL": "NashMTL"}
    for m, row in R.SEED004_TABLE2_NYUD_R18_ROWS.items():
        assert R.SEED004_TABLE2_DELTA["rows"][alias.get(m, m)][0] == row["delta_m"], m
    for m, row in R.SEED004_TABLE3_NYUD_R50_ROWS.items():
        assert R.SEED004_TABLE3_DELTA["rows"][alias.get(m, m)] == row["delta_m"], m
    assert R.SEED004_TABLE2_NYUD_R18["rows"]["Grid Search"] is R.SEED004_TABLE2_NYUD_R18_ROWS["Grid Search"]
