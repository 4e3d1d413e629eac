"""Section "Imbalance in vanilla MTL" (mtl.studies.imbalance): the C1 verdict on constructed run records
(each way, the gate, the grid's limits, a null simulation of the rule), and a tiny end-to-end run of
single-task vs uniform vs grid search."""
import numpy as np
import pytest

from mtl.studies import _common as study
from mtl.studies import imbalance as S

DIRS = {"a": {"acc": True}, "b": {"err": False}}           # a: higher is better, b: lower is better
STL_A, STL_B = [0.80, 0.81, 0.79], [1.00, 1.01, 0.99]       # per seed
JIT = [0.002, -0.001, 0.0]                                  # small seed-to-seed noise of the differences
RULES = S.section_rules(S.profiles.load("imbalance", "cpu"))  # the preregistered rules, from the yaml
PASSED = {"passed": True, "detail": "constructed runs, trained"}
FAILED = {"passed": False, "detail": "constructed runs below the trivial bar"}


def _run(acc: float, err: float) -> dict:
    return {"metrics": {"a": {"acc": acc}, "b": {"err": err}}}


def _result(uniform: list[dict], grid: list[dict], stl_a=STL_A, stl_b=STL_B, best=None, n_grid=12) -> dict:
    """A vanilla_imbalance result from per-seed uniform and grid-search records (STL fixed above)."""
    stl = {"a": [{"metrics": {"a": {"acc": v}}} for v in stl_a], "b": [{"metrics": {"b": {"err": v}}} for v in stl_b]}
    return {"stl": stl, "base": study.stl_base(stl), "dirs": DIRS, "seeds": list(range(len(stl_a))),
            "best_weights": best or {"a": 1.0, "b": 2.0}, "grid": list(range(n_grid)),
            "methods": {"Single-task": [_run(a, b) for a, b in zip(stl_a, stl_b)], "Uniform": uniform,
                        "Grid Search": grid}}


def _shifted(da: float, db: float) -> list[dict]:
    """Per seed: STL moved by ``da`` on task a's accuracy and ``db`` on task b's error (plus noise)."""
    return [_run(a + da + j, b + db - j) for a, b, j in zip(STL_A, STL_B, JIT)]


def _c1(result, adequacy=PASSED, **kw) -> dict:
    return S.c1_vanilla_imbalance(result, "constructed", RULES, adequacy, **kw)


def test_the_yaml_preregisters_both_parts_for_every_profile():
    for profile in ("smoke", "cpu", "gpu", "paper"):
        P = S.profiles.load("imbalance", profile)
        assert set(S.section_rules(P)) == {"C1_below", "C1_narrows"} and "multimnist" in P["symmetric"]
    assert RULES["C1_below"].direction == "less" and RULES["C1_narrows"].floor > 0


def test_uniform_below_stl_and_grid_better_supports_c1():
    v = _c1(_result(_shifted(-0.08, 0.0), _shifted(0.0, 0.0)))   # task a 10 % below STL; the grid recovers it
    assert v["id"] == "C1" and v["verdict"] == "supports", v
    assert "a: supports" in v["evidence"] and v["adequacy"]["passed"] and v["rule"]["combine"] == "all"


def test_no_difference_is_inconclusive():
    same = _shifted(0.0, 0.0)
    assert _c1(_result(same, [dict(r) for r in same]))["verdict"] == "inconclusive"


def test_a_small_effect_with_noise_is_inconclusive_and_says_how_many_seeds():
    uniform = [_run(a - 0.04 + j, b) for a, b, j in zip(STL_A, STL_B, [0.03, -0.03, 0.0])]
    v = _c1(_result(uniform, uniform, best={"a": 1.0, "b": 1.0}), symmetric=True)
    assert v["verdict"] == "inconclusive" and v["seeds_needed"] > 3


def test_a_failed_gate_makes_the_claim_untestable_and_keeps_the_rule_answer():
    v = _c1(_result(_shifted(-0.08, 0.0), _shifted(0.0, 0.0)), adequacy=FAILED, scale_needed="more epochs than 10")
    assert v["verdict"] == "untestable" and v["rule_verdict"] == "supports"
    assert "more epochs than 10" in v["evidence"] and v["scale_needed"] == "more epochs than 10"


