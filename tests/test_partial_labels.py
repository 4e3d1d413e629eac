"""Partial labels (issue 19.2): a per-sample task mask in the batch (``mtl.tasks.LABELED``).

Oracles: an all-true mask changes nothing, bit for bit; a batch without any label of a task makes
exactly the step of the same method on the other tasks alone; an absent task's per-task state
rows do not move; losses and meters average over labelled samples only; a scenes copy with half
its depth labels removed trains, every registered method steps on partial batches.
"""
import copy
import math

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, Subset

import mtl.weighting as W
from mtl import tasks as TK
from mtl.data import DataBundle
from mtl.data.corruptions import corrupt
from mtl.experiment import RunSpec
from mtl.models import MultiTaskModel, create_model
from mtl.train import PlainStep, StepInfo, TrainConfig, evaluate, fit
from mtl.weighting._present import _walk
from test_weighting import NAMES, make, modes_of, tiny_bundle, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")
CASES = [(n, m) for n in NAMES for m in modes_of(n)]
IDS = [f"{n}-{m or 'losses'}" for n, m in CASES]


class _Masked(Dataset):
    """``base`` with ``y[LABELED] = {task: labelled[task][i]}``."""

    def __init__(self, base, labelled: dict):
        self.base, self.labelled = base, labelled

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        x, y = self.base[i]
        return x, {**y, TK.LABELED: {t: torch.tensor(bool(m[i])) for t, m in self.labelled.items()}}


def _all_ones(data: DataBundle) -> DataBundle:
    ones = {t.name: [True] * max(len(data.train), len(data.val), len(data.test)) for t in data.tasks}
    return DataBundle(data.name, data.tasks, *(_Masked(data.split(s), ones) for s in ("train", "val", "test")))


# ----------------------------------------------------------------------------- losses and meters
def test_masked_loss_is_the_mean_over_labelled_samples_and_zero_without_any():
    task = TK.depth()
    pred = torch.rand(4, 1, 3, 3, requires_grad=True)
    target = torch.rand(4, 1, 3, 3) + 0.1
    target[1, 0, 0, 0] = 0                                               # an invalid pixel inside a labelled sample
    mask = torch.tensor([True, True, False, True])
    got = TK.masked_loss(task, pred, target, mask)
    want = (pred - target).abs()[mask][target[mask] > 0].mean()
    torch.testing.assert_close(got, want)
    none = TK.masked_loss(task, pred, target, torch.zeros(4, dtype=torch.bool))
    (g,) = torch.autograd.grad(none, pred)
    assert float(none) == 0 and not g.any()


def test_present_and_labeled_are_none_for_full_batches():
    model = tiny_model()
    y = {"t0": torch.zeros(3), TK.LABELED: {"t0": torch.ones(3, dtype=torch.bool)}}
    assert TK.present(model, y) is None and TK.labeled(y, "t0") is None and TK.present(model, {"t0": 0}) is None
    y[TK.LABELED]["t1"] = torch.zeros(3, dtype=torch.bool)
    assert TK.present(model, y).tolist() == [True, False, True]


def test_meters_count_only_labelled_samples(tiny_scenes):
    data = corrupt(tiny_scenes, missing={"depth": 0.5}, splits=("train", "val"))
    keep = [i for i in range(len(data.val)) if bool(data.val[i][1][TK.LABELED]["depth"])]
    assert 0 < len(keep) < len(data.val)
    torch.manual_seed(0)
    model = create_model("hps", "segnet", data.tasks, backbone_kw=dict(width=4, stages=2, convs=1))
    got = evaluate(model, data, "val", 3, "cpu")["depth"]
    only = DataBundle("only", data.tasks, tiny_scenes.train, Subset(tiny_scenes.val, keep), tiny_scenes.test)
    want = evaluate(model, only, "val", 3, "cpu")["depth"]
    assert got == pytest.approx(want, rel=1e-9)
    assert evaluate(model, tiny_scenes, "val", 3, "cpu")["depth"] != pytest.approx(want, rel=1e-9)


# ----------------------------------------------------------------------------- corruption and run ids
def test_missing_depth_removes_exactly_half_deterministically_and_keeps_test_clean(tiny_scenes):
    a = corrupt(tiny_scenes, missing={"depth": 0.5}, seed=2)
    flags = [bool(a.train[i][1][TK.LABELED]["depth"]) for i in range(len(a.train))]
    assert sum(not f for f in flags) == round(0.5 * len(a.train))
    gone = flags.index(False)
    assert torch.isnan(a.train[gone][1]["depth"]).all()                 # nothing left to learn from
    kept = flags.index(True)
    assert torch.equal(a.train[kept][1]["depth"], tiny_scenes.train[kept][1]["depth"])
    again = corrupt(tiny_scenes, missing={"depth": 0.5}, seed=2)
    assert flags == [bool(again.train[i][1][TK.LABELED]["depth"]) for i in range(len(a.train))]
    assert a.test is tiny_scenes.test and a.val is tiny_scenes.val
    with pytest.raises(ValueError, match="does not have"):
        corrupt(tiny_scenes, missing={"height": 0.5})
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        corrupt(tiny_scenes, missing={"depth": 1.0})


