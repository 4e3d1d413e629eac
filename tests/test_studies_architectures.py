"""Section "Architectures and optimisers": seed 002 transcription, rank correlation, C3/C19 verdict logic."""
import numpy as np
import pandas as pd
import pytest

from mtl.studies import architectures as A


def test_paper_table_reference_and_oom_cells():
    t = A.paper_delta_table()
    assert t.shape == (13, 8) and list(t.columns) == list(A.ARCHITECTURES)
    assert t.loc["ew", "hps"] == 0.0                                   # HPS + EW is the reference
    assert int(t.isna().sum().sum()) == 9                              # seed 002's nine OOM cells
    assert np.isnan(t.loc["nashmtl", "cgc"]) and np.isnan(t.loc["graddrop", "mtan"])
    # better on every metric than HPS+EW -> positive Δm (CAGrad on Cross-stitch beats it on all but mIoU/PAcc)
    assert t.loc["gls", "hps"] > 0


def test_rank_correlation_oracles():
    t = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [10.0, 20.0, 30.0, 40.0], "c": [4.0, 3.0, 2.0, 1.0]})
    c = A.rank_correlation(t)
    assert c.loc["a", "b"] == pytest.approx(1.0) and c.loc["a", "c"] == pytest.approx(-1.0)
    assert np.allclose(c.to_numpy(), c.to_numpy().T)
    assert A.mean_off_diagonal(c) == pytest.approx((1 - 1 - 1) / 3)


def _recs(values, task="a"):
    return [{"metrics": {task: {"acc": v}}} for v in values]


def _result(cells: dict, stl: dict | None = None):
    """cells: arch -> method -> per-seed accuracies of task 'a'; own single-task accuracy 1.0 everywhere."""
    archs = list(cells)
    methods = list(next(iter(cells.values())))
    stl = stl or {a: {"a": _recs([1.0, 1.0, 1.0])} for a in archs}
    own = {a: {"a": {"acc": float(np.mean([r["metrics"]["a"]["acc"] for r in stl[a]["a"]]))}} for a in archs}
    return {"stl": stl,
            "mtl": {a: {m: (v if isinstance(v, str) else _recs(v)) for m, v in row.items()}
                    for a, row in cells.items()},
            "dirs": {"a": {"acc": True}}, "seeds": [0, 1, 2], "archs": archs, "methods": methods,
            "vanilla": own[archs[0]], "own": own}


def test_c19_reversal_supports_champion_contradicts_noise_inconclusive():
    up, down = [1.10, 1.11, 1.12], [1.00, 1.01, 1.00]
    rev = _result({"hps": {"m1": up, "m2": down}, "mtan": {"m1": down, "m2": up}})
    assert A.c19_no_single_best(rev)["verdict"] == "supports"
    champ = _result({"hps": {"m1": up, "m2": down}, "mtan": {"m1": up, "m2": down}})
    assert A.c19_no_single_best(champ)["verdict"] == "contradicts"
    noisy = _result({"hps": {"m1": [1.0, 1.2, 0.9], "m2": [1.1, 1.0, 1.0]},
                     "mtan": {"m1": [1.0, 1.1, 1.0], "m2": [0.9, 1.2, 1.0]}})
    assert A.c19_no_single_best(noisy)["verdict"] == "inconclusive"


def test_failed_cells_are_nan_and_listed():
    r = _result({"hps": {"m1": [1.0, 1.1, 1.2], "m2": "RuntimeError: boom"}})
    t = A.delta_table(r)
    assert np.isnan(t.loc["m2", "hps"]) and t.loc["m1", "hps"] == pytest.approx(10.0)
    assert A.failures(r) == {("hps", "m2"): "RuntimeError: boom"}