def test_grid_that_chose_uniform_weights_cannot_decide_part_two():
    uniform = _shifted(-0.08, 0.0)          # part 1 supports ...
    v = _c1(_result(uniform, uniform, best={"a": 1.0, "b": 1.0}, n_grid=4))
    assert v["verdict"] == "untestable" and "chose uniform weights" in v["evidence"]


def test_symmetric_tasks_leave_part_two_out_and_the_verdict_is_part_one():
    uniform = _shifted(-0.08, 0.0)
    v = _c1(_result(uniform, uniform, best={"a": 1.0, "b": 1.0}), symmetric=True)
    assert v["verdict"] == "supports" and "left out of the verdict" in v["evidence"]


def test_uniform_above_stl_everywhere_contradicts_and_a_small_grid_cannot_contradict_part_two():
    uniform = _shifted(+0.08, -0.2)         # better than single-task on both tasks
    grid = _shifted(+0.02, -0.05)           # grid search below uniform
    big, small = _c1(_result(uniform, grid, n_grid=12)), _c1(_result(uniform, grid, n_grid=4))
    assert big["verdict"] == small["verdict"] == "contradicts"
    assert "part 2 (contradicts)" in big["evidence"] and "part 2 (inconclusive)" in small["evidence"]
    assert "cannot contradict" in small["evidence"]


def test_c1_under_the_null_errs_at_most_alpha_each_way():
    """No effect anywhere: uniform = single-task and grid = uniform in distribution (5 seeds, noise sd 0.02)."""
    rng = np.random.default_rng(0)
    draws, n = 400, 5
    out = []
    for _ in range(draws):
        a, b = 0.8 + 0.02 * rng.standard_normal((3, n)), 1.0 + 0.02 * rng.standard_normal((3, n))
        uni, grid = [_run(x, y) for x, y in zip(a[1], b[1])], [_run(x, y) for x, y in zip(a[2], b[2])]
        out.append(_c1(_result(uni, grid, stl_a=list(a[0]), stl_b=list(b[0])))["verdict"])
    out = np.array(out)
    bound = 0.05 + 3 * np.sqrt(0.05 * 0.95 / draws)
    assert (out == "supports").mean() <= bound and (out == "contradicts").mean() <= bound


def test_scale_statement_names_more_epochs_for_rising_curves():
    hist = [{"val": {"a": {"acc": v}}} for v in (0.1, 0.3, 0.5, 0.7, 0.9)]       # still rising at the end
    rec = {"params": {"name": "r"}, "metrics": {"a": {"acc": 0.9}}, "history": hist}
    adq = S.gate.gate_runs([rec], trivial={"a": {"acc": 0.1}}, directions={"a": {"acc": True}})
    assert not adq.passed and "more than 5 epochs" in S.scale_statement(adq, 5, "the gpu profile trains 40")


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
    adq = S.gate_records(S.result_runs(r), cfg["spec"], tmp_path)
    assert len(adq.runs) == len(S.result_runs(r)) and list(tmp_path.glob("trivial-*.json"))
    assert not adq.passed                    # one epoch cannot show a plateau
    v = S.c1_vanilla_imbalance(r, "tiny", RULES, adq, S.scale_statement(adq, 1), symmetric=True)
    assert v["verdict"] == "untestable" and "tiny" in v["ours"] and v["adequacy"] == adq.to_dict()
    assert not S.trivial_table(r, cfg["spec"]).isna().any().any()
    again = S.vanilla_imbalance(tmp_path, cfg)                         # everything is loaded
    assert all(rec["resumed"] for rec in again["methods"]["Uniform"] + again["methods"]["Grid Search"])
    assert again["methods"]["Uniform"][1]["metrics"] == r["methods"]["Uniform"][1]["metrics"]


def test_setup_validates_the_profile_and_resolves_the_output_folder(tmp_path):
    P, out = S.setup("smoke", str(tmp_path / "o"))
    assert set(P) == {"datasets", "rules", "symmetric", "real_grid"} and out == (tmp_path / "o").resolve()
    assert out.is_dir()
    with pytest.raises(ValueError, match="no profile 'nope'"):
        S.setup("nope", str(tmp_path))