def test_run_ids_do_not_change_without_missing():
    base = {"dataset": "scenes", "backbone": "segnet", "corruption": {"depth_sigma": 0.1}}
    same = {**base, "corruption": {"depth_sigma": 0.1, "missing": None}}
    assert RunSpec.from_dict(base).run_id() == RunSpec.from_dict(same).run_id()
    other = {**base, "corruption": {"depth_sigma": 0.1, "missing": {"depth": 0.5}}}
    assert RunSpec.from_dict(other).check().run_id() != RunSpec.from_dict(base).run_id()


# ----------------------------------------------------------------------------- every method
@pytest.mark.parametrize("name,mode", CASES, ids=IDS)
def test_all_true_mask_is_bit_identical(name, mode):
    cfg = TrainConfig(epochs=1, batch_size=8, max_steps_per_epoch=2, device="cpu", seed=1, engine="batched")
    runs = []
    for data in (tiny_bundle(), _all_ones(tiny_bundle())):
        model = tiny_model()
        hist = fit(model, data, make(name, mode), cfg)
        runs.append((hist.epochs[0]["train_loss"], hist.epochs[0]["weights"], hist.final,
                     [p.detach().clone() for p in model.parameters()]))
    assert runs[0][:3] == runs[1][:3]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][3], runs[1][3]))


def _batch(data, drop: str | None):
    """The first 8 training samples, collated; ``drop``: that task's labels all removed."""
    x, y = next(iter(data.loader("train", 8)))
    if drop is not None:
        y = {**y, TK.LABELED: {drop: torch.zeros(8, dtype=torch.bool)}}
    return x, y


def _one_step(model, data, batch, w):
    w.reset()
    w.configure(engine="batched")
    opt = torch.optim.Adam(list(model.parameters()) + list(w.parameters()), lr=1e-2)
    torch.manual_seed(5)
    return PlainStep().step(model, data, batch, w, opt, StepInfo(next_batch=lambda split: batch))


@pytest.mark.parametrize("name,mode", CASES, ids=IDS)
def test_a_task_without_labels_gives_the_step_on_the_other_tasks_alone(name, mode):
    data, model = tiny_bundle(), tiny_model()
    alone = MultiTaskModel(copy.deepcopy(model.encoder), {t: copy.deepcopy(model.heads[t]) for t in ("t0", "t1")})
    head2 = [p.detach().clone() for p in model.heads["t2"].parameters()]
    x, y = _batch(data, "t2")
    logs = _one_step(model, data, (x, y), make(name, mode))
    ref = _one_step(alone, data.select(["t0", "t1"]), (x, {t: y[t] for t in ("t0", "t1")}), make(name, mode))
    for a, b in zip(model.encoder.parameters(), alone.encoder.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for t in ("t0", "t1"):
        for a, b in zip(model.heads[t].parameters(), alone.heads[t].parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(head2, model.heads["t2"].parameters()))   # no gradient
    if "weights" in logs:
        assert logs["weights"].shape == (3,) and float(logs["weights"][2]) == 0
        torch.testing.assert_close(logs["weights"][:2], ref["weights"].to(logs["weights"].dtype))


def _task_rows(w, T=3) -> dict:
    """{path: row 2} of every per-task state entry (T rows) of ``w``."""
    out = {}
    for path, v, _ in _walk(w):
        if getattr(v, "ndim", 0) >= 1 and v.shape[0] == T and not isinstance(v, nn.parameter.UninitializedParameter):
            row = v[2]
            out[path] = row.detach().clone() if isinstance(v, torch.Tensor) else row.copy()
    return out


@pytest.mark.parametrize("name,mode", CASES, ids=IDS)
def test_an_absent_task_keeps_its_state(name, mode):
    data, model = tiny_bundle(), tiny_model()
    w = make(name, mode)
    w.configure(engine="batched")
    opt = torch.optim.Adam(list(model.parameters()) + list(w.parameters()), lr=1e-2)
    full, part = _batch(data, None), _batch(data, "t2")
    info = StepInfo(next_batch=lambda split: full)
    for _ in range(2):                                                 # state made at full size
        PlainStep().step(model, data, full, w, opt, info)
    w.end_epoch(0, torch.ones(3))
    w.end_epoch(1, torch.full((3,), 0.5))
    before = _task_rows(w)
    logs = PlainStep().step(model, data, part, w, opt, info)
    after = _task_rows(w)
    assert set(before) <= set(after)
    for path, row in before.items():
        same = torch.equal(row, after[path]) if isinstance(row, torch.Tensor) else (row == after[path]).all()
        assert same, f"state {path} of absent task t2 changed"
    assert all(math.isfinite(float(v)) for v in logs["losses"])


# ----------------------------------------------------------------------------- training on scenes
@pytest.mark.parametrize("method", ["ew", "famo"])
def test_scenes_with_half_the_depth_labels_missing_trains(tiny_scenes, method):
    data = corrupt(tiny_scenes, missing={"depth": 0.5}).select(["segmentation", "depth", "normal"])
    torch.manual_seed(0)
    model = create_model("hps", "segnet", data.tasks, backbone_kw=dict(width=4, stages=2, convs=1))
    hist = fit(model, data, W.create(method), TrainConfig(epochs=4, batch_size=2, lr=1e-2, seed=0))
    first, last = hist.epochs[0]["train_loss"], hist.epochs[-1]["train_loss"]
    assert all(math.isfinite(v) for v in last.values())
    assert sum(last.values()) < sum(first.values()) and last["depth"] < first["depth"]
    assert math.isfinite(hist.final["depth"]["rmse"])
