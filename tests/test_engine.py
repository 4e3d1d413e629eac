"""The engine's update equals a naive reference for every registered gradient method, in every mode.

Reference: T separate backward passes of the method's (transformed) task losses, one per task, for
every parameter; the method's weights from those rows (its Gramian, or its ``direction`` of J);
then the update written by hand: shared parameters Σ_t w_t g_t (through the encoder in "rep" mode),
task heads and the method's own parameters ∇ Σ_t L_t (Σ_t w_t L_t everywhere for loss-weight
methods). Float64, so the engine's fast paths (factored Gramians, heads crossed once, the combined
update from the rows already formed, no copies) may differ from it by rounding only.
"""
import copy
import inspect
import random
import time

import numpy as np
import pytest
import torch
from torch import nn

import mtl.weighting as W
from mtl.experiment import RunSpec
from mtl.jacobian import FactoredJacobian, head_split, write_grads
from mtl.models import MultiTaskModel
from mtl.train import TrainConfig, fit
from mtl.weighting import GradientWeighting, StepContext
from mtl.weighting.gradient import RowPath

T = 3


def gradient_methods():
    """(name, mode) for every registered method the engine computes (a GradientWeighting that does not
    implement its own backward), in each mode it declares."""
    out = []
    for name in W.names():
        cls = W.WEIGHTINGS.get(name)
        if issubclass(cls, GradientWeighting) and W.info(name).needs != "custom":
            out += [(name, mode) for mode in W.info(name).modes]
    return out


CASES = gradient_methods()


