"""The architectures on the SegNet, dilated ResNet-18 and ViT backbones (issue 5).

Contract tests parametrized over the registry (``architecture_names()``): training with the real
loop, ``decode(encode(x)) == forward(x)`` with input-resolution outputs, a parameter partition
checked by gradients (task t's parameters receive nothing from the other tasks' losses),
single-task variants, and the regularisers reaching the gates. A registered architecture runs every
contract unless :data:`EXCLUDED` names it with the reason.
"""
import math

import pytest
import torch

from mtl import weighting as W
from mtl.models import ARCHITECTURES, architecture_names, create_model
from mtl.models.backbones import Backbone
from mtl.models.cross_stitch import CrossStitch
from mtl.models.dselect_k import DSelectGate, smooth_step
from mtl.tasks import task_losses
from mtl.train import PlainStep, StepInfo, TrainConfig, fit
from mtl.weighting import StepContext, Weighting
from mtl.weighting.gradient import GradientWeighting

EXCLUDED: dict[str, str] = {}   # registered architectures left out of the contracts -> why (none today)
ARCHS = [a for a in architecture_names() if a not in EXCLUDED]
TINY = {  # tiny widths so every (architecture, backbone) pair trains in well under a second
    "segnet": dict(width=4, stages=2),
    "resnet18": dict(width=8, head_width=8),
    "vit": dict(img_size=(32, 32), patch_size=8, embed_dim=16, depth=2, num_heads=2, stages=2, head_width=8),
}


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py




def build(arch, backbone, tasks, **arch_kw):
    torch.manual_seed(0)
    return create_model(arch, backbone, tasks, architecture_kw=arch_kw, backbone_kw=TINY[backbone])


def batch(scenes, n=2):
    return next(iter(scenes.loader("train", n)))


def test_every_registered_architecture_is_covered_or_excluded_with_a_reason():
    assert set(EXCLUDED) <= set(architecture_names()) and all(EXCLUDED.values())
    assert set(ARCHS) | set(EXCLUDED) == set(architecture_names())
    assert {"hps", "cross_stitch", "mmoe", "mtan", "cgc", "ple", "ltb", "dselect_k"} <= set(ARCHS)


@pytest.mark.parametrize("backbone", list(TINY))
@pytest.mark.parametrize("arch", ARCHS)
def test_trains_with_ew(arch, backbone, scenes):
    model = build(arch, backbone, scenes.tasks)
    before = [p.detach().clone() for p in model.shared_parameters()]
    hist = fit(model, scenes, W.create("ew"), TrainConfig(epochs=1, batch_size=2, max_steps_per_epoch=2, device="cpu"))
    losses = hist.epochs[0]["train_loss"]
    assert set(losses) == {"segmentation", "depth", "normal"} and all(math.isfinite(v) for v in losses.values())
    moved = [not torch.equal(b, p.detach()) for b, p in zip(before, model.shared_parameters())]
    assert sum(moved) > len(moved) // 2          # the shared parameters really trained
    assert set(hist.final) == {"segmentation", "depth", "normal"}


@pytest.mark.parametrize("backbone", list(TINY))
@pytest.mark.parametrize("arch", ARCHS)
def test_decode_of_encode_is_forward(arch, backbone, scenes):
    model = build(arch, backbone, scenes.tasks).eval()
    x, _ = batch(scenes)
    with torch.no_grad():
        z, out = model.encode(x), model(x)
        again = model.decode(z)
    assert isinstance(z, torch.Tensor)
    if model.rep_layout == "per_task":
        assert z.shape[0] == len(model.tasks) and z.shape[1] == x.shape[0]
    for t in model.tasks:
        assert out[t].shape[-2:] == x.shape[-2:]
        torch.testing.assert_close(again[t], out[t], rtol=0, atol=0)


class _SumOfGradients(GradientWeighting):
    """w = 1: the engine's update must then equal the plain gradient of Σ_t L_t, in either mode."""

    def weights(self, J, losses):
        return torch.ones_like(losses)


