"""The scale gate (mtl.adequacy): trivial predictors, perfect scores, the gap and plateau tests."""
import json
import math

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from mtl import adequacy as A
from mtl import tasks as T
from mtl.data import DataBundle


class Samples(Dataset):
    """Per-sample targets ``{task: tensor}`` (stacked along dim 0) with a dummy input."""

    def __init__(self, targets: dict):
        self.targets = targets
        self.n = len(next(iter(targets.values())))

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.zeros(1), {t: y[i] for t, y in self.targets.items()}


def bundle(tasks, train: dict, test: dict) -> DataBundle:
    return DataBundle("synthetic", tasks, Samples(train), Samples(test), Samples(test))


def perfect_metrics(b: DataBundle, split="test") -> dict:
    """The meters' scores of a predictor that outputs the ground truth (as logits where needed)."""
    meters = {t.name: t.make_meter() for t in b.tasks}
    for _, ys in b.loader(split, 4):
        for t in b.tasks:
            y = ys[t.name]
            if t.kind == "segmentation":
                pred = torch.nn.functional.one_hot(y.clamp(min=0), t.out_channels).permute(0, 3, 1, 2).float()
            elif t.kind == "classification":
                pred = torch.nn.functional.one_hot(y, t.out_channels).float()
            elif t.kind in ("edge", "binary"):
                pred = (y.float() * 2 - 1) * 10                     # logits far on the right side
            else:
                pred = y.float()
            meters[t.name].update(pred, y)
    return {n: m.compute() for n, m in meters.items()}


# ----------------------------------------------------------------------------- trivial predictors


def test_majority_class_segmentation_by_hand():
    # train: class 2 is the majority of valid pixels (ignored -1 pixels would make 0 the majority)
    train = torch.full((3, 4, 4), -1)
    train[:, :2] = 2                                  # 24 pixels of class 2
    train[0, 2:] = 1                                  # 8 of class 1
    # test: 10 of class 2, 5 of class 0, 1 of class 3 (ignored pixels excluded)
    test = torch.full((1, 4, 4), -1)
    test.view(-1)[:10] = 2
    test.view(-1)[10:15] = 0
    test.view(-1)[15] = 3
    b = bundle([T.segmentation("seg", 5)], {"seg": train}, {"seg": test})
    assert A.trivial_predictors(b)["seg"].value == 2
    m = A.trivial_metrics(b)["seg"]
    assert m["pix_acc"] == pytest.approx(10 / 16)
    # IoU(2) = 10/16, IoU(0) = IoU(3) = 0; classes 1 and 4 absent from truth and prediction
    assert m["miou"] == pytest.approx((10 / 16) / 3)


def test_majority_class_classification_and_binary():
    y_train = torch.tensor([3, 3, 3, 1, 0, 3, 1])
    y_test = torch.tensor([3, 1, 1, 3, 0])
    pos = torch.tensor([1., 1., 0., 1., 1., 0., 1.])           # majority 1
    neg = torch.tensor([0., 1., 0., 0., 0., 1., 0.])           # majority 0
    b = bundle([T.classification("digit", 4), T.binary("a"), T.binary("b")],
               {"digit": y_train, "a": pos, "b": neg},
               {"digit": y_test, "a": torch.tensor([1., 0., 0., 0., 1.]), "b": torch.tensor([1., 0., 0., 0., 1.])})
    m = A.trivial_metrics(b)
    assert m["digit"]["acc"] == pytest.approx(2 / 5)
    assert m["a"]["acc"] == pytest.approx(2 / 5)
    assert m["b"]["acc"] == pytest.approx(3 / 5)


def test_mean_depth_rmse_is_the_std_of_valid_depths():
    g = torch.Generator().manual_seed(0)
    d = torch.rand(4, 1, 5, 6, generator=g) * 3 + 0.5
    d[0, 0, :2] = 0                                            # invalid pixels are not part of the mean
    b = bundle([T.depth("depth")], {"depth": d}, {"depth": d})
    valid = d[d > 0].double().numpy()
    assert A.trivial_predictors(b)["depth"].value == pytest.approx(valid.mean())
    m = A.trivial_metrics(b)["depth"]
    assert m["rmse"] == pytest.approx(valid.std(ddof=0), rel=1e-5)
    assert m["abs_err"] == pytest.approx(np.abs(valid - valid.mean()).mean(), rel=1e-5)