def test_c3_mitigates_but_keeps_imbalance():
    two = {"a": {"acc": True}, "b": {"acc": True}}

    def recs(a, b):
        return [{"metrics": {"a": {"acc": x}, "b": {"acc": y}}} for x, y in zip(a, b)]

    stl = {arch: {"a": recs([1, 1, 1], [1, 1, 1]), "b": recs([1, 1, 1], [1, 1, 1])} for arch in ("hps", "mtan")}
    base = {"stl": stl, "dirs": two, "seeds": [0, 1, 2], "archs": ["hps", "mtan"], "methods": ["ew"],
            "vanilla": {"a": {"acc": 1.0}, "b": {"acc": 1.0}},
            "own": {k: {"a": {"acc": 1.0}, "b": {"acc": 1.0}} for k in ("hps", "mtan")}}
    # HPS: task b far below; MTAN: task b a little below (gap smaller) -> supports
    r = {**base, "mtl": {"hps": {"ew": recs([1.0, 1.01, 1.0], [0.70, 0.71, 0.70])},
                         "mtan": {"ew": recs([1.0, 1.01, 1.0], [0.90, 0.91, 0.90])}}}
    assert A.c3_architectures(r)["verdict"] == "supports"
    # MTAN above its own STL on every task -> the imbalance is removed -> contradicts
    r["mtl"]["mtan"]["ew"] = recs([1.10, 1.11, 1.12], [1.10, 1.12, 1.11])
    assert A.c3_architectures(r)["verdict"] == "contradicts"


def test_run_grid_rejects_unknown_architecture(tmp_path):
    with pytest.raises(ValueError, match="unknown architectures"):
        A.run_grid(tmp_path, {"spec": {}, "seeds": [0], "architectures": ["transformer"], "methods": {}})


TINY = {"seeds": [0, 1], "architectures": ["hps", "mtan"], "methods": {"ew": {"weighting": "ew"}},
        "spec": {"dataset": "scenes", "tasks": ["segmentation", "depth"], "backbone": "segnet",
                 "dataset_kw": {"height": 16, "width": 16, "train_scenes": 1, "val_scenes": 1, "test_scenes": 1,
                                "scans_per_scene": 2},
                 "backbone_kw": {"width": 4, "stages": 2, "convs": 1}, "train": {"epochs": 1, "batch_size": 2}},
        "cost": {"steps": 1, "memory_limit_mb": 1e-3}}


def test_tiny_grid_and_costs(tmp_path):
    r = A.run_grid(tmp_path, TINY)
    assert set(r["stl"]["mtan"]) == {"segmentation", "depth"} and len(r["mtl"]["hps"]["ew"]) == 2
    assert r["stl"]["mtan"]["depth"][0]["params"]["architecture"] == "mtan"     # the architecture's own STL
    fig4 = A.arch_vs_stl(r)
    assert set(fig4["kind"]) == {"single-task", "multi-task"} and len(fig4) == 2 * 2 * 2 * 2
    costs = A.cell_costs(tmp_path, TINY)
    assert (costs["params"] > 0).all()
    assert costs["oom"].all()                                         # a 1 kB limit: every cell is OOM
    assert costs.equals(A.cell_costs(tmp_path, TINY))                 # cached
    assert costs.set_index("architecture").loc["mtan", "params"] > costs.set_index("architecture").loc["hps", "params"]


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu", "paper"])
def test_profiles_name_real_methods_and_architectures(profile):
    from mtl import profiles
    from mtl import weighting as W

    P = profiles.load("architectures", profile)
    assert set(P["architectures"]) <= set(A.ARCHITECTURES)
    assert {m["weighting"] for m in P["methods"].values()} <= set(W.names())
    for m in P["methods"].values():
        W.create(m["weighting"], **m.get("weighting_kw", {}))          # the hyper-parameters are accepted
    if profile in ("gpu", "paper"):
        assert set(P["architectures"]) == set(A.ARCHITECTURES)
        assert set(P["methods"]) == set(A.SEED002_NYUV2["hps"])           # seed 002's full grid
