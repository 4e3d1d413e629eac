"""Section "ConsMTL" (mtl.studies.consmtl): verdict logic, phases of the cosine probes, the paper's constants."""
import numpy as np
import pytest

from mtl.data.qm9 import TASKS as QM9_TASKS
from mtl.studies import consmtl as S

DIRS = {"a": {"mae": False}, "b": {"mae": False}}
BASE = {"a": {"mae": 1.0}, "b": {"mae": 1.0}}


def _rec(mae, cos_early, cos_late, epochs=3):
    """A run record: test MAE of both tasks, rep_cos probes with a given off-diagonal cosine per phase."""
    mat = lambda c: [[1.0, c], [c, 1.0]]  # noqa: E731
    hist = [{"epoch": e, "probes": [{"probe": "rep_cos", "cos": mat(cos_early if e == 0 else cos_late)}]}
            for e in range(epochs)]
    return {"metrics": {"a": {"mae": mae}, "b": {"mae": mae}}, "history": hist}


def _result(cons_mae, ulo_mae, cons_cos, ulo_cos, cons_t=1.1, ulo_t=1.0):
    seeds = [0, 1, 2]
    jit = [0.0, 0.01, -0.01]
    methods = {"LS": [_rec(1.0 + j, 0.0 + j, 0.0) for j in jit],
               "ULO": [_rec(ulo_mae + j, ulo_cos + j, 0.1) for j in jit],
               "ConsMTL": [_rec(cons_mae + j, cons_cos + j + 1e-3 * k, 0.1) for k, j in enumerate(jit)]}
    times = {"ULO": [ulo_t, ulo_t * 1.01, ulo_t * 0.99], "ConsMTL": [cons_t, cons_t * 1.01, cons_t * 0.99]}
    return {"toy": {"methods": methods, "base": BASE, "dirs": DIRS, "seeds": seeds, "times": times, "lam": 1.0,
                    "early_epochs": 1, "tasks": ["a", "b"], "steps_per_epoch": 10}}


def test_c18_follows_the_paired_delta_m_in_the_drop_convention():
    assert S.c18_delta_m(_result(0.8, 1.0, 0.5, 0.5))["verdict"] == "supports"      # lower MAE → lower Δm drop
    assert S.c18_delta_m(_result(1.2, 1.0, 0.5, 0.5))["verdict"] == "contradicts"
    assert S.c18_delta_m(_result(1.0, 1.0, 0.5, 0.5))["verdict"] == "inconclusive"
    assert S.c18_delta_m(_result(0.9995, 1.0, 0.5, 0.5))["verdict"] == "inconclusive"  # negligible gain


def test_c17_uses_the_early_phase_and_a_minimum_effect():
    assert S.c17_agreement(_result(1, 1, 0.6, 0.3))["verdict"] == "supports"
    assert S.c17_agreement(_result(1, 1, 0.2, 0.3))["verdict"] == "contradicts"
    assert S.c17_agreement(_result(1, 1, 0.301, 0.3))["verdict"] == "inconclusive"


def test_c16_reads_little_as_a_threshold_on_the_overhead():
    assert S.c16_overhead(_result(1, 1, 0, 0, cons_t=1.1))["verdict"] == "supports"
    assert S.c16_overhead(_result(1, 1, 0, 0, cons_t=2.0))["verdict"] == "contradicts"
    assert S.c16_overhead(_result(1, 1, 0, 0, cons_t=2.0), threshold=1.5)["verdict"] == "supports"


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