def test_mean_normal_direction():
    # train: half the valid pixels point along x, half along z; the zero vector is invalid
    n = torch.zeros(2, 3, 2, 2)
    n[0, 0] = 1.0
    n[1, 2] = 1.0
    n[1, :, 0, 0] = 0.0                                        # one invalid pixel: x gets 4, z gets 3
    b = bundle([T.normal("normal")], {"normal": n}, {"normal": n})
    v = torch.tensor(A.trivial_predictors(b)["normal"].value)
    assert v.norm() == pytest.approx(1.0)
    assert v.tolist() == pytest.approx((torch.tensor([4.0, 0, 3.0]) / 5).tolist())
    m = A.trivial_metrics(b)["normal"]
    ax, az = math.degrees(math.acos(0.8)), math.degrees(math.acos(0.6))
    assert m["mean"] == pytest.approx((4 * ax + 3 * az) / 7, rel=1e-5)


def test_edge_prior_or_half_whichever_scores_higher():
    # one edge pixel per 8×8 image: prior 1/64 < 0.05 marks no pixel (odsF 0), 0.5 marks every pixel
    e = torch.zeros(2, 1, 8, 8)
    e[:, 0, 4, 4] = 1
    b = bundle([T.edge("edge")], {"edge": e}, {"edge": e})
    c = A.trivial_predictors(b)["edge"]
    assert c.value == 0.5
    # every pixel predicted: precision = pixels within 1 px of the edge (3×3 = 9 of 64), recall = 1
    p = 9 / 64
    assert A.trivial_metrics(b)["edge"]["odsf"] == pytest.approx(2 * p / (1 + p), rel=1e-5)
    # a prior ≥ 0.05 marks every pixel too: a tie, and the prior is kept
    dense = torch.zeros(2, 1, 8, 8)
    dense[:, 0, ::2, ::2] = 1                                  # prior 1/4
    c = A.trivial_predictors(bundle([T.edge("edge")], {"edge": dense}, {"edge": dense}))["edge"]
    assert c.value == pytest.approx(0.25)


def test_regression_mean_target_in_reported_units():
    y_train = torch.tensor([-1.0, 0.0, 1.0, 2.0])               # mean 0.5 (z-scored units)
    y_test = torch.tensor([0.5, 1.5, -0.5])
    task = T.regression("homo", mean=-6.0, std=2.0, scale=1000.0)
    m = A.trivial_metrics(bundle([task], {"homo": y_train}, {"homo": y_test}))["homo"]
    assert m["mae"] == pytest.approx((0 + 1 + 1) / 3 * 2.0 * 1000.0)


def test_unknown_kind_is_refused():
    odd = T.Task("odd", "ranking", T.regression_loss, T.MAEMeter, {"mae": False}, ("mae",))
    with pytest.raises(ValueError, match="ranking"):
        A.trivial_predictors(bundle([odd], {"odd": torch.zeros(3)}, {"odd": torch.zeros(3)}))


# ----------------------------------------------------------------------------- perfect scores and the gap test


def test_perfect_scores():
    assert A.perfect_score("miou", True) == A.perfect_score("odsf", True) == A.perfect_score("within_30", True) == 1.0
    assert A.perfect_score("rmse", False) == A.perfect_score("mean", False) == A.perfect_score("mae", False) == 0.0
    with pytest.raises(ValueError, match="known"):
        A.perfect_score("rmse", True)


