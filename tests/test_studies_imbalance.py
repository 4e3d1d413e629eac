"""Section "Imbalance in vanilla MTL" (mtl.studies.imbalance): the C1 verdict on constructed run records,
and a tiny end-to-end run of single-task vs uniform vs grid search."""
import pytest

from mtl.studies import _common as study
from mtl.studies import imbalance as S

DIRS = {"a": {"acc": True}, "b": {"err": False}}           # a: higher is better, b: lower is better
STL_A, STL_B = [0.80, 0.81, 0.79], [1.00, 1.01, 0.99]       # per seed
JIT = [0.002, -0.001, 0.0]                                  # small seed-to-seed noise of the differences


def _run(acc: float, err: float) -> dict:
    return {"metrics": {"a": {"acc": acc}, "b": {"err": err}}}


def _result(uniform: list[dict], grid: list[dict]) -> dict:
    """A vanilla_imbalance result from per-seed uniform and grid-search records (STL fixed above)."""
    stl = {"a": [{"metrics": {"a": {"acc": v}}} for v in STL_A], "b": [{"metrics": {"b": {"err": v}}} for v in STL_B]}
    return {"stl": stl, "base": study.stl_base(stl), "dirs": DIRS, "seeds": [0, 1, 2],
            "best_weights": {"a": 1.0, "b": 2.0},
            "methods": {"Single-task": [_run(a, b) for a, b in zip(STL_A, STL_B)], "Uniform": uniform,
                        "Grid Search": grid}}


def _shifted(da: float, db: float) -> list[dict]:
    """Per seed: STL moved by ``da`` on task a's accuracy and ``db`` on task b's error (plus noise)."""
    return [_run(a + da + j, b + db - j) for a, b, j in zip(STL_A, STL_B, JIT)]


def test_uniform_below_stl_and_grid_better_supports_c1():
    uniform = _shifted(-0.08, 0.0)          # task a clearly worse than single-task, b level
    grid = _shifted(0.0, 0.0)               # the searched weights recover task a
    v = S.c1_vanilla_imbalance(_result(uniform, grid), setting="constructed")
    assert v["id"] == "C1" and v["verdict"] == "supports", v
    assert "['a']" in v["evidence"] and v["setting"] == "constructed"


def test_no_difference_is_inconclusive():
    same = _shifted(0.0, 0.0)
    v = S.c1_vanilla_imbalance(_result(same, [dict(r) for r in same]), setting="flat")
    assert v["verdict"] == "inconclusive", v
    assert "none" in v["evidence"]          # no task below STL


def test_grid_equal_to_uniform_gives_no_evidence_for_part_two():
    uniform = _shifted(-0.08, 0.0)          # part 1 supports ...
    v = S.c1_vanilla_imbalance(_result(uniform, uniform), setting="grid chose uniform")
    assert v["verdict"] == "inconclusive"   # ... but identical Δm cannot show the gap narrowing
    assert "part 1 (supports)" in v["evidence"] and "part 2 (inconclusive)" in v["evidence"]


def test_uniform_above_stl_everywhere_and_grid_worse_contradicts():
    uniform = _shifted(+0.08, -0.2)         # better than single-task on both tasks
    grid = _shifted(+0.02, -0.05)           # grid search below uniform
    assert S.c1_vanilla_imbalance(_result(uniform, grid), setting="x")["verdict"] == "contradicts"


def test_vanilla_imbalance_end_to_end_on_tiny_data(tmp_path, one_thread):
    cfg = {"seeds": [0, 1], "grid": {"left": [1], "right": [1, 2]},
           "spec": {"dataset": "multimnist", "dataset_kw": {"n_train": 64, "n_val": 32, "n_test": 32},
                    "backbone": "lenet", "train": {"epochs": 1, "batch_size": 32}}}
    r = S.vanilla_imbalance(tmp_path, cfg)
    assert set(r["methods"]) == {"Single-task", "Uniform", "Grid Search"}
    assert all(len(v) == 2 for v in r["methods"].values()) and set(r["stl"]) == {"left", "right"}
    assert len(r["grid"]) == 2 and r["grid"]["val_delta_m"].is_monotonic_decreasing  # best first
    assert list(r["best_weights"]) == ["left", "right"] and r["best_weights"]["right"] in (1, 2)
    # the grid's first-seed run of the chosen weights is the Grid Search run at that seed (loaded, not repeated)
    assert r["methods"]["Grid Search"][0]["run_dir"] == r["grid"].loc[0, "run"]
    v = S.c1_vanilla_imbalance(r, setting="tiny")
    assert v["verdict"] in ("supports", "contradicts", "inconclusive") and "tiny" in v["ours"]
    again = S.vanilla_imbalance(tmp_path, cfg)                         # everything is loaded
    assert all(rec["resumed"] for rec in again["methods"]["Uniform"] + again["methods"]["Grid Search"])
    assert again["methods"]["Uniform"][1]["metrics"] == r["methods"]["Uniform"][1]["metrics"]


def test_setup_validates_the_profile_and_resolves_the_output_folder(tmp_path):
    P, out = S.setup("smoke", str(tmp_path / "o"))
    assert set(P) == {"datasets"} and out == (tmp_path / "o").resolve() and out.is_dir()
    with pytest.raises(ValueError, match="no profile 'nope'"):
        S.setup("nope", str(tmp_path))
