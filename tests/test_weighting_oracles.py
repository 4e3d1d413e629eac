"""Analytic oracles for the weighting methods: closed forms, optimality conditions and identities
that the papers state (not just "it runs")."""
import numpy as np
import pytest
import torch

import mtl.weighting as W
from mtl.weighting._linalg import dual_cone_weights, min_norm_weights, project_simplex
from mtl.weighting.cagrad import cagrad_dual
from mtl.weighting.fairgrad import fairgrad_weights
from mtl.weighting.nashmtl import NashSolver


def rand_J(T, d, seed, dtype=torch.float64):
    return torch.randn(T, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def weights_of(name, J, losses=None, **kw):
    w = W.create(name, mode="param", **kw)
    losses = torch.ones(J.shape[0], dtype=J.dtype) if losses is None else losses
    return w.weights(J, losses)


# ----------------------------------------------------------------------------- MGDA
def test_mgda_two_task_closed_form():
    J = torch.tensor([[-4.0, 1, 1], [6, 1, 1]], dtype=torch.float64)
    torch.testing.assert_close(weights_of("mgda", J), torch.tensor([0.6, 0.4], dtype=J.dtype))
    torch.testing.assert_close(W.aggregate("mgda", J), torch.tensor([0.0, 1, 1], dtype=J.dtype), atol=1e-12, rtol=0)


@pytest.mark.parametrize("seed", range(5))
def test_mgda_kkt(seed):
    """w ∈ simplex and (Gw)_i ≥ wᵀGw with equality on the support (min-norm point optimality)."""
    J = rand_J(5, 3, seed)                                   # T > d: 0 may or may not be in the hull
    G = (J @ J.T).numpy()
    w = min_norm_weights(G)
    assert np.all(w >= 0) and abs(w.sum() - 1) < 1e-12
    Gw, val = G @ w, w @ G @ w
    assert np.all(Gw >= val - 1e-9)
    assert np.allclose(Gw[w > 1e-9], val, atol=1e-9)


def test_mgda_l2_normalisation_is_scale_free():
    J = rand_J(3, 6, 1)
    s = torch.tensor([1e-3, 1.0, 1e3], dtype=J.dtype)[:, None]
    d1 = W.aggregate("mgda", J, normalize="l2")
    d2 = W.aggregate("mgda", J * s, normalize="l2")
    torch.testing.assert_close(d1, d2)


# ----------------------------------------------------------------------------- PCGrad / GradVac
def test_pcgrad_orthogonal_is_plain_sum():
    J = torch.tensor([[1.0, 0, 0, 2], [0, 3, 0, 0], [0, 0, -1, 0]], dtype=torch.float64)
    torch.testing.assert_close(W.aggregate("pcgrad", J), J.sum(0))


def test_pcgrad_two_tasks_matches_the_projection_formula():
    g1 = torch.tensor([1.0, 1.0], dtype=torch.float64)
    g2 = torch.tensor([-1.0, 0.2], dtype=torch.float64)
    p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2
    p2 = g2 - (g2 @ g1) / (g1 @ g1) * g1
    torch.testing.assert_close(W.aggregate("pcgrad", torch.stack([g1, g2])), p1 + p2)


def test_pcgrad_projected_gradients_do_not_conflict_with_their_last_partner():
    """T=2 has no ordering freedom: each projected gradient is orthogonal to the other raw gradient."""
    J = torch.tensor([[2.0, 1.0, 0.0], [-1.0, 0.5, 1.0]], dtype=torch.float64)
    d = W.aggregate("pcgrad", J)
    assert (J @ d >= -1e-12).all()


def test_gradvac_first_step_equals_pcgrad():
    J = rand_J(5, 8, 2)
    torch.manual_seed(7)
    a = W.aggregate("gradvac", J)
    torch.manual_seed(7)
    b = W.aggregate("pcgrad", J)
    torch.testing.assert_close(a, b)


def test_gradvac_reaches_its_cosine_target_for_two_tasks():
    g1 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    g2 = torch.tensor([-0.5, 1.0], dtype=torch.float64)
    w = W.create("gradvac", beta=0.5, mode="param")
    w._target = torch.tensor([[0.0, 0.3], [0.3, 0.0]], dtype=torch.float64)
    coef = w.weights(torch.stack([g1, g2]), torch.ones(2))
    # g1' = g1 + c g2 has cos(g1', g2) = 0.3 exactly (Wang et al. Eq. 5)
    torch.manual_seed(0)
    c1 = coef[1] - 1.0                                       # extra weight on g2 from task 1's update
    g1p = g1 + c1 * g2
    assert abs(float(g1p @ g2 / (g1p.norm() * g2.norm())) - 0.3) < 1e-9


# ----------------------------------------------------------------------------- Nash-MTL and FairGrad
@pytest.mark.parametrize("seed", range(3))
def test_nash_solves_its_bargaining_equation(seed):
    J = rand_J(4, 9, seed) * torch.tensor([0.1, 1, 3, 10], dtype=torch.float64)[:, None]
    G = (J @ J.T).numpy()
    a = NashSolver()(G)
    np.testing.assert_allclose(G @ a, 1 / a, rtol=1e-6)
    w = weights_of("nashmtl", J, max_norm=None).numpy()
    np.testing.assert_allclose(w, a, rtol=1e-5)


def test_nash_clips_to_max_norm():
    J = rand_J(3, 5, 0) * 1e-3
    d = W.aggregate("nashmtl", J, max_norm=1.0)
    assert abs(float(d.norm()) - 1.0) < 1e-6


@pytest.mark.parametrize("seed", range(3))
def test_fairgrad_alpha1_matches_nash_direction(seed):
    J = rand_J(4, 9, seed)
    d_f = W.aggregate("fairgrad", J, alpha=1.0, max_norm=None)
    d_n = W.aggregate("nashmtl", J, max_norm=None)
    torch.testing.assert_close(d_f, d_n, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("alpha", [0.5, 2.0, 5.0])
def test_fairgrad_solves_its_fairness_equation(alpha):
    J = rand_J(3, 7, 4) * torch.tensor([1e-2, 1.0, 1e2], dtype=torch.float64)[:, None]
    G = (J @ J.T).numpy()
    w = fairgrad_weights(G, alpha)
    np.testing.assert_allclose(G @ w, w ** (-1 / alpha), rtol=1e-6)


# ----------------------------------------------------------------------------- IMTL, UPGrad, CAGrad, Aligned-MTL
@pytest.mark.parametrize("seed", range(3))
def test_imtl_equal_projections(seed):
    J = rand_J(4, 10, seed) * torch.tensor([0.1, 1, 2, 10], dtype=torch.float64)[:, None]
    d = W.aggregate("imtl", J, mode="param")
    proj = (J / J.norm(dim=1, keepdim=True)) @ d
    torch.testing.assert_close(proj, proj.mean().expand(4), rtol=1e-8, atol=1e-10)
    assert abs(float(weights_of("imtl", J).sum()) - 1) < 1e-9


@pytest.mark.parametrize("seed", range(5))
def test_upgrad_update_conflicts_with_no_task(seed):
    J = rand_J(6, 4, seed)                                   # strongly conflicting: 6 tasks in 4 dims
    d = W.aggregate("upgrad", J, reg_eps=0.0)
    assert (J @ d >= -1e-9 * float(J.norm() * d.norm())).all()
    assert float(d.norm()) > 0 or torch.linalg.matrix_rank(J) < 4


def test_upgrad_is_the_mean_when_nothing_conflicts():
    J = torch.tensor([[1.0, 0.2, 0], [0.5, 1.0, 0.1], [0.0, 0.3, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(W.aggregate("upgrad", J, reg_eps=0.0), J.mean(0))


def test_dual_cone_projection_is_a_projection():
    """Jᵀv_i is the projection of g_i on {x: Jx ≥ 0}: feasible, and g_i − x is normal to the cone (KKT)."""
    J = rand_J(4, 3, 11)
    G = (J @ J.T).numpy()
    V = dual_cone_weights(G)
    X = torch.as_tensor(V) @ J                                # [T, d] projections
    assert (X @ J.T >= -1e-9).all()
    mu = torch.as_tensor(V - np.eye(4))                       # multipliers ≥ 0, complementary
    assert (mu >= -1e-12).all()
    assert torch.allclose((mu * (X @ J.T)).sum(1), torch.zeros(4, dtype=J.dtype), atol=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_cagrad_reaches_its_dual_optimum(seed):
    cp = pytest.importorskip("cvxpy")
    J = rand_J(4, 6, seed)
    G = (J @ J.T).numpy()
    c = 0.5
    w = cagrad_dual(G, c)
    g0n = np.sqrt(G.mean())
    obj = lambda v: v @ G.mean(1) + c * g0n * np.sqrt(v @ G @ v)  # noqa: E731
    x = cp.Variable(4, nonneg=True)
    A = np.linalg.cholesky(G + 1e-12 * np.eye(4)).T
    prob = cp.Problem(cp.Minimize(x @ G.mean(1) + c * g0n * cp.norm(A @ x)), [cp.sum(x) == 1])
    prob.solve(solver="CLARABEL")
    assert obj(w) <= prob.value + 1e-6 * abs(prob.value) + 1e-9


def test_cagrad_primal_properties():
    """d = (g0 + λGw)/(1+c²) lies on the sphere ‖d(1+c²) − g0‖ = c‖g0‖; c = 0 gives the mean."""
    J, c = rand_J(3, 5, 1), 0.4
    d = W.aggregate("cagrad", J, c=c) * (1 + c**2)
    g0 = J.mean(0)
    assert abs(float((d - g0).norm() - c * g0.norm())) < 1e-8
    torch.testing.assert_close(W.aggregate("cagrad", J, c=0.0), g0)


def test_alignedmtl_orthogonal_gradients_are_equalised():
    J = torch.diag(torch.tensor([3.0, 1.0, 0.5], dtype=torch.float64))
    d = W.aggregate("alignedmtl", J)
    torch.testing.assert_close(d, torch.full((3,), 0.5, dtype=J.dtype))   # σ_min Σ g_i/‖g_i‖


def test_alignedmtl_aligned_system_is_well_conditioned():
    J = rand_J(3, 6, 5)
    G = (J @ J.T).numpy()
    lam, V = np.linalg.eigh(G)
    B = np.sqrt(lam.min()) * (V / np.sqrt(lam)) @ V.T
    s = np.linalg.svd(B @ J.numpy(), compute_uv=False)
    np.testing.assert_allclose(s, np.sqrt(lam.min()))
    np.testing.assert_allclose(weights_of("alignedmtl", J).numpy(), B.sum(0))


# ----------------------------------------------------------------------------- the seed's AvgNorm and others
def test_avgnorm_scales_every_task_to_the_sum_norm():
    J = rand_J(3, 8, 3) * torch.tensor([0.01, 1, 50], dtype=torch.float64)[:, None]
    w = W.create("avgnorm").weights(J, torch.ones(3))
    torch.testing.assert_close((w[:, None] * J).norm(dim=1), J.sum(0).norm().expand(3))


def test_graddrop_with_full_leak_is_the_plain_sum():
    J = rand_J(3, 8, 0)
    torch.testing.assert_close(W.aggregate("graddrop", J, leak=1.0), J.sum(0))


def test_graddrop_keeps_one_sign_per_coordinate():
    J = rand_J(4, 50, 1)
    d = W.aggregate("graddrop", J)
    pos, neg = J.clamp(min=0).sum(0), J.clamp(max=0).sum(0)
    assert torch.all(torch.isclose(d, pos) | torch.isclose(d, neg))


def test_dbmtl_first_step_balances_norms():
    J = rand_J(3, 6, 2) * torch.tensor([0.1, 1, 10], dtype=torch.float64)[:, None]
    d = W.aggregate("dbmtl", J, beta=0.9)
    n = J.norm(dim=1)
    expected = ((n.max() / n)[:, None] * 0.1 * J).sum(0)     # buffer = (1−β) J at step 1
    torch.testing.assert_close(d, expected)


def test_sdmgrad_large_lambda_tends_to_the_mean():
    J = rand_J(3, 6, 2)
    torch.testing.assert_close(W.aggregate("sdmgrad", J, lamda=1e9), J.mean(0), rtol=1e-6, atol=1e-8)


def test_modo_and_moco_weights_stay_on_the_simplex():
    J = rand_J(4, 6, 3)
    for name in ("modo", "moco"):
        w = W.create(name)
        for _ in range(5):
            _, lam = w.direction(J, torch.ones(4, dtype=J.dtype))
            assert (lam >= 0).all() and abs(float(lam.sum()) - 1) < 1e-9


def test_project_simplex():
    v = torch.tensor([0.5, 2.0, -1.0], dtype=torch.float64)
    torch.testing.assert_close(project_simplex(v), torch.tensor([0.0, 1.0, 0.0], dtype=v.dtype))
    u = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    torch.testing.assert_close(project_simplex(u), u)


def test_excessmtl_weights_sum_to_T():
    J = rand_J(3, 6, 2)
    w = W.create("excessmtl", mode="param")
    for k in range(3):                                       # task 2's excess risk grows: it gains weight
        wk = w.weights(J * torch.tensor([1.0, 1.0, 1.0 + 5 * k], dtype=J.dtype)[:, None], torch.ones(3))
    assert abs(float(wk.sum()) - 3) < 1e-9 and wk[2] > wk[0] + 1e-4 and wk[2] > wk[1] + 1e-4


# ----------------------------------------------------------------------------- loss weightings
# weights = the paper's gradient
def _grad_of(scalar_fn, L):
    L = L.clone().requires_grad_()
    (g,) = torch.autograd.grad(scalar_fn(L), L)
    return g


def test_gls_weights_are_the_geometric_mean_gradient():
    L = torch.tensor([0.5, 2.0, 1.5], dtype=torch.float64)
    torch.testing.assert_close(W.create("gls").weights(L), _grad_of(lambda x: x.prod() ** (1 / 3), L))


def test_stch_weights_are_the_smooth_tchebycheff_gradient():
    w = W.create("stch", mu=0.5, warmup_epoch=0)
    nadir = torch.tensor([2.0, 1.0, 4.0], dtype=torch.float64)
    w._nadir_sum, w._nadir_n, w._epoch = nadir * 3, 3, 1
    L = torch.tensor([0.5, 2.0, 1.5], dtype=torch.float64)
    f = lambda x: 3 * 0.5 * torch.logsumexp(x / nadir / 0.5, 0)  # noqa: E731
    torch.testing.assert_close(w.weights(L), _grad_of(f, L))


def test_famo_weights_are_the_log_loss_gradient():
    w = W.create("famo")
    L = torch.tensor([0.5, 2.0, 1.5], dtype=torch.float64)
    w._logits(L)
    with torch.no_grad():
        w._xi.copy_(torch.tensor([0.3, -0.2, 0.1]))
    z = torch.softmax(w._xi.detach(), 0)
    c = (z / (L + w.eps)).sum()
    torch.testing.assert_close(w.weights(L), _grad_of(lambda x: (z / c * torch.log(x + w.eps)).sum(), L))


def test_uw_gradient_on_log_variance():
    w = W.create("uw")
    L = torch.tensor([0.5, 2.0], requires_grad=True)
    from mtl.weighting.base import StepContext
    w.backward(L, StepContext(model=None, batch=(), rep=None, loss_fn=None, next_batch=None))
    s = w.parameters()[0]
    torch.testing.assert_close(s.grad, -0.5 * L.detach() * torch.exp(-s.detach()) + 0.5)
    torch.testing.assert_close(L.grad, 0.5 * torch.exp(-s.detach()))


# ----------------------------------------------------------------------------- bilevel
def test_autolambda_hypergradient_is_exact():
    """Σλ L is linear in λ, so ∂/∂λ_t Σ_s L_s^val(θ − α Σ λ g^train) = −α g_t^train · ∇L^val(θ')."""
    from test_weighting import tiny_bundle, tiny_model

    from mtl.jacobian import flatten, jacobian
    from mtl.tasks import task_losses
    from mtl.weighting.base import StepContext

    data, model = tiny_bundle(), tiny_model()
    tb, vb = next(iter(data.loader("train", 8))), next(iter(data.loader("val", 8)))
    loss_fn = lambda b: task_losses(model, data, model(b[0]), b[1])  # noqa: E731
    alpha, w = 0.05, W.create("autolambda", inner_lr=0.05, weight_init=0.3)
    losses = loss_fn(tb)
    w._ensure(losses)
    got = w.outer_grad(losses, StepContext(model, tb, None, loss_fn, lambda split: vb))

    names, params = zip(*model.named_parameters())
    Jtr = jacobian(loss_fn(tb), params)                                       # [T, P]
    theta = flatten(params).detach() - alpha * 0.3 * Jtr.sum(0)
    sizes = [p.numel() for p in params]
    sub = {n: t.view_as(p).requires_grad_() for n, t, p in zip(names, theta.split(sizes), params)}
    val = torch.func.functional_call(model, sub, (vb[0],))
    v = flatten(torch.autograd.grad(task_losses(model, data, val, vb[1]).sum(), list(sub.values())))
    torch.testing.assert_close(got, -alpha * Jtr @ v, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("seed", range(3))
def test_forum_qp_kkt(seed):
    pytest.importorskip("cvxpy")
    from mtl.weighting.forum import _ForumQP

    Z = rand_J(4, 6, seed).numpy()
    G, phi = Z @ Z.T, 0.3
    x = _ForumQP()(G, phi)
    w, mu = x[:3], x[3]
    g = G @ x
    assert np.all(w >= -1e-9) and abs(w.sum() - 1) < 1e-6 and mu >= -1e-9
    nu = g[:3][w > 1e-6].min()                                  # common value on the support
    assert np.all(g[:3] >= nu - 1e-5) and np.allclose(g[:3][w > 1e-6], nu, atol=1e-5)
    assert g[3] - phi >= -1e-5 and (mu < 1e-6 or abs(g[3] - phi) < 1e-5)


def test_three_batch_products_match_jacobians():
    """MoDo's J₁J₂ᵀλ (backward + forward mode) and SDMGrad's cross-Gramian equal the Jacobian products."""
    from test_weighting import tiny_bundle, tiny_model

    from mtl.jacobian import jacobian
    from mtl.tasks import task_losses
    from mtl.weighting._threebatch import cross_gram, cross_product
    from mtl.weighting.base import StepContext

    data, model = tiny_bundle(), tiny_model()
    b1, b2 = list(data.loader("train", 8))[:2]
    loss_fn = lambda b: task_losses(model, data, model(b[0]), b[1])  # noqa: E731
    shared = model.shared_parameters()
    J1, J2 = jacobian(loss_fn(b1), shared), jacobian(loss_fn(b2), shared)
    lam = torch.tensor([0.2, 0.5, 0.3])

    def ctx(order):
        it = iter(order)
        return StepContext(model, b1, None, loss_fn, lambda split: next(it))

    torch.testing.assert_close(cross_product(ctx([b2, b1]), shared, lam), J1 @ (J2.T @ lam), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(cross_gram(ctx([b1, b2]), shared), J1 @ J2.T, rtol=1e-5, atol=1e-7)


def test_stch_refuses_a_loss_its_logarithm_cannot_take():
    w = W.create("stch")
    with pytest.raises(ValueError, match=r"every loss must be positive.*\{1: 0.0\}"):
        w.weights(torch.tensor([0.5, 0.0]))
    assert torch.allclose(w.weights(torch.tensor([0.5, 2.0])), torch.tensor([2.0, 0.5]))