@pytest.mark.parametrize("mode", ["param", "rep"])
@pytest.mark.parametrize("backbone", ["segnet", "vit"])
@pytest.mark.parametrize("arch", ARCHS)
def test_gradient_engine_modes_match_plain_backward(arch, backbone, mode, scenes):
    """Rep mode is exact only if every shared parameter lies upstream of ``encode``'s output and
    ``decode`` holds task parameters only; param mode only if the partition is right."""
    model = build(arch, backbone, scenes.tasks).train()
    x, y = batch(scenes)
    z = model.encode(x)
    losses = task_losses(model, scenes, model.decode(z), y)
    params = [p for p in model.parameters() if p.requires_grad]
    expected = torch.autograd.grad(losses.sum(), params, retain_graph=True, allow_unused=True)
    ctx = StepContext(model=model, batch=(x, y), rep=z if mode == "rep" else None, loss_fn=None, next_batch=None)
    model.zero_grad(set_to_none=True)
    _SumOfGradients(mode=mode).backward(losses, ctx)
    for p, g in zip(params, expected):
        got = p.grad if p.grad is not None else torch.zeros_like(p)
        torch.testing.assert_close(got, g if g is not None else torch.zeros_like(p), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("mode", ["param", "rep"])
@pytest.mark.parametrize("arch", ARCHS)
def test_trains_with_mgda(arch, mode, scenes):
    model = build(arch, "segnet", scenes.tasks)
    hist = fit(model, scenes, W.create("mgda", mode=mode),
               TrainConfig(epochs=1, batch_size=2, max_steps_per_epoch=2, device="cpu"))
    assert all(math.isfinite(v) for v in hist.epochs[0]["train_loss"].values())
    w = hist.epochs[0]["weights"]
    assert set(w) == set(model.tasks) and sum(w.values()) == pytest.approx(1, abs=1e-4)


@pytest.mark.parametrize("backbone", ["segnet", "vit"])
@pytest.mark.parametrize("arch", ARCHS)
def test_parameters_partition_by_gradient(arch, backbone, scenes):
    """Every parameter is shared or owned by exactly one task, and only task t's loss reaches task t's."""
    model = build(arch, backbone, scenes.tasks).train()
    shared = {id(p) for p in model.shared_parameters()}
    owned = {t: {id(p) for p in model.task_parameters(t)} for t in model.tasks}
    everything = [id(p) for p in model.parameters() if p.requires_grad]
    for p in everything:
        assert (p in shared) + sum(p in o for o in owned.values()) == 1
    assert all(owned.values()) and shared
    last = {id(p) for p in model.last_shared_parameters()}
    assert last and last <= shared
    x, y = batch(scenes)
    torch.manual_seed(1)
    out = model(x)
    losses = {t: scenes.task(t).loss(out[t], y[t]) for t in model.tasks}
    for t in model.tasks:
        for s in model.tasks:
            grads = torch.autograd.grad(losses[s], model.task_parameters(t), retain_graph=True, allow_unused=True)
            reached = any(g is not None and g.abs().sum() > 0 for g in grads)
            assert reached == (s == t), f"loss {s} {'reaches' if reached else 'misses'} task {t}'s parameters"


@pytest.mark.parametrize("arch", ARCHS)
def test_single_task_variant_uses_the_same_modules(arch, scenes):
    multi = build(arch, "segnet", scenes.tasks)
    single = build(arch, "segnet", scenes.tasks[:1])
    assert type(single) is type(multi) and single.tasks == ["segmentation"]
    kinds = lambda m: {type(mod).__name__ for mod in m.modules()}  # noqa: E731
    assert kinds(single) == kinds(multi)          # e.g. MTAN single-task keeps its attention modules
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert 0 < n(single) < n(multi)
    x, _ = batch(scenes)
    assert single(x)["segmentation"].shape == (2, 13, 32, 32)


def test_parameter_counts(scenes):
    """HPS is the smallest; one expert/column per task multiplies the encoder; gates stay tiny."""
    counts = {a: sum(p.numel() for p in build(a, "segnet", scenes.tasks).parameters()) for a in ARCHS}
    enc = sum(p.numel() for p in build("hps", "segnet", scenes.tasks).encoder.parameters())
    assert min(counts, key=counts.get) == "hps"
    for a in ("cross_stitch", "ltb"):             # T = 3 columns
        assert counts[a] - counts["hps"] >= 2 * enc
    mmoe = build("mmoe", "segnet", scenes.tasks)  # 2 experts; gate: Linear(E·C -> E) on pooled features
    assert sum(p.numel() for p in mmoe.gates["depth"].parameters()) == 2 * 4 * 2 + 2


def test_cross_stitch_identity_units_give_independent_columns(scenes):
    model = build("cross_stitch", "segnet", scenes.tasks).eval()
    assert isinstance(model, CrossStitch)
    for a in model.units:
        torch.testing.assert_close(a.sum(1), torch.ones(3))      # convex initialisation
        assert float(a[0, 0].detach()) == pytest.approx(0.9)
    with torch.no_grad():
        for a in model.units:
            a.copy_(torch.eye(3))
        x, _ = batch(scenes)
        z = model.encode(x)
        for t, col in enumerate(model.encoder):
            h, memo = x, ()
            for stage in col:
                h, memo = stage(h, memo)
            torch.testing.assert_close(z[t], h)


class _NoTaskGradient(Weighting):
    """Leaves the task losses out of the backward, so the gradients left are the regulariser's."""

    def backward(self, losses, ctx):
        return {}


def _one_loop_step(model, scenes):
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    PlainStep().step(model.train(), scenes, batch(scenes), _NoTaskGradient(), opt,
                     StepInfo(epoch=0, step=0, next_batch=lambda s: batch(scenes)))


@pytest.mark.parametrize("lam", [0.0, 1e-2])
def test_dselect_k_regulariser_reaches_every_gate(lam, scenes):
    model = build("dselect_k", "segnet", scenes.tasks, entropy_reg=lam, num_experts=3)
    _one_loop_step(model, scenes)
    for t in model.tasks:
        g = model.gates[t].z_logits.weight.grad
        assert g is not None and (g.abs().sum() > 0) == (lam > 0)
    assert model.regularization() is None         # consumed by the step, nothing stale


def test_dselect_gate_is_a_mixture():
    gate = DSelectGate(channels=3, n_experts=4, k=2, gamma=1.0)
    w = gate(torch.randn(4, 5, 3, 6, 6))          # [E, B, C, H, W]
    torch.testing.assert_close(w.sum(1), torch.ones(5))   # E a power of 2: Σ_e r_e = 1 exactly
    assert (w >= 0).all() and gate.selectors.shape == (5, 2, 4)
    t = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0])
    torch.testing.assert_close(smooth_step(t, 1.0), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))