class _Encoder(nn.Module):
    """A conv layer (dense rows), a linear layer (factored rows) and a parameter no loss reaches."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 4 * 4, 6)
        self.unused = nn.Parameter(torch.ones(2))

    def forward(self, x):                                          # [B, 2, 4, 4] -> [B, 6]
        return torch.tanh(self.fc(torch.relu(self.conv(x)).flatten(1)))


def _model(seed=0) -> MultiTaskModel:
    torch.manual_seed(seed)
    heads = {f"t{i}": nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 1)) for i in range(T)}
    return MultiTaskModel(_Encoder(), heads).double()


def _batches():
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(5, 2, 4, 4, generator=g, dtype=torch.float64),
             torch.randn(T, 5, generator=g, dtype=torch.float64)) for _ in range(4)]


def _losses(model, batch):
    x, y = batch
    z = model.encode(x)
    preds = model.decode(z)
    return torch.stack([(preds[t].squeeze(1) - y[i]).pow(2).mean() + 0.1 * (i + 1)
                        for i, t in enumerate(model.tasks)]), z


def _ctx(model, batches, rep):
    extra = iter(batches[1:])
    return StepContext(model=model, batch=batches[0], rep=rep, loss_fn=lambda b: _losses(model, b)[0],
                       rep_loss_fn=lambda b: _losses(model, b), next_batch=lambda split: next(extra))


def _seed():
    torch.manual_seed(5), np.random.seed(5), random.seed(5)


def _rows(losses, inputs):
    """Per input the stacked gradients [T, *shape] of every loss (None when no loss reaches it), by T
    backward passes."""
    per = [torch.autograd.grad(loss, inputs, retain_graph=True, allow_unused=True) for loss in losses]
    return [None if all(r[i] is None for r in per) else
            torch.stack([torch.zeros_like(x) if r[i] is None else r[i] for r in per]) for i, x in enumerate(inputs)]


def _flat(rows, inputs):
    """J [T, d] from per-input rows, zeros for an input no loss reaches."""
    return torch.cat([torch.zeros(T, x.numel(), dtype=x.dtype) if r is None else r.reshape(T, -1)
                      for r, x in zip(rows, inputs)], 1)


def _reference(method, model, batches, mode):
    """{parameter name: expected .grad} from the naive loop (see the module docstring)."""
    raw, z = _losses(model, batches[0])
    losses = method.transform(raw)                                             # [T]
    named = list(model.named_parameters()) + [(f"method.{i}", p) for i, p in enumerate(method.parameters())]
    shared = {id(p) for p in model.shared_parameters()}
    ids = {id(p): n for n, p in named}
    reached = [(n, p) for n, p in named if not isinstance(p, nn.parameter.UninitializedParameter)]
    all_rows = {n: None for n, _ in named} | dict(zip([n for n, _ in reached], _rows(losses, [p for _, p in reached])))
    if mode == "rep":
        J = torch.stack([torch.autograd.grad(loss, z, retain_graph=True)[0].reshape(-1) for loss in losses])
    else:
        J = _flat([all_rows[ids[id(p)]] for p in model.shared_parameters()], model.shared_parameters())
    ctx = _ctx(model, batches, z if mode == "rep" else None)
    _seed()
    with torch.no_grad():
        if W.info(method.info.name).needs == "gramian" and mode == "param":
            inputs = method.jacobian_inputs(model)
            if method.info.batches == 3:                       # SDMGrad: J₁J₂ᵀ of the two extra batches
                with torch.enable_grad():
                    G = _flat(_rows(_losses(model, batches[1])[0], inputs), inputs) @ _flat(
                        _rows(_losses(model, batches[2])[0], inputs), inputs).T
            else:
                Ji = _flat([all_rows[ids[id(p)]] for p in inputs], inputs)
                G = Ji @ Ji.T
            G = G.numpy()
            w = torch.as_tensor(method.gram_weights((G + G.T) / 2, losses.detach()), dtype=torch.float64)
            d = w @ J
        else:
            d, w = method.direction(J, losses.detach(), ctx)
    if mode == "rep" and not method.loss_weights:
        enc = dict(zip([ids[id(p)] for p in model.shared_parameters()],
                       torch.autograd.grad(z, model.shared_parameters(), grad_outputs=d.view_as(z), allow_unused=True)))
    expected, off = {}, 0
    for n, p in named:
        rows = all_rows[n]
        if method.loss_weights and not n.startswith("method."):
            expected[n] = None if rows is None else torch.tensordot(w.to(rows.dtype), rows, dims=1)
        elif id(p) in shared and mode == "param":
            expected[n] = None if rows is None else d[off:off + p.numel()].view_as(p)
        elif id(p) in shared:
            expected[n] = enc[n]
        else:
            expected[n] = None if rows is None else rows.sum(0)
        off += p.numel() if id(p) in shared else 0
        if n.startswith("method.") and p.grad is not None:     # a method that sets its own grads (GradNorm)
            expected[n] = p.grad.clone() if expected[n] is None else expected[n] + p.grad
    return expected


def _engine(method, model, batches, mode):
    losses, z = _losses(model, batches[0])
    method.backward(losses, _ctx(model, batches, z if method.needs == "rep" else None))   # warm: "auto" chooses
    model.zero_grad(set_to_none=True)
    for p in method.parameters():
        p.grad = None
    method.reset()
    losses, z = _losses(model, batches[0])
    _seed()
    method.backward(losses, _ctx(model, batches, z if method.needs == "rep" else None))
    named = list(model.named_parameters()) + [(f"method.{i}", p) for i, p in enumerate(method.parameters())]
    return {n: None if p.grad is None else p.grad.clone() for n, p in named}


def _fresh(name, mode):
    kw = {"mode": mode} if "mode" in inspect.signature(W.WEIGHTINGS.get(name)).parameters else {}
    return W.create(name, **kw)


@pytest.mark.parametrize("path", ["batched", "loop"])
@pytest.mark.parametrize("name,mode", CASES, ids=[f"{n}-{m}" for n, m in CASES])
def test_engine_update_equals_the_naive_loop(name, mode, path):
    method = _fresh(name, mode)
    model, ref_model = _model(), _model()
    ref_method = copy.deepcopy(method)
    method.configure(engine=path)
    got = _engine(method, model, _batches(), mode)
    want = _reference(ref_method, ref_model, _batches(), mode)
    assert set(got) == set(want)
    for n in got:
        if want[n] is None or (not want[n].any() and n.startswith("method.")):
            assert got[n] is None or not got[n].any(), n
            continue
        assert got[n] is not None, f"{n}: no gradient written"
        torch.testing.assert_close(got[n], want[n], rtol=1e-9, atol=1e-11, msg=lambda m: f"{name}/{mode} {n}: {m}")
    if W.info(name).needs == "gramian" or mode == "rep":      # (a tracked state direction is dense: zeros there)
        assert got["encoder.unused"] is None                   # never reached: no update, as autograd leaves it


def test_the_cases_cover_every_engine_path():
    kinds = {(W.info(n).needs, m) for n, m in CASES}
    assert {("gramian", "param"), ("gramian", "rep"), ("factored", "param"), ("jacobian", "rep")} <= kinds
    assert any(W.WEIGHTINGS.get(n).loss_weights for n, _ in CASES)                 # GradNorm, AvgNorm
    assert any(W.WEIGHTINGS.get(n).transform is not GradientWeighting.transform for n, _ in CASES)   # IMTL, DB-MTL


def test_combined_grads_equal_the_combined_jacobian_and_release_the_rows():
    model = _model()
    losses, z = _losses(model, _batches()[0])
    shared = model.shared_parameters()
    jac = FactoredJacobian(losses, shared, rep=z)
    w = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    flat = jac.combine(w)                                                       # [d]
    parts = list(jac.combined_grads(w, release=True))
    assert parts[[id(p) for p in shared].index(id(model.encoder.unused))] is None
    torch.testing.assert_close(torch.cat([torch.zeros(p.numel(), dtype=p.dtype) if g is None else g.reshape(-1)
                                          for p, g in zip(shared, parts)]), flat)
    assert not jac.layers and not jac.rest                                      # spent: every row dropped


def test_owned_gradients_are_taken_without_a_copy_unless_they_alias():
    a, b, c = (nn.Parameter(torch.zeros(3)) for _ in range(3))
    g, kept = torch.ones(3), torch.full((3,), 2.0)
    write_grads([a, b, c], [g, g, kept], owned=True, keep=(kept,))
    assert a.grad.data_ptr() == g.data_ptr()                                   # taken as is
    assert b.grad.data_ptr() != g.data_ptr() and c.grad.data_ptr() != kept.data_ptr()   # aliases are copied
    b.grad.add_(1)
    assert torch.equal(a.grad, torch.ones(3)) and torch.equal(c.grad, kept)
    write_grads([a], torch.ones(3), owned=True)                                # a flat vector: accumulated
    assert torch.equal(a.grad, torch.full((3,), 2.0))
    x = nn.Parameter(torch.zeros(3))
    write_grads([x], [torch.ones(1).expand(3)], owned=True)                    # not contiguous: copied
    x.grad.add_(1)
    assert torch.equal(x.grad, torch.full((3,), 2.0))


# ----------------------------------------------------------------------------- the cost model
class _Rows:
    """A stand-in for a path's rows: its time is spent by ``build``, its bytes given by ``fp``."""

    def __init__(self, fp):
        self.fp = fp


