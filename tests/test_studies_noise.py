"""Section "Data noise and quantity" (mtl.studies.noise): conditions, Δm tables and the C5/C6 verdicts."""
import numpy as np
import pytest

from mtl.experiment import train_run
from mtl.metrics import delta_m
from mtl.studies import noise

DIRS = {"segmentation": {"miou": True}, "depth": {"rmse": False}, "normal": {"mean": False}}
BASE = {"segmentation": {"miou": 0.5}, "depth": {"rmse": 0.8}, "normal": {"mean": 30.0}}


def _metrics(r: float) -> dict:
    """Metrics whose Δm% against BASE is exactly ``r`` (every task improves by r %)."""
    return {"segmentation": {"miou": 0.5 * (1 + r / 100)}, "depth": {"rmse": 0.8 * (1 - r / 100)},
            "normal": {"mean": 30.0 * (1 - r / 100)}}


def _condition(stl_dm, mtl_dm, kind="clean", fraction=1.0, steps=100):
    stl = {t: [{"metrics": {t: _metrics(r)[t]}} for r in stl_dm] for t in DIRS}
    return {"stl": stl, "mtl": [{"metrics": _metrics(r)} for r in mtl_dm], "kind": kind, "fraction": fraction,
            "corruption": {}, "steps": steps}


def _result(conds: dict) -> dict:
    """A synthetic study result: condition -> (STL Δm per seed, MTL Δm per seed, kind, fraction)."""
    c = {name: _condition(*v) for name, v in conds.items()}
    return {"conditions": c, "base": BASE, "dirs": DIRS, "seeds": [0, 1, 2, 3], "clean": next(iter(c))}


JITTER = np.array([0.1, -0.1, 0.05, -0.05])
RULES = noise.section_rules(noise.profiles.load("noise", "cpu"))     # the preregistered rules, from the yaml
PASSED = {"passed": True, "detail": "constructed runs, trained"}
BOUND = lambda draws: 0.05 + 3 * np.sqrt(0.05 * 0.95 / draws)  # noqa: E731  α + 3 Monte Carlo SE


def _c5(r, adequacy=PASSED):
    return noise.c5_noise(r, RULES, adequacy)


def _c6(r, adequacy=PASSED):
    return noise.c6_quantity(r, RULES, adequacy)
CLEAN = (JITTER * 0, -3 + JITTER, "clean", 1.0)


def test_kind_names_what_a_condition_changes_and_rejects_mixtures():
    assert noise.kind({}) == "clean"
    assert noise.kind({"label_noise": 0.5, "depth_sigma": 0.1}) == "noise"
    assert noise.kind({"scans": 0.5}) == "scans"
    assert noise.kind({"scenes": 1}) == "scenes"
    with pytest.raises(ValueError, match="one thing"):
        noise.kind({"scenes": 0.5, "label_noise": 0.5})


def test_run_study_needs_clean_first(tmp_path):
    with pytest.raises(ValueError, match="first condition must be clean"):
        noise.run_study(tmp_path, {"spec": {}, "seeds": [0], "conditions": {"noise": {"label_noise": 0.5}}})


def test_gaps_are_seed_paired_mtl_minus_stl_against_the_clean_baseline():
    r = _result({"clean": CLEAN, "noise": (-10 + JITTER, -14 + 2 * JITTER, "noise", 1.0)})
    np.testing.assert_allclose(noise.gaps(r, "noise"), (-14 + 2 * JITTER) - (-10 + JITTER), atol=1e-9)
    tab = noise.table(r)
    assert list(tab.index) == [f"{c} · {m}" for c in ("clean", "noise") for m in (noise.STL, noise.MTL)]
    assert np.isnan(tab.loc["clean · Single-task", "gap"])
    assert tab.loc["noise · Multi-task", "delta_m"] == pytest.approx(-14, abs=1e-6)


def test_c5_supports_equal_drops_and_contradicts_an_amplified_gap():
    alike = _result({"clean": CLEAN, "noise": (-10 + JITTER, -13 + JITTER[::-1], "noise", 1.0)})
    v = _c5(alike)
    assert v["verdict"] == "supports" and v["rule"]["parts"]["gap not amplified"]["kind"] == "non-inferiority"
    amplified = _result({"clean": CLEAN, "noise": (-10 + JITTER, -25 + JITTER[::-1], "noise", 1.0)})
    assert _c5(amplified)["verdict"] == "contradicts"
    helps = _result({"clean": CLEAN, "noise": (5 + JITTER, 2 + JITTER, "noise", 1.0)})
    assert _c5(helps)["verdict"] == "contradicts"
    spread = _result({"clean": CLEAN, "noise": (-10 + 30 * JITTER, -13 - 30 * JITTER, "noise", 1.0)})
    v = _c5(spread)
    assert v["verdict"] == "inconclusive" and v["seeds_needed"] > 4
    failed = _c5(alike, {"passed": False, "detail": "short of the bar"})
    assert failed["verdict"] == "untestable" and failed["rule_verdict"] == "supports"


def test_c5_under_the_null_errs_at_most_alpha_each_way():
    """Noise costs STL nothing and MTL exactly the margin more: the gap widens by exactly the margin
    (the boundary of "not amplified") and STL is not hurt (the boundary of "hurts")."""
    rng = np.random.default_rng(2)
    draws, m = 400, RULES["C5_not_amplified"].margin
    out = []
    for _ in range(draws):
        e = rng.standard_normal((4, 4))
        out.append(_c5(_result({"clean": (e[0], -3 + e[1], "clean", 1.0),
                                "noise": (e[0] + e[2], -3 - m + e[1] + e[2] + e[3], "noise", 1.0)}))["verdict"])
    out = np.array(out)
    assert (out == "supports").mean() <= BOUND(draws) and (out == "contradicts").mean() <= BOUND(draws)