def test_threshold_arithmetic_both_directions():
    r = A.GateRules()
    # higher is better: trivial 0.2, perfect 1 -> threshold 0.4
    assert A.gap_test(0.4, 0.2, "miou", True, r)["passed"]
    assert not A.gap_test(0.399, 0.2, "miou", True, r)["passed"]
    assert A.gap_test(0.5, 0.2, "miou", True, r)["threshold"] == pytest.approx(0.4)
    # lower is better: trivial 2, perfect 0 -> threshold 0.75 × 2 = 1.5 (values exact in binary floating point)
    g = A.gap_test(1.5, 2.0, "rmse", False, r)
    assert g["passed"] and g["threshold"] == 1.5
    assert not A.gap_test(1.501, 2.0, "rmse", False, r)["passed"]
    assert not A.gap_test(float("nan"), 2.0, "rmse", False, r)["passed"]
    # another fraction moves the threshold
    assert A.gap_test(1.0, 2.0, "rmse", False, A.GateRules(gap_fraction=0.5))["passed"]
    assert not A.gap_test(1.01, 2.0, "rmse", False, A.GateRules(gap_fraction=0.5))["passed"]


def test_perfect_predictor_passes_and_trivial_fails():
    g = torch.Generator().manual_seed(1)
    seg = torch.randint(0, 4, (6, 4, 4), generator=g)
    seg[seg == 3] = 0                                          # an imbalanced label map
    depth = torch.rand(6, 1, 4, 4, generator=g) + 0.5
    normal = torch.nn.functional.normalize(torch.randn(6, 3, 4, 4, generator=g), dim=1)
    edge = (torch.rand(6, 1, 4, 4, generator=g) < 0.3).float()
    targets = {"segmentation": seg, "depth": depth, "normal": normal, "edge": edge}
    b = bundle([T.segmentation("segmentation", 4), T.depth(), T.normal(), T.edge()], targets, targets)
    trivial = A.trivial_metrics(b)
    directions = {t.name: t.primary_directions() for t in b.tasks}
    assert A.gate(perfect_metrics(b), trivial, directions).passed
    a = A.gate(trivial, trivial, directions)
    assert not a.passed
    for t in directions:                                       # every task is named in the detail
        assert t in a.detail
    assert "0/4 primary metrics beat the trivial predictor" in a.detail
    assert a.to_dict() == {"passed": False, "detail": a.detail}


# ----------------------------------------------------------------------------- the plateau test


def curve(values, task="depth", metric="rmse"):
    return [{"epoch": i, "val": {task: {metric: v}}} for i, v in enumerate(values)]


def test_plateau_rule():
    r = A.GateRules()
    rising = curve([2.0, 1.6, 1.3, 1.1, 0.9, 0.7])             # still improving by 0.6 of 1.3 in the last 3
    assert not A.plateau_test(rising, "depth", "rmse", False, r)["passed"]
    flat_tail = curve([2.0, 1.0, 0.8, 0.79, 0.795, 0.785])      # best improved 0.015 of 1.215 (1.2 %)
    p = A.plateau_test(flat_tail, "depth", "rmse", False, r)
    assert p["passed"] and p["recent"] == pytest.approx(0.015) and p["total"] == pytest.approx(1.215)
    short = curve([2.0, 1.0, 0.9])                              # 3 epochs < plateau_epochs + 1
    p = A.plateau_test(short, "depth", "rmse", False, r)
    assert not p["passed"] and "3 epochs" in p["text"]
    # a dip in the last epoch does not pass a curve that was still rising: best-so-far values are compared
    dipped = curve([0.1, 0.2, 0.3, 0.5, 0.7, 0.4], "segmentation", "miou")
    assert not A.plateau_test(dipped, "segmentation", "miou", True, r)["passed"]
    assert A.plateau_test(curve([0.1, 0.6, 0.7, 0.7, 0.71, 0.7], "segmentation", "miou"),
                          "segmentation", "miou", True, r)["passed"]
    never = curve([1.0, 1.2, 1.1, 1.3])                         # never improved: flat, left to the gap test
    assert A.plateau_test(never, "depth", "rmse", False, r)["passed"]
    assert not A.plateau_test(curve([1.0, float("nan"), 0.5, 0.5]), "depth", "rmse", False, r)["passed"]
    assert A.plateau_test(None, "depth", "rmse", False, r)["passed"] is None