def _build(seconds: dict, prints: dict, log: list):
    def build(loop):
        name = "loop" if loop else "batched"
        log.append(name)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds[name]:
            pass
        return _Rows(prints[name])
    return build


@pytest.mark.parametrize("same_bits,loop_faster,chosen", [
    (True, True, "loop"), (True, False, "batched"),
    (False, True, "batched"),                            # different bits: the fixed rule, whatever the clock says
])
def test_auto_takes_the_loop_only_when_faster_and_bit_identical(same_bits, loop_faster, chosen):
    fast, slow = 0.0, 0.01
    seconds = {"loop": fast if loop_faster else slow, "batched": slow if loop_faster else fast}
    log = []
    path = RowPath("auto")
    build = _build(seconds, {"batched": "a", "loop": "a" if same_bits else "b"}, log)
    path.make(build, fingerprint=lambda r: r.fp)
    assert path.chosen == chosen and path.identical is same_bits
    assert log == ["batched", "loop", "batched", "loop", chosen]        # timed once per run, then reused
    path.make(build, fingerprint=lambda r: r.fp)
    assert log[-1] == chosen and len(log) == 6
    rep = path.report()
    assert rep["path"] == chosen and set(rep["ms"]) == {"batched", "loop"}


def test_a_fixed_path_is_never_timed_and_a_bad_one_is_refused():
    log = []
    RowPath("loop").make(_build({"loop": 0, "batched": 0}, {"loop": 1, "batched": 1}, log))
    assert log == ["loop"]
    with pytest.raises(ValueError, match="engine"):
        RowPath("vmap")
    with pytest.raises(ValueError, match="engine"):
        TrainConfig(engine="fast")


def _tiny_fit(engine):
    from tests.test_weighting import tiny_bundle, tiny_model
    return fit(tiny_model(), tiny_bundle(), W.create("mgda", mode="param"),
               TrainConfig(epochs=2, batch_size=8, max_steps_per_epoch=3, device="cpu", seed=1, engine=engine))


def test_the_choice_is_recorded_and_changes_no_number():
    auto, batched = _tiny_fit("auto"), _tiny_fit("batched")
    assert auto.info["engine"]["path"] in ("batched", "loop") and "ms" in auto.info["engine"]
    assert batched.info["engine"] == {"path": "batched", "set": True}
    assert auto.final == batched.final and [e["train_loss"] for e in auto.epochs] == \
        [e["train_loss"] for e in batched.epochs]                                     # bit for bit


def test_the_engine_setting_is_not_part_of_the_run_id():
    base = {"dataset": "multimnist", "backbone": "lenet", "name": "demo", "weighting": "mgda"}
    ids = {RunSpec.from_dict({**base, "train": {"engine": e}}).params().__repr__() for e in ("auto", "batched", "loop")}
    assert ids == {repr(RunSpec.from_dict(base).params())}


# ----------------------------------------------------------------------------- heads crossed once
def test_head_split_keeps_transforms_with_extra_leaves_and_gives_the_heads_gradients():
    model = _model()
    raw, z = _losses(model, _batches()[0])
    s = torch.tensor([0.2, -0.4, 0.1], dtype=torch.float64, requires_grad=True)
    shared, heads = model.shared_parameters(), [p for p in model.heads.parameters()]
    for losses, plain in ((raw, True), (torch.exp(s) * raw - s, False)):            # IMTL's e^s L − s
        Dz, grads = head_split(losses, z, shared, heads)
        loop = torch.stack([torch.autograd.grad(loss, z, retain_graph=True)[0] for loss in losses])
        torch.testing.assert_close(Dz, loop, rtol=1e-12, atol=1e-14)
        if plain:                                                                     # ∇ Σ_t L_t of the heads
            want = torch.autograd.grad(losses.sum(), heads, retain_graph=True)
            assert all(torch.equal(g, w) for g, w in zip(grads, want))               # the same bits
        else:
            assert grads is None                                                      # another sum's gradient


def test_head_split_refuses_a_transform_that_reaches_the_encoder():
    model = _model()
    raw, z = _losses(model, _batches()[0])
    assert head_split(raw + z.sum(), z, model.shared_parameters()) == (None, None)
