"""The per-task gradient engine: batched Jacobians equal row-by-row autograd; the shared base
writes the same gradients as one backward of the summed loss when every weight is 1."""
import pytest
import torch
from torch import nn

from mtl.jacobian import _linear_layers, block_gramian, flatten, gramian, jacobian, split_parameters, write_grads
from mtl.models import MultiTaskModel
from mtl.weighting import GradientWeighting, StepContext


def _model(T=3, seed=0):
    torch.manual_seed(seed)
    enc = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 4))
    return MultiTaskModel(enc, {f"t{i}": nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1)) for i in range(T)})


def _losses(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 5, generator=g)
    z = model.encode(x)
    return torch.stack([(p.squeeze(1) - i) .pow(2).mean() for i, p in enumerate(model.decode(z).values())]), z


def _loop_jacobian(losses, inputs):
    return torch.stack([flatten(torch.autograd.grad(l, inputs, retain_graph=True)) for l in losses])


@pytest.mark.parametrize("chunk", [None, 1, 2])
def test_param_jacobian_matches_loop(chunk):
    model = _model()
    losses, _ = _losses(model)
    shared = model.shared_parameters()
    J = jacobian(losses, shared, chunk_size=chunk, retain_graph=True)
    assert J.shape == (3, sum(p.numel() for p in shared))
    torch.testing.assert_close(J, _loop_jacobian(losses, shared))


def test_rep_jacobian_matches_loop():
    model = _model()
    losses, z = _losses(model)
    J = jacobian(losses, [z], chunk_size=2, retain_graph=True)
    assert J.shape == (3, z.numel())
    torch.testing.assert_close(J, _loop_jacobian(losses, [z]))


def test_unreached_input_gives_zero_columns():
    model = _model()
    losses, _ = _losses(model)
    head0 = list(model.heads["t0"].parameters())
    J = jacobian(losses, head0)
    assert J[0].abs().sum() > 0 and torch.all(J[1:] == 0)


def test_bad_arguments_raise():
    model = _model()
    losses, _ = _losses(model)
    with pytest.raises(ValueError, match="chunk_size"):
        jacobian(losses, model.shared_parameters(), chunk_size=0)
    with pytest.raises(ValueError, match="vector"):
        jacobian(losses[None], model.shared_parameters())
    with pytest.raises(ValueError, match="entries"):
        write_grads(model.shared_parameters(), torch.zeros(3))


def test_write_grads_accumulates():
    p = nn.Parameter(torch.zeros(2, 2))
    write_grads([p], torch.ones(4))
    write_grads([p], torch.arange(4.0))
    torch.testing.assert_close(p.grad, torch.tensor([[1.0, 2.0], [3.0, 4.0]]))


class _Ones(GradientWeighting):
    def weights(self, J, losses):
        return torch.ones(J.shape[0], dtype=J.dtype)


@pytest.mark.parametrize("mode", ["param", "rep"])
def test_unit_weights_reproduce_summed_backward(mode):
    """With w = 1 the base must give every parameter (shared via J or rep, heads plainly) ∇ Σ_t L_t."""
    ref = _model()
    losses, _ = _losses(ref)
    losses.sum().backward()
    model = _model()
    losses, z = _losses(model)
    ctx = StepContext(model=model, batch=(), rep=z if mode == "rep" else None, loss_fn=None, next_batch=None)
    logs = _Ones(mode=mode).backward(losses, ctx)
    torch.testing.assert_close(logs["weights"], torch.ones(3))
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    assert len(split_parameters(model, model.shared_parameters())) == 3 * 4


def test_rep_mode_without_rep_is_a_clear_error():
    model = _model()
    losses, _ = _losses(model)
    ctx = StepContext(model=model, batch=(), rep=None, loss_fn=None, next_batch=None)
    with pytest.raises(ValueError, match="ctx.rep"):
        _Ones(mode="rep").backward(losses, ctx)


# ----------------------------------------------------------------------------- the Gramian without J
class _Mixed(nn.Module):
    """Linear with and without bias, a reused layer and a convolution: fast path and fallback together."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(5, 7), nn.Linear(7, 4, bias=False), nn.Linear(4, 4)
        self.conv, self.twice = nn.Conv1d(1, 2, 3), nn.Linear(4, 4)

    def forward(self, x):
        z = self.c(torch.tanh(self.b(torch.tanh(self.a(x)))))
        z = z + self.conv(z[:, None, :]).mean((1, 2))[:, None]
        return self.twice(torch.tanh(self.twice(z)))


def _mixed_losses(net, n, seed):
    x = torch.randn(n, 5, generator=torch.Generator().manual_seed(seed))
    z = net(x)
    return torch.stack([z[:, 0].pow(2).mean(), z.sum(1).mean(), (z[:, 1] * z[:, 2]).mean()])


@pytest.mark.parametrize("n", [3, 40])          # the kernel trick (n small) and the per-layer Jacobian
def test_gramian_equals_jacobian_gram(n):
    torch.manual_seed(0)
    net = _Mixed()
    params = list(net.parameters())
    L = _mixed_losses(net, n, 1)
    J = jacobian(L, params, retain_graph=True)
    torch.testing.assert_close(gramian(L, params, chunk_size=2), J @ J.T, rtol=1e-5, atol=1e-6)
    used = {id(w) for _, _, w, _ in _linear_layers(L, params)}
    assert used == {id(net.a.weight), id(net.b.weight), id(net.c.weight)}     # not the reused one


def test_cross_and_block_gramians():
    torch.manual_seed(0)
    net = _Mixed()
    params = list(net.parameters())
    La, Lb = _mixed_losses(net, 6, 1), _mixed_losses(net, 9, 2)
    Ja, Jb = jacobian(La, params, retain_graph=True), jacobian(Lb, params, retain_graph=True)
    torch.testing.assert_close(gramian(La, params, other=Lb), Ja @ Jb.T, rtol=1e-5, atol=1e-6)
    J = torch.cat([Ja, Jb[:1]])
    torch.testing.assert_close(block_gramian([La, Lb[:1]], params), J @ J.T, rtol=1e-5, atol=1e-6)


class _Fixed(GradientWeighting):
    def gram_weights(self, G, losses):
        return [0.5, 2.0, -1.0]


def test_gram_path_writes_the_weighted_jacobian():
    """The Gramian route (no J) must give shared grads Σ w_t g_t and heads their plain gradient."""
    model = _model()
    losses, _ = _losses(model)
    J = jacobian(losses, model.shared_parameters(), retain_graph=True)
    heads = [torch.autograd.grad(losses.sum(), list(model.heads.parameters()), retain_graph=True)]
    ctx = StepContext(model=model, batch=(), rep=None, loss_fn=None, next_batch=None)
    w = _Fixed(mode="param")
    assert w.gram_only
    logs = w.backward(losses, ctx)
    torch.testing.assert_close(logs["weights"], torch.tensor([0.5, 2.0, -1.0]))
    got = flatten([p.grad for p in model.shared_parameters()])
    torch.testing.assert_close(got, torch.tensor([0.5, 2.0, -1.0]) @ J)
    for p, g in zip(model.heads.parameters(), heads[0]):
        torch.testing.assert_close(p.grad, g)
