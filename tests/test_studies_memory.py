"""Section "Memory cost" (mtl.studies.memory): verdict logic of C12, estimates, and recorded,
deterministic measurements."""
import json

import pandas as pd
import pytest

from mtl.studies import memory as M

TINY = {"dataset": "multimnist", "dataset_kw": {"n_train": 8, "n_val": 4, "n_test": 4}, "backbone": "lenet"}
P = {"steps": 1, "batch_size": 4, "window": 2, "device": "cpu", "pamal_max_tasks": 3}


def _scale(extra_slope: float, pamal_slope: float) -> pd.DataFrame:
    rows = []
    for T in (2, 10, 40):
        rows += [("PaMaL", T, 10 + pamal_slope * T, T > 10), ("EXTRA-1", T, 5 + 0.01 * T, False),
                 ("EXTRA-2", T, 10 + extra_slope * T, False)]
    return pd.DataFrame(rows, columns=["method", "T", "peak MiB", "estimated"])


def test_c12_supports_flat_extra_and_growing_pamal():
    v = M.c12_memory(_scale(0.01, 5.0))
    assert v["id"] == "C12" and v["verdict"] == "supports"
    assert "estimate" in v["evidence"]


def test_c12_contradicts_when_extra_grows_like_pamal():
    assert M.c12_memory(_scale(5.0, 5.0))["verdict"] == "contradicts"


def test_c12_contradicts_when_pamal_is_flat_and_inconclusive_when_extra_grows_less():
    assert M.c12_memory(_scale(0.0, 0.01))["verdict"] == "contradicts"   # nothing grows: PaMaL claim fails
    assert M.c12_memory(_scale(0.4, 5.0))["verdict"] == "inconclusive"  # EXTRA-2 1.4× but PaMaL grows more


def test_fit_estimate_is_exact_on_linear_data():
    assert M.fit_estimate([2, 3, 5], [12.0, 17.0, 27.0], 40) == pytest.approx(202.0)


def test_measurement_is_deterministic_recorded_and_reloaded(tmp_path):
    a = M.measure_one(tmp_path / "a", TINY, 2, "EXTRA-2", P)
    b = M.measure_one(tmp_path / "b", TINY, 2, "EXTRA-2", P)
    assert a["peak_bytes"] == b["peak_bytes"] > 0
    files = list((tmp_path / "a" / "measurements").glob("*.json"))
    assert len(files) == 1
    rec = json.loads(files[0].read_text())
    rec["peak_bytes"] = 123                                    # a recorded value is loaded, not re-measured
    files[0].write_text(json.dumps(rec))
    assert M.measure_one(tmp_path / "a", TINY, 2, "EXTRA-2", P)["peak_bytes"] == 123


def test_pamal_holds_more_than_one_endpoint_network(tmp_path):
    pam = M.measure_one(tmp_path, TINY, 2, "PaMaL", P)["peak_bytes"]
    one = M.measure_one(tmp_path, TINY, 2, "EXTRA-1", P)["peak_bytes"]
    assert pam > one


def test_estimates_above_the_task_limit(tmp_path):
    prof = {**P, "scaling": {"tasks": [2, 3, 4], "setting": {
        "dataset": "attributes40", "dataset_kw": {"n_train": 8, "n_val": 4, "n_test": 4, "size": 16},
        "backbone": "cnn9", "backbone_kw": {"width": 2}}}}
    s = M.scaling(tmp_path, prof)
    pam = s[s.method == "PaMaL"].set_index("T")
    assert pam.loc[4, "estimated"] and not pam.loc[3, "estimated"]
    assert pam.loc[4, "peak MiB"] == pytest.approx(2 * pam.loc[3, "peak MiB"] - pam.loc[2, "peak MiB"], rel=1e-6)
