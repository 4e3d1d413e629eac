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


def _condition(stl_dm, mtl_dm, kind="clean", fraction=1.0):
    stl = {t: [{"metrics": {t: _metrics(r)[t]}} for r in stl_dm] for t in DIRS}
    return {"stl": stl, "mtl": [{"metrics": _metrics(r)} for r in mtl_dm], "kind": kind, "fraction": fraction,
            "corruption": {}}


def _result(conds: dict) -> dict:
    """A synthetic study result: condition -> (STL Δm per seed, MTL Δm per seed, kind, fraction)."""
    c = {name: _condition(*v) for name, v in conds.items()}
    return {"conditions": c, "base": BASE, "dirs": DIRS, "seeds": [0, 1, 2, 3], "clean": next(iter(c))}


JITTER = np.array([0.1, -0.1, 0.05, -0.05])
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
    assert noise.c5_noise(alike)["verdict"] == "supports"
    amplified = _result({"clean": CLEAN, "noise": (-10 + JITTER, -25 + JITTER[::-1], "noise", 1.0)})
    assert noise.c5_noise(amplified)["verdict"] == "contradicts"
    helps = _result({"clean": CLEAN, "noise": (5 + JITTER, 2 + JITTER, "noise", 1.0)})
    assert noise.c5_noise(helps)["verdict"] == "contradicts"
    spread = _result({"clean": CLEAN, "noise": (-10 + 30 * JITTER, -13 - 30 * JITTER, "noise", 1.0)})
    assert noise.c5_noise(spread)["verdict"] == "inconclusive"


def _quantity(gap_at):
    """Clean plus scans/scenes halvings whose MTL − STL gap is ``gap_at(fraction)``."""
    conds = {"clean": CLEAN}
    for kind in ("scans", "scenes"):
        for f in (0.5, 0.25, 0.125):
            conds[f"{kind} {f}"] = (-1 + JITTER, -1 + gap_at(f) + JITTER[::-1], kind, f)
    return _result(conds)


def test_c6_follows_the_slope_of_the_gap_in_log_data():
    assert noise.c6_quantity(_quantity(lambda f: -3 + 4 * np.log2(f)))["verdict"] == "supports"
    assert noise.c6_quantity(_quantity(lambda f: -3 - 4 * np.log2(f)))["verdict"] == "contradicts"
    flat = noise.c6_quantity(_quantity(lambda f: -3.0))
    assert flat["verdict"] == "inconclusive"
    slopes = noise.gap_slopes(_quantity(lambda f: -3 + 4 * np.log2(f)))
    np.testing.assert_allclose(slopes.mean(), 4, atol=0.2)


def test_c6_needs_a_subsampled_condition():
    with pytest.raises(ValueError, match="subsampled"):
        noise.c6_quantity(_result({"clean": CLEAN, "noise": (-10 + JITTER, -13 + JITTER, "noise", 1.0)}))


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
