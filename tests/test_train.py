"""The training loop: determinism, errors on bad input, protocols, experiment specs."""
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from mtl import tasks as T
from mtl.data import DataBundle
from mtl.experiment import train_run
from mtl.models import MultiTaskModel, create_model
from mtl.train import TrainConfig, evaluate, fit, select_final
from mtl.weighting import create

SPEC = {"dataset": "multimnist", "dataset_kw": {"n_train": 64, "n_val": 32, "n_test": 32}, "backbone": "lenet",
        "train": {"epochs": 2, "batch_size": 16}}


def test_same_seed_same_metrics(tmp_out):
    a = train_run(tmp_out / "a", SPEC)
    b = train_run(tmp_out / "b", SPEC)
    assert a["metrics"] == b["metrics"] and a["history"][-1]["train_loss"] == b["history"][-1]["train_loss"]
    c = train_run(tmp_out / "c", {**SPEC, "train": {**SPEC["train"], "seed": 1}})
    assert c["history"][-1]["train_loss"] != a["history"][-1]["train_loss"]


def test_ls_with_unit_weights_equals_uniform(tmp_out):
    a = train_run(tmp_out, {**SPEC, "weighting": "ew"})
    b = train_run(tmp_out, {**SPEC, "weighting": "ls", "weighting_kw": {"weights": [1, 1]}})
    assert a["metrics"] == b["metrics"]


def test_training_reduces_loss(tiny_scenes):
    model = create_model("hps", "segnet", tiny_scenes.tasks, backbone_kw=dict(width=4, stages=2, convs=1))
    hist = fit(model, tiny_scenes, create("ew"), TrainConfig(epochs=4, batch_size=2, lr=1e-2))
    first, last = hist.epochs[0]["train_loss"], hist.epochs[-1]["train_loss"]
    assert sum(last.values()) < sum(first.values())
    assert set(hist.final) == {"segmentation", "depth", "normal", "edge"}


class _NaNTask(nn.Module):
    def forward(self, x):
        return x.mean(1, keepdim=True)


def _bundle_with_loss(loss):
    x = torch.randn(8, 3)
    y = torch.randn(8)
    task = T.Task("bad", "regression", loss, T.MAEMeter, {"mae": False}, ("mae",))
    ds = _Pairs(x, y)
    return DataBundle("toy", [task], ds, ds, ds)


class _Pairs(TensorDataset):
    def __getitem__(self, i):
        return self.tensors[0][i], {"bad": self.tensors[1][i]}


def test_nan_loss_names_task_and_step():
    data = _bundle_with_loss(lambda p, t: (p.reshape(-1) - t).pow(2).mean() * float("nan"))
    model = MultiTaskModel(nn.Linear(3, 4), {"bad": nn.Linear(4, 1)})
    with pytest.raises(FloatingPointError, match=r"step 0: task 'bad' = nan"):
        fit(model, data, create("ew"), TrainConfig(epochs=1, batch_size=4))


def test_bad_config_and_names():
    with pytest.raises(ValueError, match="eval_protocol"):
        TrainConfig(eval_protocol="best")
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(KeyError, match="valid names"):
        create("uniformm")
    with pytest.raises(KeyError, match="segnet"):
        create_model("hps", "segnett", [])
    with pytest.raises(ValueError, match="non-negative"):
        create("ls", weights=[1, -1])
    with pytest.raises(ValueError, match="unknown spec keys"):
        train_run("/nonexistent", {**SPEC, "epochs": 3})


def test_ls_weight_count_must_match(tiny_mnist):
    model = create_model("hps", "lenet", tiny_mnist.tasks)
    with pytest.raises(ValueError, match="3 weights but the model has 2 tasks"):
        fit(model, tiny_mnist, create("ls", weights=[1, 1, 1]), TrainConfig(epochs=1, batch_size=16))


def test_cuda_request_without_cuda_is_clear():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="CUDA is not available"):
        from mtl.train import resolve_device
        resolve_device("cuda")


def test_select_final_protocols(tiny_mnist):
    recs = [{"val": {"left": {"acc": v}}, "test": {"left": {"acc": t}}}
            for v, t in [(0.5, 0.1), (0.9, 0.2), (0.6, 0.3)]]
    data = tiny_mnist
    assert select_final(recs, "last", 2, ["left"], data) == {"left": {"acc": 0.3}}
    assert select_final(recs, "best_val", 2, ["left"], data) == {"left": {"acc": 0.2}}
    assert select_final(recs, "mean_last_k", 2, ["left"], data)["left"]["acc"] == pytest.approx(0.25)


def test_evaluate_restores_train_mode(tiny_mnist):
    model = create_model("hps", "lenet", tiny_mnist.tasks)
    model.train()
    evaluate(model, tiny_mnist, "val", 16, torch.device("cpu"))
    assert model.training


def test_steps_per_epoch_fixes_the_step_budget_whatever_the_data_size(tiny_mnist):
    """A fixed step budget cycles the reshuffled training set (64 samples, batch 16: 4 steps a pass)."""
    counted = []

    class Count(create("ew").__class__):
        def backward(self, losses, *a, **kw):
            counted.append(1)
            return super().backward(losses, *a, **kw)

    model = create_model("hps", "lenet", tiny_mnist.tasks)
    fit(model, tiny_mnist, Count(), TrainConfig(epochs=2, batch_size=16, steps_per_epoch=7, device="cpu"))
    assert len(counted) == 14
    with pytest.raises(ValueError, match="not both"):
        TrainConfig(steps_per_epoch=3, max_steps_per_epoch=2)
