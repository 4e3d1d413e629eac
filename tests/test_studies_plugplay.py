"""Section "Plug-and-play and α" (mtl.studies.plugplay): Table 2 transcription, recorded stage 2, C13/C15 verdicts."""
import numpy as np
import pytest

from mtl.metrics import delta_m
from mtl.studies import plugplay as S

from _records import recs as _recs, result as _result


def test_table2_transcription_recomputes_printed_delta():
    p = S.paper_table()
    higher = {"segmentation/miou": True, "segmentation/pix_acc": True, "depth/abs_err": False, "depth/rel_err": False}
    base = p.loc["Single-task", list(higher)].to_dict()
    for method in p.index[1:]:
        dm = delta_m(p.loc[method, list(higher)].to_dict(), base, higher, convention="drop")
        # the printed Abs. Err. has 3 significant digits (0.0125 ± 0.00005 is ±0.4%): allow 0.1 points
        assert dm == pytest.approx(p.loc[method, S.DM], abs=0.1), method


RULES = {"C13_base": {"kind": "superiority", "direction": "less", "floor": 1.0},
         "C15_stable": {"kind": "equivalence", "margin": 1.5}}
PASS = {"passed": True, "detail": "synthetic runs, well above trivial"}
FAIL = {"passed": False, "detail": "0/3 runs beat the trivial predictor"}


def _dm(values):
    """Records whose Δm (drop, vs base acc 1.0) is ``values``: acc = 1 − Δm / 100."""
    return _recs([1 - v / 100 for v in values])


def _c13(extra_minus_plain, seeds=5, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    methods = {}
    for b in S.BASES:
        plain, extra = S.BASES[b]
        p = 10 + rng.normal(0, 1, seeds)
        methods[plain] = _dm(p)
        methods[extra] = _dm(p + extra_minus_plain + rng.normal(0, noise, seeds))
    return _result(methods, seeds=range(seeds))


def test_c13_each_way_and_the_gate():
    assert S.c13_plug_and_play(_c13(-3.0), "x", RULES, PASS)["verdict"] == "supports"
    assert S.c13_plug_and_play(_c13(+3.0), "x", RULES, PASS)["verdict"] == "contradicts"
    inc = S.c13_plug_and_play(_c13(-3.0, noise=8.0), "x", RULES, PASS)
    assert inc["verdict"] == "inconclusive" and inc["seeds_needed"] > 5
    small = S.c13_plug_and_play(_c13(-0.3, noise=0.01), "x", RULES, PASS)      # significant but below the floor
    assert small["verdict"] == "inconclusive"
    un = S.c13_plug_and_play(_c13(-3.0), "x", RULES, FAIL, scale_needed="more epochs")
    assert un["verdict"] == "untestable" and un["rule_verdict"] == "supports" and "more epochs" in un["evidence"]
    assert [p["part"] for p in un["parts"]] == ["EXTRA-L − LS", "EXTRA-C − CAGrad", "EXTRA-F − FairGrad"]
    assert S.c13_plug_and_play(_c13(-3.0), "x", RULES, PASS)["rule"]["multiplicity"] == "holm"


def _rates(verdicts):
    v = np.asarray(verdicts)
    return float(np.mean(v == "supports")), float(np.mean(v == "contradicts"))


def _bound(rate=0.05, n=400):
    return rate + 3 * np.sqrt(rate * (1 - rate) / n)


@pytest.mark.parametrize("seeds", [3, 5])
def test_c13_null_simulation(seeds):
    """No effect of EXTRA on any base: false supports and false contradicts each ≤ 5 % + 3 MC SE."""
    rng = np.random.default_rng(1)
    rule = S.ST.Rule.from_dict(RULES["C13_base"])
    out = []
    for _ in range(400):
        d = {b: rng.normal(0, 2.0, seeds) for b in "LCF"}
        out.append(S.c13_decide(d, {b: np.zeros(seeds) for b in d}, rule).verdict)
    sup, con = _rates(out)
    assert sup <= _bound() and con <= _bound()


def _c15(shifts, seeds=5, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    common = 5 + rng.normal(0, 1, seeds)
    return _result({}, seeds=range(seeds), alpha_base="ls",
                   alphas={a: _dm(common + d + rng.normal(0, noise, seeds)) for a, d in shifts.items()})


def test_c15_each_way_and_the_gate():
    flat = {0.1: 0.1, 0.3: -0.2, 0.5: 0.0, 0.7: 0.1, 0.9: 0.0}
    assert S.c15_alpha(_c15(flat), "x", RULES, PASS)["verdict"] == "supports"
    steep = {0.1: 0.0, 0.3: 3.0, 0.5: 6.0, 0.7: 9.0, 0.9: 12.0}
    assert S.c15_alpha(_c15(steep), "x", RULES, PASS)["verdict"] == "contradicts"
    noisy = S.c15_alpha(_c15(flat, noise=3.0), "x", RULES, PASS)
    assert noisy["verdict"] == "inconclusive"                       # no significant difference is not stability
    un = S.c15_alpha(_c15(flat), "x", RULES, FAIL)
    assert un["verdict"] == "untestable" and un["rule_verdict"] == "supports"
    assert "no α grid" in un["paper"]
    with pytest.raises(ValueError, match="0.5"):
        S.c15_alpha(_c15({0.1: 0.0, 0.9: 0.0}), "x", RULES, PASS)


@pytest.mark.parametrize("seeds", [3, 5])
def test_c15_null_simulation_at_the_margin(seeds):
    """Every α exactly at the margin (the least favourable case for 'stable'): false supports ≤ 5 % + 3 SE;
    and with no effect at all, false contradicts ≤ 5 % + 3 SE."""
    rng = np.random.default_rng(2)
    rule = S.ST.Rule.from_dict(RULES["C15_stable"])
    at_margin, none = [], []
    for _ in range(400):
        signs = rng.choice([-1.0, 1.0], 4)
        d = {a: s * 1.5 + rng.normal(0, 1.0, seeds) for a, s in zip((0.1, 0.3, 0.7, 0.9), signs)}
        d[0.5] = np.zeros(seeds)
        at_margin.append(S.c15_decide(d, rule).verdict)
        d0 = {a: rng.normal(0, 1.0, seeds) for a in (0.1, 0.3, 0.5, 0.7, 0.9)}
        none.append(S.c15_decide(d0, rule).verdict)
    assert _rates(at_margin)[0] <= _bound()
    assert _rates(none)[1] <= _bound()


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
