"""Section "Gradient norms and conflicts" (mtl.studies.gradients): probe tables and the C8/C9 verdicts."""
import numpy as np
import pytest

from mtl.experiment import train_run
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


def _res(probed, best=(1.0, 4.0), grid_cost=10.0):
    return {"probed": probed, "base": BASE, "dirs": DIRS, "best_weights": dict(zip(TASKS, best)),
            "grid_cost_s": grid_cost, "setting": "synthetic"}


def test_c8_supports_when_equal_cosines_go_with_good_delta_and_conflict_does_not():
    rng = np.random.default_rng(0)
    probed = {f"m{i}": [_record(0.5 + 0.02 * (10 - i), 0.5 + 0.02 * (10 - i), 0.05 * i, rng.uniform(-0.5, 0.5))
                        for _ in range(2)] for i in range(10)}
    assert G.c8_cosine_not_conflict(_res(probed))["verdict"] == "supports"
    flipped = {k: [_record(r["metrics"]["a"]["acc"], r["metrics"]["b"]["acc"], 0.5 - 0.05 * int(k[1:]), 0.0)
                   for r in v] for k, v in probed.items()}
    assert G.c8_cosine_not_conflict(_res(flipped))["verdict"] == "contradicts"


def test_c9_supports_when_small_norm_tasks_lag_and_avgnorm_matches_grid():
    uniform = [_record(0.4 + 0.01 * s, 0.6, 0.0, 0.0, norms=(0.1, 1.0)) for s in range(3)]
    uniform += [_record(0.45, 0.55 + 0.01 * s, 0.0, 0.0, norms=(0.2, 0.9)) for s in range(3)]
    grid = [_record(0.55 + 0.01 * s, 0.55, 0.0, 0.0) for s in range(3)]
    avg = [_record(0.55 + 0.01 * s, 0.56, 0.0, 0.0, weights=(0.5, 3.0)) for s in range(3)]
    v = G.c9_norm_imbalance(_res({"Uniform": uniform, "Grid Search": grid, "AvgNorm": avg}, best=(1.0, 4.0)))
    assert v["id"] == "C9" and v["verdict"] == "supports", v
    worse = [_record(0.3 + 0.01 * s, 0.3, 0.0, 0.0, weights=(0.5, 3.0)) for s in range(3)]
    v = G.c9_norm_imbalance(_res({"Uniform": uniform, "Grid Search": grid, "AvgNorm": worse}))
    assert v["verdict"] == "contradicts"


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
