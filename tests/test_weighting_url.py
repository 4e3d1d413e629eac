"""URL (mtl.weighting.url): adapters learn, teachers stay frozen, runs save and reload their model."""
import copy

import pytest
import torch

from mtl import diagnostics
from mtl import weighting as W
from mtl.experiment import load_model, train_run
from mtl.weighting.url import distill_distance
from mtl.models import create_model
from mtl.train import PlainStep, StepInfo, TrainConfig, fit, seed_everything, to_device

TASKS = ["segmentation", "depth"]
BACKBONE = {"width": 4, "stages": 2, "convs": 1}


def _model(bundle, tasks, seed):
    seed_everything(seed)
    return create_model("hps", "segnet", bundle.select(tasks).tasks, backbone_kw=BACKBONE)


def _teachers(bundle):
    return {t: _model(bundle, [t], seed=10 + i) for i, t in enumerate(TASKS)}


def test_distance_is_zero_for_identical_and_bounded():
    f = torch.randn(2, 5, 4, 6)
    assert distill_distance(f, f).item() == pytest.approx(0.0, abs=1e-10)
    assert distill_distance(f, -f).item() == pytest.approx(4.0, abs=1e-5)   # opposite unit vectors
    assert distill_distance(3 * f, f).item() == pytest.approx(0.0, abs=1e-10)  # scale-free


def test_adapter_loss_goes_down_and_teachers_stay_frozen(tiny_scenes):
    bundle = tiny_scenes.select(TASKS)
    teachers = _teachers(bundle)
    before = {t: copy.deepcopy(m.state_dict()) for t, m in teachers.items()}
    url = W.create("url", teachers=teachers, base="ew", lam=1.0)
    model = _model(bundle, TASKS, seed=0)
    url.reset()
    opt = torch.optim.Adam(list(model.parameters()) + url.parameters(), lr=1e-2)
    batch = to_device(next(iter(bundle.loader("train", 4))), "cpu")
    step, first, last = PlainStep(), None, None
    for s in range(25):
        logs = step.step(model, bundle, batch, url, opt, StepInfo(step=s))
        first = logs["distill"] if first is None else first
        last = logs["distill"]
    assert logs["weights"].shape == (2,)
    assert torch.all(last < 0.7 * first), (first, last)
    for t, m in teachers.items():   # bit-identical, BatchNorm buffers included
        for k, v in m.state_dict().items():
            assert torch.equal(v, before[t][k]), f"teacher {t} changed in {k}"
        assert all(not p.requires_grad for p in m.parameters()) and not m.training


def test_adapters_get_gradients_and_wrap_base(tiny_scenes):
    bundle = tiny_scenes.select(TASKS)
    url = W.create("url", teachers=_teachers(bundle), base="cagrad", base_kw={"c": 0.4})
    model = _model(bundle, TASKS, seed=0)
    hist = fit(model, bundle, url, TrainConfig(epochs=2, batch_size=4, max_steps_per_epoch=2))
    assert len(url.distill_log) == 2 and len(url.distill_log[0]) == 2
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in url.parameters())
    assert set(hist.final) == set(TASKS)
    assert "CAGrad" in repr(url._base) and "lam=1.0" in repr(url)


def test_bad_input_names_the_problem(tiny_scenes):
    with pytest.raises(ValueError, match="teachers"):
        W.create("url")
    with pytest.raises(ValueError, match="lam"):
        W.create("url", teachers=_teachers(tiny_scenes), lam=-1)
    with pytest.raises(ValueError, match="task_lams"):
        W.create("url", teachers=_teachers(tiny_scenes), task_lams={"edge": 2})
    with pytest.raises(FileNotFoundError, match="save_model"):
        load_model("/nonexistent/run")


def test_save_model_round_trip_and_diagnostic(tiny_scenes, tmp_out):
    spec = {"name": "stl-depth", "dataset": "scenes", "tasks": ["depth"], "backbone": "segnet", "backbone_kw": BACKBONE,
            "dataset_kw": {"height": 16, "width": 24, "train_scenes": 2, "val_scenes": 1, "test_scenes": 1,
                           "scans_per_scene": 3},
            "train": {"epochs": 1, "batch_size": 4}, "save_model": True}
    rec = train_run(tmp_out, spec)
    teacher = load_model(rec["run_dir"])
    assert train_run(tmp_out, spec)["resumed"]
    d_self = diagnostics.feature_distance(teacher, {"depth": teacher}, tiny_scenes, steps=60)
    other = _model(tiny_scenes, ["segmentation"], seed=5)
    d_other = diagnostics.feature_distance(other, {"depth": teacher}, tiny_scenes, steps=60)
    assert 0 <= d_self["depth"] < d_other["depth"] <= 4
