"""Mixed precision: every method runs under bf16 autocast with an update close to float32's, and a
loss scale s ≠ 1 (fp16's GradScaler) leaves the applied update unchanged, for every method.

One step of :class:`mtl.train.PlainStep` (the loop's own step) with plain SGD (lr 1), so the
parameter change is the update itself (Adam would normalise it away). Tolerances:

* bf16 vs float32: the forward runs in bfloat16 (8-bit mantissa, relative error ~4e-3 per op), the
  per-task rows and Gramians are taken in float64 from it; the update must agree with float32's to
  ‖Δ_bf16 − Δ_fp32‖ ≤ 0.1 ‖Δ_fp32‖ (cosine ≥ 0.99). Methods whose step has a discrete choice
  (Krum's selection, a trimmed mean's order, GradDrop's sign masks, PCGrad's conflict tests) may
  choose differently at this precision, and SDMGrad's weights (20 projected SGD steps of lr 10) move
  by 40% when the float32 weights are perturbed by 0.4%, so for them only a finite update of the same
  size is required.
* loss scale 2¹⁰ vs none, float32: the engine divides the loss-scaled rows by s (a power of two: exact)
  and the scaler divides the gradients by s, so the updates agree to rtol 1e-6 (rounding of the one
  scaled backward only).
"""
import inspect

import pytest
import torch
from torch import nn

import mtl.weighting as W
from mtl.data import DataBundle
from mtl.models import MultiTaskModel
from mtl.train import PlainStep, StepInfo, TrainConfig, fit

from _toy import regression_bundle

T, B = 3, 8
SENSITIVE = {"krum", "trimmedmean", "graddrop", "pcgrad",    # a discrete choice inside the step (see above)
             "sdmgrad"}                                     # 20 projected SGD steps of lr 10 on the simplex


def bundle(n: int = 32, gain: float = 1.0) -> DataBundle:
    return regression_bundle("amp", n, T, gain=gain)


class _Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 8)

    def forward(self, x):                                       # [B, 2, 4, 4] -> [B, 8]
        return torch.tanh(self.fc(torch.relu(self.conv(x)).flatten(1)))


def model() -> MultiTaskModel:
    torch.manual_seed(0)
    return MultiTaskModel(_Encoder(), {f"t{i}": nn.Sequential(nn.Linear(8, 4), nn.Tanh(), nn.Linear(4, 1))
                                       for i in range(T)})


def cases():
    out = []
    for name in W.names():
        if name == "url":
            continue                                            # teachers: see test_url_runs_under_bf16
        takes_mode = "mode" in inspect.signature(W.WEIGHTINGS.get(name)).parameters
        out += [(name, m) for m in W.info(name).modes] if takes_mode else [(name, None)]
    return out


CASES = cases()


def make(name, mode, **kw):
    return W.create(name, **kw) if mode is None else W.create(name, mode=mode, **kw)


def update(name, mode, amp=None, scale=None, weighting=None):
    """The model's parameter change [n_params] in one SGD(lr=1) step of ``PlainStep``."""
    data, m = bundle(), model()
    w = weighting or make(name, mode)
    w.reset()
    w.configure(engine="batched")
    loader = data.loader("train", B)
    batches = iter([b for b in loader] * 3)
    step_batch = next(batches)
    torch.manual_seed(3)                                        # the same random draws for every run
    scaler = None if scale is None else torch.amp.GradScaler("cpu", init_scale=scale, growth_interval=10**6)
    opt = torch.optim.SGD(list(m.parameters()) + list(w.parameters()), lr=1.0)
    before = [p.detach().clone() for p in m.parameters()]
    PlainStep().step(m, data, step_batch, w, opt, StepInfo(next_batch=lambda split: next(batches), amp=amp,
                                                           scaler=scaler))
    return torch.cat([(p.detach() - b).reshape(-1) for p, b in zip(m.parameters(), before)])   # [n_params]


