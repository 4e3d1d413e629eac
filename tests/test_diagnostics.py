"""Gradient diagnostics: exact statistics on known gradients, recorded at the chosen interval,
absent when off, and without changing the training trajectory."""
import numpy as np
import pytest
import torch

import mtl.weighting as W
from mtl.diagnostics import GradientProbe, gradient_stats, mean_matrix, probe_frame
from mtl.train import TrainConfig, fit
from test_weighting import tiny_bundle, tiny_model


def test_gradient_stats_on_known_gradients():
    J = torch.tensor([[3.0, 0.0, 0.0], [0.0, 4.0, 0.0], [3.0, 4.0, 0.0]])
    u = torch.tensor([1.0, 1.0, 0.0])
    s = gradient_stats(J, u, ["a", "b", "c"], last=slice(1, 3), weights=torch.tensor([1.0, 2.0, 3.0]))
    assert s["grad_norm"] == pytest.approx({"a": 3.0, "b": 4.0, "c": 5.0})
    assert s["grad_norm_last"] == pytest.approx({"a": 0.0, "b": 4.0, "c": 4.0})
    assert s["cos_update"] == pytest.approx({"a": 2**-0.5, "b": 2**-0.5, "c": 7 / (5 * 2**0.5)})
    np.testing.assert_allclose(s["dot"], [[9, 0, 9], [0, 16, 16], [9, 16, 25]])
    np.testing.assert_allclose(s["cos"], [[1, 0, 0.6], [0, 1, 0.8], [0.6, 0.8, 1]])
    assert s["weights"] == {"a": 1.0, "b": 2.0, "c": 3.0}
    fitted = np.array(list(s["weights_fit"].values()))
    np.testing.assert_allclose(fitted @ J.numpy(), u.numpy(), atol=1e-10)


def test_fitted_weights_recover_a_weighting():
    J = torch.randn(3, 10, dtype=torch.float64)
    w = torch.tensor([0.2, 1.5, 0.7], dtype=torch.float64)
    s = gradient_stats(J, w @ J, ["a", "b", "c"])
    np.testing.assert_allclose(list(s["weights_fit"].values()), w.numpy())


CFG = TrainConfig(epochs=2, batch_size=8, max_steps_per_epoch=3, device="cpu")


@pytest.mark.parametrize("name", ["ew", "mgda", "pcgrad"])
def test_probe_records_at_interval_without_changing_training(name):
    data = tiny_bundle()
    off = fit(tiny_model(), data, W.create(name), CFG)
    on = fit(tiny_model(), data, W.create(name), CFG, probes=[GradientProbe(every=2)])
    assert "probes" not in off.epochs[0]
    assert [r["step"] for rec in on.epochs for r in rec["probes"]] == [0, 2, 4]
    for a, b in zip(off.epochs, on.epochs):
        assert a["train_loss"] == b["train_loss"] and a["test"] == b["test"]
    rec = on.epochs[0]["probes"][0]
    assert set(rec["grad_norm"]) == {"t0", "t1", "t2"} and set(rec["grad_norm_last"]) == {"t0", "t1", "t2"}
    np.testing.assert_allclose(np.diag(rec["cos"]), 1.0)


def test_probe_update_is_the_applied_gradient():
    """With EW the update is Σ_t g_t: the fitted weights are 1 and the logged weights are 1."""
    data = tiny_bundle()
    hist = fit(tiny_model(), data, W.create("ew"), CFG, probes=[GradientProbe(every=1)])
    for rec in hist.epochs:
        for r in rec["probes"]:
            np.testing.assert_allclose(list(r["weights_fit"].values()), 1.0, rtol=1e-4)


def test_probe_tables():
    data = tiny_bundle()
    hist = fit(tiny_model(), data, W.create("mgda", mode="param"), CFG, probes=[GradientProbe(every=3)])
    df = probe_frame(hist.epochs, "cos_update")
    assert list(df.columns) == ["step", "epoch", "task", "cos_update"] and len(df) == 2 * 3
    assert mean_matrix(hist.epochs, "dot").shape == (3, 3)
    with pytest.raises(ValueError, match="probes="):
        mean_matrix([{"epoch": 0}], "cos")
    with pytest.raises(ValueError, match="every"):
        GradientProbe(every=0)
