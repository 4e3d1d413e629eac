"""Section "Plug-and-play and α" (mtl.studies.plugplay): Table 2 transcription, recorded stage 2, C13/C15 verdicts."""
import pytest

from mtl.metrics import delta_m
from mtl.studies import plugplay as S

DIRS = {"a": {"acc": True}}


def _recs(values):
    return [{"metrics": {"a": {"acc": float(v)}}} for v in values]


def _result(methods, seeds=(0, 1, 2), **extra):
    return {"methods": methods, "base": {"a": {"acc": 1.0}}, "dirs": DIRS, "seeds": list(seeds), **extra}


def test_table2_transcription_recomputes_printed_delta():
    p = S.paper_table()
    higher = {"segmentation/miou": True, "segmentation/pix_acc": True, "depth/abs_err": False, "depth/rel_err": False}
    base = p.loc["Single-task", list(higher)].to_dict()
    for method in p.index[1:]:
        dm = delta_m(p.loc[method, list(higher)].to_dict(), base, higher, convention="drop")
        # the printed Abs. Err. has 3 significant digits (0.0125 ± 0.00005 is ±0.4%): allow 0.1 points
        assert dm == pytest.approx(p.loc[method, S.DM], abs=0.1), method


def test_c13_directions():
    good = _result({"LS": _recs([1.0, 1.01, 0.99]), "EXTRA-L": _recs([1.2, 1.22, 1.19])})
    assert S.c13_plug_and_play(good, "x")["verdict"] == "supports"
    bad = _result({"LS": _recs([1.0, 1.01, 0.99]), "EXTRA-L": _recs([0.8, 0.82, 0.79])})
    assert S.c13_plug_and_play(bad, "x")["verdict"] == "contradicts"
    one = _result({"LS": _recs([1.0]), "EXTRA-L": _recs([1.2])}, seeds=[0])
    assert S.c13_plug_and_play(one, "x")["verdict"] == "inconclusive"


def test_c15_stable_unstable_and_one_seed():
    flat = _result({},
                   alphas={a: _recs([1.0 + d, 1.01 - d, 0.99]) for a, d in ((0.1, 0.0), (0.5, 0.005), (0.9, -0.003))},
                   alpha_base="ls")
    assert S.c15_alpha(flat, "x")["verdict"] == "supports"
    steep = _result({}, alphas={a: _recs([1.0 - a, 1.01 - a, 0.99 - a]) for a in (0.1, 0.5, 0.9)}, alpha_base="ls")
    assert S.c15_alpha(steep, "x")["verdict"] == "contradicts"
    one = _result({}, seeds=[0], alphas={a: _recs([1.0 - a]) for a in (0.1, 0.9)}, alpha_base="ls")
    assert S.c15_alpha(one, "x")["verdict"] == "inconclusive"


SPEC = {"dataset": "scenes", "tasks": ["segmentation", "depth"], "backbone": "segnet",
        "dataset_kw": {"height": 16, "width": 24, "train_scenes": 2, "val_scenes": 1, "test_scenes": 1,
                       "scans_per_scene": 2},
        "backbone_kw": {"width": 4, "stages": 2, "convs": 1}, "train": {"epochs": 1, "batch_size": 4}}


def test_extra_run_is_recorded_and_shares_stage_one(tmp_path):
    st2 = {"step": {"alpha": 0.5}, "train": {"epochs": 1, "batch_size": 4, "max_steps_per_epoch": 1}}
    first = S.extra_run(tmp_path, SPEC, "ls", 0, st2)
    ends = S.endpoint_runs(tmp_path, SPEC, "ls", 0)
    assert (all(e["resumed"] for e in ends)
            and first["params"]["endpoints"] == [e["run_dir"].split("/")[-1] for e in ends])
    assert set(first["metrics"]) == {"segmentation", "depth"} and first["info"]["t"] == 0.5
    again = S.extra_run(tmp_path, SPEC, "ls", 0, st2)
    assert again["resumed"] and again["metrics"] == first["metrics"]
    other = S.extra_run(tmp_path, SPEC, "ls", 0, {**st2, "step": {"alpha": 0.1}})
    assert other["run_dir"] != first["run_dir"] and not other["resumed"]
    with pytest.raises(ValueError, match="valid"):
        S.endpoint_runs(tmp_path, SPEC, "pcgrad-typo", 0)


def test_bonferroni_threshold():
    assert S._bonferroni_z(2.0, 1) == pytest.approx(2.0)
    assert S._bonferroni_z(2.0, 10) > S._bonferroni_z(2.0, 3) > 2.0
