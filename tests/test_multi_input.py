"""Multi-input tasks (issue 19.3): each task has its own input domain and loader (``MultiInputBundle``).

Oracles: a step draws one batch per task; the shared encoder sees each task's input; the [T] losses
equal each head's loss on its own batch; with equal weighting the update equals the sum of the
single-task gradients; evaluation visits each task's split exactly once; every registered method
takes steps on multi-input batches.
"""
import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from mtl import tasks as TK
from mtl.data import MultiInputBundle
from mtl.models import MultiTaskModel
from mtl.train import TrainConfig, evaluate, fit
from test_weighting import NAMES, make, modes_of

pytestmark = pytest.mark.usefixtures("one_thread")
CASES = [(n, m) for n in NAMES for m in modes_of(n)]
DOMAINS = {"a": 24, "b": 12, "c": 18}                      # training samples per domain (unequal on purpose)


class _Labelled(TensorDataset):
    """(x [d], label) pairs."""


def multi_bundle(d_in=6, classes=3, seed=0) -> MultiInputBundle:
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d_in, classes, generator=g)
    parts = {s: {} for s in ("train", "val", "test")}
    for k, (t, n) in enumerate(DOMAINS.items()):
        for s, m in (("train", n), ("val", n // 2), ("test", n // 2 + k)):
            x = torch.randn(m, d_in, generator=g) + k                   # each domain its own input shift
            parts[s][t] = _Labelled(x, (x @ W).argmax(1))
    tasks = [TK.classification(t, classes) for t in DOMAINS]
    return MultiInputBundle("multi", tasks, parts["train"], parts["val"], parts["test"])


def multi_model(d_in=6, classes=3, width=8, seed=0) -> MultiTaskModel:
    torch.manual_seed(seed)
    enc = nn.Sequential(nn.Linear(d_in, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
    return MultiTaskModel(enc, {t: nn.Linear(width, classes) for t in DOMAINS})


def test_a_training_batch_holds_one_batch_per_task_from_its_own_domain():
    data = multi_bundle()
    loader = data.loader("train", 8, shuffle=True, seed=1, drop_last=True)
    assert len(loader) == 3 == data.n_samples("train") // 8               # the largest domain sets the pass
    seen = {t: set() for t in DOMAINS}
    for x, y in loader:
        assert isinstance(x, TK.TaskInputs) and set(x) == set(y) == set(DOMAINS)
        for t in DOMAINS:
            assert x[t].shape == (8, 6) and y[t].shape == (8,)
            rows = {tuple(r.tolist()) for r in data.train[t].tensors[0]}
            assert all(tuple(r.tolist()) in rows for r in x[t])        # from the task's own domain
            seen[t] |= {tuple(r.tolist()) for r in x[t]}
    assert len(seen["a"]) == 24 and len(seen["b"]) > 8     # b (one batch a pass) restarted, reshuffled


def test_losses_are_each_heads_loss_on_its_own_batch_and_ew_sums_single_task_gradients():
    data, model = multi_bundle(), multi_model()
    x, y = next(iter(data.loader("train", 8, shuffle=True, seed=3)))
    z = model.encode(x)
    assert z.shape == (24, 8) and z.task_slices == {"a": (0, 8), "b": (8, 16), "c": (16, 24)}
    losses = TK.task_losses(model, data, model.decode(z), y)             # [T]
    for i, t in enumerate(DOMAINS):
        alone = nn.functional.cross_entropy(model.heads[t](model.encoder(x[t])), y[t])
        torch.testing.assert_close(losses[i], alone)
    shared = model.shared_parameters()
    total = torch.autograd.grad(losses.sum(), shared, retain_graph=True)
    each = [torch.autograd.grad(nn.functional.cross_entropy(model.heads[t](model.encoder(x[t])), y[t]), shared)
            for t in DOMAINS]
    for g, *gs in zip(total, *each):
        torch.testing.assert_close(g, sum(gs))


def test_evaluation_visits_each_tasks_split_exactly_once():
    data, model = multi_bundle(), multi_model()
    got = evaluate(model, data, "test", 4, "cpu")
    for t in DOMAINS:
        ds = data.test[t]
        with torch.no_grad():
            acc = float((model.heads[t](model.encoder(ds.tensors[0])).argmax(1) == ds.tensors[1]).double().mean())
        assert got[t]["acc"] == pytest.approx(acc)


class _OwnRouting(MultiTaskModel):
    def encode(self, x):
        return self.encoder(x) * 2


def test_an_architecture_with_its_own_routing_is_refused():
    data, base = multi_bundle(), multi_model()
    model = _OwnRouting(base.encoder, dict(base.heads))
    with pytest.raises(ValueError, match="multi-input.*'hps'"):
        fit(model, data, make("ew"), TrainConfig(epochs=1, device="cpu"))


class _Unlabelled(TensorDataset):
    """Domain samples as (x, {task: y, LABELED: {task: False}}): none of them labelled."""

    def __init__(self, task, *tensors):
        super().__init__(*tensors)
        self.task = task

    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return x, {self.task: y, TK.LABELED: {self.task: torch.tensor(False)}}


def test_partial_labels_in_a_multi_input_batch_leave_that_task_out():
    data, model = multi_bundle(), multi_model()
    data.train["b"] = _Unlabelled("b", *data.train["b"].tensors)
    x, y = next(iter(data.loader("train", 6, shuffle=True)))
    assert y[TK.LABELED]["b"].tolist() == [False] * 6 and TK.present(model, y).tolist() == [True, False, True]
    head_b = [p.detach().clone() for p in model.heads["b"].parameters()]
    hist = fit(model, data, make("mgda"), TrainConfig(epochs=1, batch_size=6, max_steps_per_epoch=2, device="cpu"))
    assert hist.epochs[0]["weights"]["b"] == 0 and hist.epochs[0]["weights"]["a"] > 0
    assert all(torch.equal(a, b) for a, b in zip(head_b, model.heads["b"].parameters()))


def test_corrupt_refuses_multi_input_data():
    from mtl.data.corruptions import corrupt
    with pytest.raises(ValueError, match="multi-input"):
        corrupt(multi_bundle(), missing={"a": 0.5})


@pytest.mark.parametrize("name,mode", CASES, ids=[f"{n}-{m or 'losses'}" for n, m in CASES])
def test_every_method_trains_on_multi_input_batches(name, mode):
    data, model = multi_bundle(), multi_model()
    before = [p.detach().clone() for p in model.parameters()]
    hist = fit(model, data, make(name, mode), TrainConfig(epochs=2, batch_size=6, max_steps_per_epoch=2,
                                                          device="cpu", seed=1, engine="batched"))
    for rec in hist.epochs:
        assert all(math.isfinite(v) for v in rec["train_loss"].values())
        assert all(math.isfinite(v) for v in rec["weights"].values())
        assert set(rec["test"]) == set(DOMAINS)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
