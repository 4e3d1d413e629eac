"""Section "Ablation" (mtl.studies.ablation): Table 1 reading, the no-R_align step, variants, the C10 verdict."""
import numpy as np
import pytest
import torch

from mtl import stats as ST
from mtl.curves import ExtraStep
from mtl.studies import ablation as A

from _records import recs as _recs, result as _result


def test_table1_reading_uses_each_printed_value_once():
    assert sorted(A.SEED000_TABLE1_READING.values()) == sorted(A.SEED000_TABLE1_PRINTED)
    assert set(A.SEED000_TABLE1_READING) == {"FairGrad", *A.VARIANTS}


def test_mean_align_weight_is_the_mean_of_r_align_weight():
    t = np.linspace(0, 1, 200001)
    assert A.MEAN_ALIGN_WEIGHT == pytest.approx(np.trapezoid(2 * np.exp(-np.abs(t - 0.5)), t), rel=1e-6)


def test_no_align_step_removes_only_the_t_dependence_of_e3():
    tasks = ["segmentation", "depth", "normal"]
    L = torch.tensor([[1.0, 2.0, 3.0], [1.5, 0.5, 2.0]], dtype=torch.float64)      # [2, T]
    for t in (torch.tensor([0.1, 0.9], dtype=torch.float64), torch.tensor([0.45, 0.55], dtype=torch.float64)):
        full, no = ExtraStep(alpha=0.5).objective(L, t, tasks), A.NoAlignStep(alpha=0.5).objective(L, t, tasks)
        assert float(no["total"] - (full["total"] - full["r_align"])) == pytest.approx(A.MEAN_ALIGN_WEIGHT * 1.25)
    with pytest.raises(ValueError, match="three task groups"):
        A.NoAlignStep(groups=[["segmentation"], ["depth", "normal"]]).objective(L, t, tasks)


def test_variant_stage2():
    st2 = {"step": {"alpha": 0.5}, "train": {"epochs": 1}}
    assert A.variant_stage2(st2, "EXTRA-F w/o R_o")[0]["step"]["alpha"] == 0.0
    assert A.variant_stage2(st2, "EXTRA-F Bézier")[0]["family"] == "bezier"
    assert A.variant_stage2(st2, "EXTRA-F w/o R_align")[1] is A.NoAlignStep
    assert st2 == {"step": {"alpha": 0.5}, "train": {"epochs": 1}}          # not mutated
    with pytest.raises(ValueError, match="valid"):
        A.variant_stage2(st2, "EXTRA-F w/o everything")


RULES = {"C10_ablated": {"kind": "superiority", "direction": "less", "floor": 0.25},
         "C10_base": {"kind": "superiority", "direction": "less", "floor": 1.0}}
PASS = {"passed": True, "detail": "synthetic runs, well above trivial"}
FAIL = {"passed": False, "detail": "0/3 runs beat the trivial predictor"}


def _dm(values):
    """Records whose Δm (drop, vs base acc 1.0) is ``values``."""
    return _recs([1 - v / 100 for v in values])


def _c10(full_minus, seeds=5, noise=0.1, seed=0):
    """Full EXTRA-F's Δm minus each other row's: ``full_minus[row]`` (or one number for all rows)."""
    rng = np.random.default_rng(seed)
    rows = ["FairGrad", *A.VARIANTS[1:]]
    diff = full_minus if isinstance(full_minus, dict) else {r: full_minus for r in rows}
    full = -5 + rng.normal(0, 1, seeds)
    methods = {"EXTRA-F (full)": _dm(full)}
    for r in rows:
        methods[r] = _dm(full - diff[r] + rng.normal(0, noise, seeds))
    return _result(methods, seeds=range(seeds))


def test_c10_each_way_the_base_part_and_the_gate():
    assert A.c10_ablation(_c10(-2.0), "x", RULES, PASS)["verdict"] == "supports"
    assert A.c10_ablation(_c10(+2.0), "x", RULES, PASS)["verdict"] == "contradicts"
    worse_than_base = {"FairGrad": +2.0, "EXTRA-F w/o R_o": -2.0, "EXTRA-F w/o R_align": -2.0, "EXTRA-F Bézier": -2.0}
    v = A.c10_ablation(_c10(worse_than_base), "x", RULES, PASS)
    assert v["verdict"] == "contradicts"
    assert [p["verdict"] for p in v["parts"]] == ["supports", "supports", "supports", "contradicts"]
    assert A.c10_ablation(_c10(-2.0, noise=6.0), "x", RULES, PASS)["verdict"] == "inconclusive"
    un = A.c10_ablation(_c10(-2.0), "x", RULES, FAIL, scale_needed="more epochs")
    assert un["verdict"] == "untestable" and un["rule_verdict"] == "supports" and un["adequacy"]["passed"] is False


@pytest.mark.parametrize("seeds", [3, 5])
def test_c10_null_simulation(seeds):
    """No difference between the full system and any row: false supports / contradicts ≤ 5 % + 3 MC SE."""
    rng = np.random.default_rng(3)
    rules = {k: ST.Rule.from_dict(r) for k, r in RULES.items()}
    out = []
    for _ in range(400):
        full = rng.normal(0, 2.0, seeds)
        others = {row: full - rng.normal(0, 2.0, seeds) for _, row, _ in A.C10_PARTS}
        out.append(A.c10_decide(full, others, rules).verdict)
    v = np.asarray(out)
    bound = 0.05 + 3 * np.sqrt(0.05 * 0.95 / 400)
    assert np.mean(v == "supports") <= bound and np.mean(v == "contradicts") <= bound


def test_delta_m_averages_seed_000s_metric_sets():
    """Table 1 (NYUv2) has 9 columns, Table 2 (CityScapes) 4: depth RMSE (our gate's metric) is not among them."""
    from mtl.studies import _extra_curves as X
    kw = {"height": 16, "width": 24, "train_scenes": 3, "val_scenes": 1, "test_scenes": 1, "scans_per_scene": 4}
    nyu = X.paper_dirs({"dataset": "scenes", "dataset_kw": kw, "tasks": ["segmentation", "depth", "normal"]})
    assert {t: sorted(d) for t, d in nyu.items()} == {
        "segmentation": ["miou", "pix_acc"], "depth": ["abs_err", "rel_err"],
        "normal": ["mean", "median", "within_11", "within_22", "within_30"]}
    assert nyu["segmentation"]["miou"] and not nyu["depth"]["abs_err"] and not nyu["normal"]["mean"]
    cs = X.paper_dirs({"dataset": "scenes", "dataset_kw": kw, "tasks": ["segmentation", "depth"]})
    assert sum(len(d) for d in cs.values()) == 4
