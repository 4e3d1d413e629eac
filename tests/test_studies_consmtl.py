"""Section "ConsMTL" (mtl.studies.consmtl): verdict logic, phases of the cosine probes, the paper's constants."""
import numpy as np
import pytest

from mtl.data.qm9 import TASKS as QM9_TASKS
from mtl import profiles
from mtl.stats import Rule
from mtl.studies import consmtl as S

DIRS = {"a": {"mae": False}, "b": {"mae": False}}
BASE = {"a": {"mae": 1.0}, "b": {"mae": 1.0}}


RULES = profiles.load("consmtl", "cpu")["rules"]
R = {k: Rule.from_dict(v) for k, v in RULES.items()}


def _rec(mae, cos_early, cos_late, epochs=5):
    """A run record: test MAE of both tasks (a flat validation curve), rep_cos probes with a given
    off-diagonal cosine in the first epoch and after."""
    mat = lambda c: [[1.0, c], [c, 1.0]]  # noqa: E731
    m = {"a": {"mae": mae}, "b": {"mae": mae}}
    hist = [{"epoch": e, "val": m, "probes": [{"probe": "rep_cos", "cos": mat(cos_early if e == 0 else cos_late)}]}
            for e in range(epochs)]
    return {"metrics": m, "history": hist}


def _result(cons_mae, ulo_mae, cons_cos, ulo_cos, cons_t=1.1, ulo_t=1.0, trivial=10.0):
    seeds = [0, 1, 2]
    jit = [0.0, 0.01, -0.01]
    methods = {"LS": [_rec(1.0 + j, 0.0 + j, 0.0) for j in jit],
               "ULO": [_rec(ulo_mae + j, ulo_cos + j, 0.1) for j in jit],
               "ConsMTL": [_rec(cons_mae + j + 1e-3 * k, cons_cos + j + 1e-3 * k, 0.1) for k, j in enumerate(jit)]}
    times = {"ULO": [ulo_t, ulo_t * 1.01, ulo_t * 0.99], "ConsMTL": [cons_t, cons_t * 1.01, cons_t * 0.99]}
    return {"toy": {"methods": methods, "base": BASE, "dirs": DIRS, "primary": DIRS, "seeds": seeds, "times": times,
                    "lam": 1.0, "early_epochs": 1, "epochs": 5, "tasks": ["a", "b"], "steps_per_epoch": 10,
                    "stl": {t: [_rec(1.0, 0.0, 0.0)] for t in ("a", "b")},
                    "trivial": {t: {"mae": trivial} for t in ("a", "b")}}}


def test_c18_follows_the_paired_delta_m_in_the_drop_convention():
    v = S.c18_delta_m(_result(0.8, 1.0, 0.5, 0.5), RULES)       # lower MAE → lower Δm drop
    assert v["verdict"] == "supports" and v["adequacy"]["passed"] and "our own check" in v["paper"]
    assert S.c18_delta_m(_result(1.2, 1.0, 0.5, 0.5), RULES)["verdict"] == "contradicts"
    v = S.c18_delta_m(_result(1.0, 1.0, 0.5, 0.5), RULES)
    assert v["verdict"] == "inconclusive" and v["seeds_needed"] is None and "below the floor" in v["evidence"]
    assert S.c18_delta_m(_result(0.998, 1.0, 0.5, 0.5), RULES)["verdict"] == "inconclusive"  # below the floor
    v = S.c18_delta_m(_result(0.8, 1.0, 0.5, 0.5, trivial=1.05), RULES)                   # gate fails
    assert v["verdict"] == "untestable" and v["rule_verdict"] == "supports" and v["scale_needed"]


def test_c17_uses_the_early_phase_and_a_floor():
    assert S.c17_agreement(_result(1, 1, 0.6, 0.3), RULES)["verdict"] == "supports"
    assert S.c17_agreement(_result(1, 1, 0.2, 0.3), RULES)["verdict"] == "contradicts"
    assert S.c17_agreement(_result(1, 1, 0.301, 0.3), RULES)["verdict"] == "inconclusive"    # below the floor
    assert S.c17_agreement(_result(1, 1, 0.6, 0.3, trivial=1.05), RULES)["verdict"] == "untestable"


def test_c16_reads_little_as_the_papers_range():
    v = S.c16_overhead(_result(1, 1, 0, 0, cons_t=1.1), RULES)
    assert v["verdict"] == "supports" and v["adequacy"]["passed"] and "timing claim" in v["adequacy"]["detail"]
    assert S.c16_overhead(_result(1, 1, 0, 0, cons_t=2.0), RULES)["verdict"] == "contradicts"
    assert S.c16_overhead(_result(1, 1, 0, 0, cons_t=1.25), RULES)["verdict"] == "inconclusive"   # at the margin