def _quantity(gap_at, noise_sd=0.0, rng=None, steps=100):
    """Clean plus scans/scenes halvings whose MTL − STL gap is ``gap_at(fraction)`` (plus noise)."""
    jit = (lambda: noise_sd * rng.standard_normal(4)) if noise_sd else (lambda: JITTER[::-1])
    conds = {"clean": (JITTER * 0, -3 + jit(), "clean", 1.0)} if noise_sd else {"clean": CLEAN}
    for kind in ("scans", "scenes"):
        for f in (0.5, 0.25, 0.125):
            conds[f"{kind} {f}"] = (-1 + JITTER, -1 + gap_at(f) + jit(), kind, f,
                                    steps if isinstance(steps, int) else int(100 * f))
    return _result(conds)


def test_c6_follows_the_slope_of_the_gap_in_log_data():
    assert _c6(_quantity(lambda f: -3 + 4 * np.log2(f)))["verdict"] == "supports"
    assert _c6(_quantity(lambda f: -3 - 4 * np.log2(f)))["verdict"] == "contradicts"
    flat = _c6(_quantity(lambda f: -3.0))
    assert flat["verdict"] == "inconclusive"
    slopes = noise.gap_slopes(_quantity(lambda f: -3 + 4 * np.log2(f)))
    np.testing.assert_allclose(slopes.mean(), 4, atol=0.2)


def test_c6_is_untestable_when_less_data_also_means_fewer_steps():
    v = _c6(_quantity(lambda f: -3 + 4 * np.log2(f), steps="by fraction"))
    assert v["verdict"] == "untestable" and v["rule_verdict"] == "supports"
    assert "fewer optimisation steps" in v["evidence"] and "clean 100" in v["evidence"]


def test_optimisation_steps_count_as_the_trainer_does():
    kw = {"tasks": ["segmentation", "depth", "normal"], "height": 16, "width": 24, "train_scenes": 4,
          "val_scenes": 1, "test_scenes": 1, "scans_per_scene": 4}
    spec = {"dataset": "scenes", "dataset_kw": kw,
            "train": {"epochs": 3, "batch_size": 4}}
    assert noise.optimisation_steps(spec, {}) == 3 * 16 // 4
    assert noise.optimisation_steps(spec, {"scenes": 1}) == 3 * 1        # 4 samples: one batch
    assert noise.optimisation_steps({**spec, "train": {**spec["train"], "max_steps_per_epoch": 2}}, {}) == 6
    fixed = {**spec, "train": {**spec["train"], "steps_per_epoch": 4}}     # C6 at a fixed step budget
    assert noise.optimisation_steps(fixed, {}) == noise.optimisation_steps(fixed, {"scenes": 1}) == 12


def test_c6_under_the_null_errs_at_most_alpha_each_way():
    rng = np.random.default_rng(3)
    draws = 400
    out = np.array([_c6(_quantity(lambda f: -3.0, noise_sd=1.0, rng=rng))["verdict"] for _ in range(draws)])
    assert (out == "supports").mean() <= BOUND(draws) and (out == "contradicts").mean() <= BOUND(draws)


def test_c6_needs_a_subsampled_condition():
    with pytest.raises(ValueError, match="subsampled"):
        _c6(_result({"clean": CLEAN, "noise": (-10 + JITTER, -13 + JITTER, "noise", 1.0)}))


def test_paper_table_delta_m_follows_eq5_from_its_own_metrics():
    ref = noise.PAPER_TABLE5_REPLICA
    base = ref["rows"]["clean · Single-task"]
    for name, row in ref["rows"].items():
        got = delta_m({c: row[c] for c in ref["columns"]}, {c: base[c] for c in ref["columns"]}, ref["columns"],
                      "improvement")
        assert got == pytest.approx(row["delta_m"], abs=0.01), name


def test_corruption_spec_key_trains_on_the_corrupted_split_and_changes_the_run_id(tmp_path):
    spec = {"name": "t", "dataset": "scenes", "backbone": "segnet",
            "backbone_kw": {"width": 4, "stages": 2, "convs": 1},
            "dataset_kw": {"tasks": ["segmentation", "depth", "normal"], "height": 16, "width": 24, "train_scenes": 4,
                           "val_scenes": 1, "test_scenes": 1, "scans_per_scene": 4},
            "train": {"epochs": 1, "batch_size": 4}}
    assert noise.train_fraction(spec, {"scenes": 1}) == pytest.approx(0.25)
    assert noise.train_fraction(spec, {"label_noise": 0.5}) == 1.0
    clean = train_run(tmp_path, spec)
    noisy = train_run(tmp_path, noise.condition_spec(spec, "noise", {"label_noise": 0.5, "depth_sigma": 0.5}, 0))
    assert clean["run_dir"] != noisy["run_dir"]
    # seed 0 is the default: canonical ids leave it out
    assert noisy["params"]["corruption"] == {"label_noise": 0.5, "depth_sigma": 0.5}
    with pytest.raises(ValueError, match="label_noise"):
        train_run(tmp_path, {**spec, "name": "bad", "corruption": {"label_noise": 2.0}})
