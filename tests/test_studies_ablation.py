"""Section "Ablation" (mtl.studies.ablation): Table 1 reading, the no-R_align step, variants, the C10 verdict."""
import numpy as np
import pytest
import torch

from mtl.curves import ExtraStep
from mtl.studies import ablation as A

DIRS = {"a": {"acc": True}}


def _recs(values):
    return [{"metrics": {"a": {"acc": float(v)}}} for v in values]


def _result(methods, seeds=(0, 1, 2), **extra):
    return {"methods": methods, "base": {"a": {"acc": 1.0}}, "dirs": DIRS, "seeds": list(seeds), **extra}


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


def test_c10_needs_all_three_parts():
    base = {"FairGrad": _recs([1.0, 1.0, 1.0]), "EXTRA-F w/o R_o": _recs([1.0, 1.01, 0.99]),
            "EXTRA-F w/o R_align": _recs([1.0, 1.01, 0.99]), "EXTRA-F Bézier": _recs([1.0, 1.01, 0.99])}
    best = _result({**base, "EXTRA-F (full)": _recs([1.2, 1.21, 1.2])})
    assert A.c10_ablation(best, "x")["verdict"] == "supports"
    worse = _result({**base, "EXTRA-F (full)": _recs([0.8, 0.81, 0.8])})
    assert A.c10_ablation(worse, "x")["verdict"] == "contradicts"
    tie = _result({**base, "EXTRA-F Bézier": _recs([1.2, 1.21, 1.2]), "EXTRA-F (full)": _recs([1.2, 1.21, 1.2])})
    assert A.c10_ablation(tie, "x")["verdict"] == "inconclusive"
