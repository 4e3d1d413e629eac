"""The per-task gradient engine: batched Jacobians equal row-by-row autograd; the shared base
writes the same gradients as one backward of the summed loss when every weight is 1."""
from dataclasses import replace

import pytest
import torch
from torch import nn

from mtl.jacobian import (DenseJacobian, FactoredJacobian, _linear_layers, block_gramian, flatten, gramian,
                          head_gradients, jacobian, split_parameters, write_grads)
import mtl.weighting as W
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
    return torch.stack([flatten(torch.autograd.grad(loss, inputs, retain_graph=True)) for loss in losses])


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
    info = replace(GradientWeighting.info, needs="gramian")       # declared as registration would

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
    logs = w.backward(losses, ctx)
    torch.testing.assert_close(logs["weights"], torch.tensor([0.5, 2.0, -1.0]))
    got = flatten([p.grad for p in model.shared_parameters()])
    torch.testing.assert_close(got, torch.tensor([0.5, 2.0, -1.0]) @ J)
    for p, g in zip(model.heads.parameters(), heads[0]):
        torch.testing.assert_close(p.grad, g)


# ----------------------------------------------------------------------------- J in factored form
# (per-task state without J)
@pytest.mark.parametrize("n,chunk", [(3, None), (40, 2)])
def test_factored_jacobian_matches_the_formed_one(n, chunk):
    """dense(), blocks(), sq_norms() and accumulate_into(β, scale) of the factors equal the same on J itself."""
    torch.manual_seed(0)
    net = _Mixed()
    params = list(net.parameters())
    L = _mixed_losses(net, n, 1)
    J = jacobian(L, params, retain_graph=True)                            # [3, d]
    fac = FactoredJacobian(L, params, chunk_size=chunk)
    torch.testing.assert_close(fac.dense(), J)
    cols = torch.zeros_like(J)
    for off, blk in fac.blocks(max_cols=9):                               # small blocks: several per weight
        assert blk.shape[1] <= 9                                          # every row fits (in ≤ 7)
        cols[:, off:off + blk.shape[1]] += blk
    torch.testing.assert_close(cols, J)
    torch.testing.assert_close(fac.sq_norms(), (J * J).sum(1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fac.gram(), J @ J.T, rtol=1e-5, atol=1e-6)
    Y0, s = torch.randn_like(J), torch.tensor([0.5, -2.0, 3.0])
    for jac in (fac, DenseJacobian(J)):
        torch.testing.assert_close(jac.accumulate_into(Y0.clone(), beta=0.7, scale=s), 0.7 * Y0 + s[:, None] * J)
        # β=0 ignores out
        torch.testing.assert_close(jac.accumulate_into(torch.full_like(J, float("nan")), beta=0.0), J)
    with pytest.raises(ValueError, match="contiguous"):
        fac.accumulate_into(torch.zeros(J.shape[1], 3).T)
    with pytest.raises(ValueError, match="scale must be"):
        fac.accumulate_into(torch.zeros_like(J), scale=torch.ones(2))


def _literal(name):
    """The three tracking methods written out literally on a formed J (LibMTL's arithmetic): step(J, L) → (d, w)."""
    from mtl.weighting._linalg import project_simplex
    st = {"k": 0, "Y": None, "lam": None, "e0": None, "w": None}

    def dbmtl(J, L):                                       # J: gradients of log L
        st["k"] += 1
        st["Y"] = (1 - 0.9) * J if st["Y"] is None else 0.9 * st["Y"] + 0.1 * J
        n = st["Y"].norm(dim=1)
        a = n.max() / n
        return a @ st["Y"], a

    def moco(J, L):
        st["k"] += 1
        k, T = st["k"], J.shape[0]
        if st["Y"] is None:
            st["Y"], st["lam"] = torch.zeros_like(J), torch.full((T,), 1.0 / T, dtype=torch.float64)
        b = min(0.5 / k**0.5, 1.0)
        st["Y"] = st["Y"] - b * (st["Y"] - (L / J.norm(dim=1))[:, None] * J)
        YY = (st["Y"] @ st["Y"].T).double()
        st["lam"] = project_simplex(st["lam"] - 0.1 / k**0.5 * (YY @ st["lam"]))
        lam = st["lam"].float()
        return lam @ st["Y"], lam

    def excessmtl(J, L):
        T = J.shape[0]
        st["Y"] = J * J if st["Y"] is None else st["Y"] + J * J
        e = (J * J / (st["Y"] + 1e-7).sqrt()).sum(1).double()
        if st["e0"] is None:
            st["e0"], st["w"] = e, torch.ones(T, dtype=torch.float64)
        else:
            w = st["w"] * torch.exp(1e-2 * e / st["e0"])
            st["w"] = w / w.sum() * T
        w = st["w"].float()
        return w @ J, w

    return locals()[name]


@pytest.mark.parametrize("with_rep", [False, True])
@pytest.mark.parametrize("name", ["dbmtl", "moco", "excessmtl"])
def test_tracking_methods_match_their_literal_algorithm(name, with_rep):
    """Over several steps, the factored "param" path (J never formed) writes the shared gradients and
    weights of the method's algorithm written out literally on each step's formed J."""
    fast, ref = _model(), _model()
    wf, literal = W.create(name), _literal(name)
    assert W.info(name).needs == "factored"
    for step in range(4):
        fast.zero_grad(set_to_none=True)
        Lf, zf = _losses(fast, seed=step)
        logs = wf.backward(Lf, StepContext(model=fast, batch=(), rep=zf if with_rep else None, loss_fn=None,
                                           next_batch=None))
        Lr, _ = _losses(ref, seed=step)
        Lt = torch.log(Lr + 1e-8) if name == "dbmtl" else Lr
        J = jacobian(Lt, ref.shared_parameters(), retain_graph=True)
        d, w = literal(J.detach(), Lt.detach())
        torch.testing.assert_close(logs["weights"], w.to(logs["weights"].dtype), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(flatten([p.grad for p in fast.shared_parameters()]), d, rtol=1e-4, atol=1e-6)
        with torch.no_grad():                                             # move both models the same way
            for pf, pr in zip(fast.shared_parameters(), ref.shared_parameters()):
                pf.sub_(0.1 * pf.grad)
                pr.sub_(0.1 * pf.grad)


def test_factored_combine_and_norms_in_both_regimes():
    """combine(w) = wᵀJ, and sq_norms on the n > in branch (more rows than inputs) as on n ≤ in."""
    torch.manual_seed(0)
    net = _Mixed()
    params = list(net.parameters())
    for n in (3, 40):
        L = _mixed_losses(net, n, 2)
        J = jacobian(L, params, retain_graph=True)
        fac = FactoredJacobian(L, params)
        w = torch.tensor([1.0, -0.5, 2.0])
        torch.testing.assert_close(fac.combine(w), w @ J, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(DenseJacobian(J).combine(w), w @ J)
        torch.testing.assert_close(fac.sq_norms(), (J * J).sum(1), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- separate heads crossed once
def test_head_gradients_equal_the_batched_jacobian_at_the_representation():
    """One ordinary backward with hooks on the heads gives ∂L_t/∂z for every t, also through log L."""
    model = _model(T=4)
    L, z = _losses(model)
    shared = model.shared_parameters()
    for losses in (L, torch.log(L + 1e-8)):
        Jz = jacobian(losses, [z], retain_graph=True)                      # [T, n·4], batched rows
        Dz = head_gradients(losses, z, shared)
        assert Dz is not None and Dz.shape == (4, *z.shape)
        torch.testing.assert_close(Dz.reshape(4, -1), Jz, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(jacobian(losses, [z], rep=z, retain_graph=True), Jz, rtol=1e-5, atol=1e-7)
        fac = FactoredJacobian(losses, shared, rep=z)
        torch.testing.assert_close(fac.dense(), jacobian(losses, shared, retain_graph=True), rtol=1e-5, atol=1e-7)
    assert all(p.grad is None for p in model.parameters())                # nothing written


def test_head_gradients_refuse_graphs_without_separate_heads():
    """A consumer of z shared by two tasks, a shared parameter above z, or a non-stacked loss vector: None."""
    model = _model(T=2)
    x = torch.randn(6, 5)
    z = model.encode(x)
    shared = model.shared_parameters()
    a = model.heads["t0"](z)
    assert head_gradients(torch.stack([a.mean(), (2 * a).pow(2).mean()]), z, shared) is None   # one head, two tasks
    reuse = z @ model.encoder[2].weight                                                         # [6, 7]: a shared
    assert head_gradients(torch.stack([model.heads["t0"](z).mean(), reuse.mean()]), z, shared) is None
    skip = model.encoder[0](x).mean()                                                           # bypasses z
    assert head_gradients(torch.stack([model.heads["t0"](z).mean(), model.heads["t1"](z).mean() + skip]), z,
                          shared) is None
    assert head_gradients(torch.cat([model.heads["t0"](z).mean(0), model.heads["t1"](z).mean(0)]), z, shared) is None