def test_gate_combines_gap_and_plateau():
    trivial = {"depth": {"rmse": 1.0}}
    dirs = {"depth": {"rmse": False}}
    good = {"depth": {"rmse": 0.5}}
    assert A.gate(good, trivial, dirs, curve([2.0, 0.52, 0.5, 0.5, 0.5])).passed
    a = A.gate(good, trivial, dirs, curve([2.0, 1.5, 1.0, 0.5]))
    assert not a.passed and "not plateaued" in a.detail and "0/1 validation curves plateaued" in a.detail
    a = A.gate(good, trivial, dirs)
    assert a.passed and "plateau not tested" in a.detail
    with pytest.raises(KeyError, match="depth/rmse"):
        A.gate({"depth": {"abs_err": 0.1}}, trivial, dirs)


def test_gate_runs_counts_and_names_failures():
    trivial = {"depth": {"rmse": 1.0}, "segmentation": {"miou": 0.1}}
    dirs = {"depth": {"rmse": False}, "segmentation": {"miou": True}}
    flat = [2.0, 0.52, 0.5, 0.5, 0.5]                          # best improved 0.02 of 1.5 in the last 3
    recs = [
        {"params": {"name": "stl-depth-s0"}, "metrics": {"depth": {"rmse": 0.5}}, "history": curve(flat)},
        {"params": {"name": "stl-depth-s1"}, "metrics": {"depth": {"rmse": 1.53}}, "history": curve(flat)},
        {"params": {"name": "stl-seg-s0"}, "metrics": {"segmentation": {"miou": 0.5}},
         "history": curve([0.1, 0.2, 0.3, 0.4, 0.5], "segmentation", "miou")},
    ]
    a = A.gate_runs(recs, trivial, dirs)
    assert not a.passed
    assert a.detail.startswith("2/3 runs beat the trivial predictor; 2/3 plateaued")
    assert "stl-depth-s1 (depth rmse 1.53 > 0.75" in a.detail and "stl-seg-s0 (segmentation val miou" in a.detail
    assert set(a.runs) == {"stl-depth-s0", "stl-depth-s1", "stl-seg-s0"} and a.runs["stl-depth-s0"].passed
    assert A.gate_runs(recs[:1], trivial, dirs).passed


def test_rules_are_checked():
    with pytest.raises(ValueError, match="gap_fraction"):
        A.GateRules(gap_fraction=0)
    with pytest.raises(ValueError, match="plateau_epochs"):
        A.GateRules(plateau_epochs=0)
    with pytest.raises(ValueError, match="plateau_tol"):
        A.GateRules(plateau_tol=-0.1)


# ----------------------------------------------------------------------------- per spec: cached and recorded


def test_trivial_for_spec_cached_and_recorded(tmp_out, monkeypatch):
    kw = dict(height=16, width=24, train_scenes=2, val_scenes=1, test_scenes=1, scans_per_scene=3)
    spec = {"dataset": "scenes", "backbone": "segnet", "dataset_kw": kw, "tasks": ["depth"], "name": "stl-depth"}
    A._CACHE.clear()
    m = A.trivial_for_spec(spec, out_dir=tmp_out)
    assert set(m) == {"depth"} and m["depth"]["rmse"] > 0
    path = tmp_out / f"trivial-{A.dataset_hash(spec)}.json"
    rec = json.loads(path.read_text())
    assert rec["dataset"] == "scenes" and rec["metrics"]["depth"] == m["depth"]
    assert set(rec["predictors"]) == {"segmentation", "depth", "normal", "edge"}
    # a second spec on the same data (other tasks, other model) is served from the cache
    monkeypatch.setattr(A, "trivial_predictors", lambda b: pytest.fail("recomputed"))
    other = {**spec, "tasks": ["segmentation", "edge"], "backbone_kw": {"width": 8}}
    assert A.dataset_hash(other) == A.dataset_hash(spec)
    assert set(A.trivial_for_spec(other)) == {"segmentation", "edge"}
    # the trivial segmentation of the real scenes: its mIoU is the majority share over the classes present
    assert 0 < A.trivial_for_spec(other)["segmentation"]["miou"] < 0.5