def test_ltb_schedule_and_branching(scenes):
    model = build("ltb", "segnet", scenes.tasks)
    model.start_epoch(0, 200)                      # LibMTL: warm-up for the first 1 % of epochs
    assert model.in_warmup and torch.allclose(model.branching(), torch.full_like(model.alpha, 1 / 3))
    for e in (2, 50, 199):
        model.start_epoch(e, 200)
        assert not model.in_warmup and model.temperature == pytest.approx(10 / math.sqrt(e + 1))
    d = model.branching()
    assert ((d == 0) | (d == 1)).all() and (d.sum(-1) == 1).all()     # hard tree in training
    with torch.no_grad():
        model.alpha.copy_(torch.randn_like(model.alpha))
    model.eval()
    assert torch.equal(model.branching().argmax(-1), model.alpha.argmax(-1))
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    PlainStep().step(model, scenes, batch(scenes), W.create("ew"), opt,
                     StepInfo(epoch=3, step=0, next_batch=lambda s: batch(scenes)))
    assert model.alpha.grad is not None and model.alpha.grad.abs().sum() > 0


def test_bad_arguments_raise_clearly(scenes):
    with pytest.raises(KeyError, match="valid names"):
        create_model("nope", "segnet", scenes.tasks)
    with pytest.raises(ValueError, match="num_experts"):
        build("mmoe", "segnet", scenes.tasks, num_experts=0)
    unstaged = lambda: Backbone(torch.nn.Linear(3, 4), lambda t: torch.nn.Linear(4, 1), 4)  # noqa: E731
    for arch in ("cross_stitch", "mtan", "ple", "ltb"):
        with pytest.raises(ValueError, match="split into stages"):
            ARCHITECTURES.get(arch)(backbone_fn=unstaged, tasks=scenes.tasks)
    with pytest.raises(TypeError):
        ARCHITECTURES.get("mtan")(backbone_fn=None, tasks=scenes.tasks, bogus=1)


@pytest.mark.parametrize("backbone", ["segnet", "vit"])
@pytest.mark.parametrize("arch", ARCHS)
def test_head_split_jacobian_matches_the_batched_one(arch, backbone, scenes):
    """The param-mode engine's shortcut (heads crossed once from the shared representation, when the
    graph allows it) gives the same Jacobian as the plain batched backward on every architecture."""
    from mtl.jacobian import FactoredJacobian, jacobian
    model = build(arch, backbone, scenes.tasks)
    x, y = batch(scenes)
    z = model.encode(x)
    losses = task_losses(model, scenes, model.decode(z), y)
    shared = model.shared_parameters()
    J = jacobian(losses, shared, retain_graph=True)                       # [T, d], identity rows
    rep = z if isinstance(z, torch.Tensor) else None
    torch.testing.assert_close(jacobian(losses, shared, retain_graph=True, rep=rep), J, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(FactoredJacobian(losses, shared, rep=rep).dense(), J, rtol=1e-4, atol=1e-6)