def test_early_window_is_a_fraction_of_training():
    assert [S.early_window(e, 0.2) for e in (300, 15, 5, 2, 1)] == [60, 3, 1, 1, 1]
    with pytest.raises(ValueError, match="early_fraction"):
        S.early_window(10, 1.5)


def _null_results(rng, shift_fn, datasets=2, n=3):
    return {f"d{k}": shift_fn(rng, n) for k in range(datasets)}


def _rates(out):
    out = np.asarray(out)
    bound = 0.05 + 3 * np.sqrt(0.05 * 0.95 / len(out))
    return (out == "supports").mean(), (out == "contradicts").mean(), bound


def test_null_simulations_of_c16_c17_c18():
    """At the margin (C16) and with no effect (C17, C18): false supports / contradicts ≤ 5 % + 3 MC SE."""
    rng = np.random.default_rng(0)
    m = R["C16"].margin
    c16 = [S.decide_c16({f"d{k}": {"times": {"ULO": np.ones(4), "ConsMTL": 1 + m + 0.05 * rng.standard_normal(4)}}
                         for k in range(2)}, R["C16"])[0].verdict for _ in range(400)]
    sup, con, b = _rates(c16)
    assert sup <= b and con <= b, (sup, con)

    def cos_result():
        base = rng.standard_normal(3)
        recs = lambda x: [_rec(1.0, c, 0.0) for c in x]  # noqa: E731
        return {"methods": {"ULO": recs(base), "ConsMTL": recs(base + 0.1 * rng.standard_normal(3))}, "early_epochs": 1}
    c17 = [S.decide_c17({"d0": cos_result(), "d1": cos_result()}, Rule("superiority"))[0].verdict for _ in range(300)]
    sup, con, b = _rates(c17)
    assert sup <= b and con <= b, (sup, con)

    def dm_result():
        base = 1 + 0.1 * rng.random(3)
        recs = lambda x: [{"metrics": {"a": {"mae": v}, "b": {"mae": v}}} for v in x]  # noqa: E731
        return {"methods": {"ULO": recs(base), "ConsMTL": recs(base + 0.05 * rng.standard_normal(3))},
                "base": BASE, "dirs": DIRS}
    c18 = [S.decide_c18({"d0": dm_result(), "d1": dm_result()}, R["C18"])[0].verdict for _ in range(300)]
    sup, con, b = _rates(c18)
    assert sup <= b and con <= b, (sup, con)


def test_phases_and_agreement_table():
    rec = _rec(1.0, 0.4, -0.2)
    ph = S.phase_matrices(rec, 1)
    assert S.off_diagonal_mean(ph["early"]) == pytest.approx(0.4)
    assert S.off_diagonal_mean(ph["late"]) == pytest.approx(-0.2)
    t = S.agreement_table(_result(1, 1, 0.6, 0.3)["toy"])
    assert t.loc["ConsMTL", "early mean cos"] > t.loc["ULO", "early mean cos"]
    with pytest.raises(ValueError, match="no rep_cos probes"):
        S.phase_matrices({"history": [{"epoch": 0, "probes": []}]}, 1)


def test_paper_constants():
    ov = S.paper_overhead()
    assert min(ov.values()) == pytest.approx(0.1195, abs=1e-3) and max(ov.values()) == pytest.approx(0.2444, abs=1e-3)
    assert set(S.SEED003_TABLE8_QM9["mean"]) - {"delta_m"} == set(QM9_TASKS)
    assert set(S.SEED003_TABLE8_QM9["mean"]) == set(S.SEED003_TABLE8_QM9["se"])
    assert set(S.SEED003_TABLE7_NYUV2["mean"]) == set(S.SEED003_TABLE7_NYUV2["se"])
    assert np.isclose(S.SEED003_TABLE7_NYUV2["mean"]["delta_m"], -6.72)


def test_method_specs():
    cfg = {"lam": 1e-3, "upper_kw": {"chunk_size": 1}, "spec": {"dataset": "qm9", "backbone": "mpnn", "train": {}}}
    assert S.method_spec(cfg, "LS")["weighting"] == "ew" and S.method_spec(cfg, "LS")["weighting_kw"] == {}
    assert S.method_spec(cfg, "ULO")["weighting_kw"] == {"chunk_size": 1}
    assert S.method_spec(cfg, "ConsMTL")["weighting_kw"] == {"chunk_size": 1, "lam": 1e-3}
