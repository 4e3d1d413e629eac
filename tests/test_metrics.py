"""Metric oracles computed by hand, and the Δm sign conventions."""
import math

import numpy as np
import pytest
import torch

from mtl import metrics as M


def test_confusion_and_miou_hand_example():
    gt = torch.tensor([[0, 0, 1, -1]])
    pred = torch.tensor([[0, 1, 1, 2]])
    cm = M.confusion_matrix(pred, gt, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]
    # class 0: I=1, U=2; class 1: I=1, U=2; class 2 absent from gt and (valid) pred -> excluded
    assert M.miou_from_confusion(cm) == pytest.approx(0.5)
    assert M.pixel_accuracy_from_confusion(cm) == pytest.approx(2 / 3)


def test_segmentation_meter_streams_over_batches():
    meter = M.SegmentationMeter(2)
    logits = torch.tensor([[[[5.0, -5.0]], [[-5.0, 5.0]]]])   # [1, 2, 1, 2] -> predicts [0, 1]
    meter.update(logits, torch.tensor([[[0, 0]]]))
    meter.update(logits, torch.tensor([[[0, 1]]]))
    # over both batches: gt 0 predicted 0 twice, gt 0 predicted 1 once, gt 1 predicted 1 once
    assert meter.compute()["miou"] == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_depth_meter_ignores_invalid_pixels():
    m = M.DepthMeter()
    pred = torch.tensor([1.0, 2.0, 5.0]).reshape(1, 1, 1, 3)
    gt = torch.tensor([2.0, 2.0, 0.0]).reshape(1, 1, 1, 3)
    r = m.update(pred, gt) or m.compute()
    assert r["abs_err"] == pytest.approx(0.5)
    assert r["rel_err"] == pytest.approx(0.25)
    assert r["rmse"] == pytest.approx(math.sqrt(0.5))


def test_normal_meter_angles():
    m = M.NormalMeter()
    gt = torch.tensor([[0, 0, 1.0], [0, 0, 1.0], [0, 0, 0.0]]).T.reshape(1, 3, 1, 3)
    pred = torch.tensor([[0, 0, 3.0], [1.0, 0, 0], [1.0, 0, 0]]).T.reshape(1, 3, 1, 3)  # 0°, 90°, invalid
    m.update(pred, gt)
    r = m.compute()
    assert r["mean"] == pytest.approx(45.0)
    assert r["median"] == pytest.approx(0.0)   # torch median of an even count takes the lower value
    assert r["within_11"] == pytest.approx(0.5)


def test_edge_meter_perfect_and_tolerance():
    gt = torch.zeros(1, 1, 8, 8)
    gt[0, 0, :, 3] = 1
    logits = (gt * 20 - 10)
    m = M.EdgeMeter()
    m.update(logits, gt)
    assert m.compute()["odsf"] == pytest.approx(1.0)
    shifted = torch.roll(logits, 1, dims=3)
    m1, m0 = M.EdgeMeter(tolerance=1), M.EdgeMeter(tolerance=0)
    m1.update(shifted, gt)
    m0.update(shifted, gt)
    assert m1.compute()["odsf"] == pytest.approx(1.0)
    assert m0.compute()["odsf"] == pytest.approx(0.0)


def test_accuracy_and_mae_in_original_units():
    a = M.AccuracyMeter()
    a.update(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 0]))
    assert a.compute()["acc"] == 0.5
    mae = M.MAEMeter(mean=10.0, std=2.0, scale=1000.0)
    mae.update(torch.tensor([1.0, -1.0]), torch.tensor([0.5, 0.0]))
    assert mae.compute()["mae"] == pytest.approx((0.5 + 1.0) / 2 * 2.0 * 1000.0)


def test_delta_m_conventions_and_example():
    base = {"miou": 0.40, "rmse": 0.60}
    new = {"miou": 0.42, "rmse": 0.63}
    hib = {"miou": True, "rmse": False}
    assert M.relative_improvements(new, base, hib) == pytest.approx({"miou": 5.0, "rmse": -5.0})
    assert M.delta_m(new, base, hib) == pytest.approx(0.0)
    better = {"miou": 0.44, "rmse": 0.54}
    assert M.delta_m(better, base, hib) == pytest.approx(10.0)
    assert M.delta_m(better, base, hib, convention="drop") == pytest.approx(-10.0)
    with pytest.raises(ValueError, match="convention"):
        M.delta_m(new, base, hib, convention="gain")
    with pytest.raises(KeyError, match="missing"):
        M.delta_m({"miou": 1.0}, base, hib)


def test_delta_m_zero_baseline_is_left_out():
    assert M.delta_m({"a": 0.5, "b": 2.0}, {"a": 0.0, "b": 1.0}, {"a": True, "b": True}) == pytest.approx(100.0)


def test_delta_p_weighs_tasks_not_metrics():
    hib = {"seg": {"miou": True}, "normal": {"mean": False, "median": False, "within": True}}
    base = {"seg": {"miou": 1.0}, "normal": {"mean": 1.0, "median": 1.0, "within": 1.0}}
    new = {"seg": {"miou": 1.3}, "normal": {"mean": 1.0, "median": 1.0, "within": 1.0}}
    assert M.delta_p(new, base, hib) == pytest.approx(15.0)       # (30 + 0) / 2 tasks
    flat_new = {"miou": 1.3, "mean": 1.0, "median": 1.0, "within": 1.0}
    flat_base = {k: 1.0 for k in flat_new}
    flat_hib = {"miou": True, "mean": False, "median": False, "within": True}
    assert M.delta_m(flat_new, flat_base, flat_hib) == pytest.approx(7.5)  # 30 / 4 metrics


def test_mean_rank_and_mean_se():
    scores = {"a": {"acc": 0.9, "err": 1.0}, "b": {"acc": 0.8, "err": 1.0}, "c": {"acc": 0.7, "err": 2.0}}
    ranks = M.mean_rank(scores, {"acc": True, "err": False})
    assert ranks == pytest.approx({"a": 1.25, "b": 1.75, "c": 3.0})
    m, se = M.mean_se([1.0, 2.0, 3.0])
    assert m == 2.0 and se == pytest.approx(1 / np.sqrt(3))
    assert M.mean_se([4.0]) == (4.0, 0.0)
    with pytest.raises(ValueError):
        M.mean_se([])


def test_accuracy_binary_logits_any_shape():
    for logits in (torch.tensor([2.0, -1.0, 3.0]), torch.tensor([[2.0], [-1.0], [3.0]])):
        a = M.AccuracyMeter()
        a.update(logits, torch.tensor([1, 0, 0]))
        assert a.compute()["acc"] == pytest.approx(2 / 3)