@pytest.mark.parametrize("name,mode", CASES, ids=[f"{n}-{m}" for n, m in CASES])
def test_every_method_runs_under_bf16_close_to_float32(name, mode):
    torch.set_num_threads(1)
    ref = update(name, mode)
    got = update(name, mode, amp="bf16")
    assert torch.isfinite(got).all() and got.dtype == torch.float32
    assert ref.norm() > 0
    rel = float((got - ref).norm() / ref.norm())
    if name in SENSITIVE:
        assert 0.5 < float(got.norm() / ref.norm()) < 2.0, f"{name}/{mode}: update norm ratio off"
    else:
        assert rel <= 0.1, f"{name}/{mode}: bf16 update differs from float32's by {rel:.3g} (relative)"


@pytest.mark.parametrize("name,mode", CASES, ids=[f"{n}-{m}" for n, m in CASES])
def test_a_loss_scale_leaves_the_update_unchanged(name, mode):
    torch.set_num_threads(1)
    ref = update(name, mode)
    got = update(name, mode, scale=2.0 ** 10)
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-9, msg=lambda m: f"{name}/{mode}: {m}")


def test_fit_trains_under_bf16_and_fp16_and_refuses_a_bad_amp():
    for amp in ("bf16", "fp16"):
        hist = fit(model(), bundle(), W.create("mgda"), TrainConfig(epochs=1, steps_per_epoch=2, batch_size=B,
                                                                     amp=amp, device="cpu"))
        assert hist.info["config"]["amp"] == amp and all(torch.isfinite(torch.tensor(list(
            hist.epochs[-1]["train_loss"].values()))))
    with pytest.raises(ValueError, match=r"amp must be one of \(None, 'bf16', 'fp16'\)"):
        TrainConfig(amp="fp8")


def test_half_precision_rows_give_a_float64_gramian_and_linear_layers_stay_factored():
    """Under autocast a linear layer's weight reaches it through a cast; its rows are still kept as
    factors (D, X in bf16), and the Gramian is taken in float64, equal to that of autograd's rows."""
    from mtl.jacobian import FactoredJacobian, full_precision

    m = model()
    x, y = next(iter(bundle().loader("train", B)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        preds = m(x)
        losses = torch.stack([(preds[t].squeeze(1).float() - y[t]).pow(2).mean() for t in m.tasks])
    shared = m.shared_parameters()
    jac = FactoredJacobian(losses, shared)
    assert id(m.encoder.fc.weight) in jac.layers and jac.half()
    G = full_precision(jac).gram()
    rows = torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, shared, retain_graph=True)])
                        for loss in losses]).double()                      # [T, d]
    assert G.dtype == torch.float64
    torch.testing.assert_close(G, rows @ rows.T, rtol=2e-2, atol=1e-6)


@pytest.mark.parametrize("name,mode", [("mgda", "param"), ("mgda", "rep"), ("moco", "param"), ("graddrop", "rep"),
                                       ("ew", None), ("autolambda", None)])
def test_an_overflowing_loss_scale_skips_the_step_and_lowers_the_scale(name, mode):
    """s = 2¹²⁷ and targets ×100: the scaled rows overflow float32; the engine does not aggregate them (its
    solvers would see inf) but hands NaN gradients to the scaler, which skips the step and halves s."""
    torch.set_num_threads(1)
    data, m, w = bundle(gain=100.0), model(), make(name, mode)
    batches = iter([b for b in data.loader("train", B)] * 3)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 127)
    opt = torch.optim.SGD(list(m.parameters()) + list(w.parameters()), lr=1.0)
    before = [p.detach().clone() for p in m.parameters()]
    PlainStep().step(m, data, next(batches), w, opt, StepInfo(next_batch=lambda split: next(batches), scaler=scaler))
    assert all(torch.equal(p, b) for p, b in zip(m.parameters(), before))
    assert scaler.get_scale() == 2.0 ** 126
