"""Oracles for the aggregators TorchJD has beside ours (DualProj, ConFIG, Krum, TrimmedMean, IMTL-G) and
the loss transforms IMTL-L and SI-LS: each checked against the property its paper states and against
reference values computed here in NumPy from the published formula (brute force where one exists)."""
import itertools

import numpy as np
import pytest
import torch
from scipy.stats import trim_mean
from torch import nn

import mtl.weighting as W
from mtl.jacobian import flatten, jacobian
from mtl.models import MultiTaskModel
from mtl.weighting._linalg import dual_cone_weights, project_weights
from mtl.weighting.config import config_weights
from mtl.weighting.imtl_g import imtl_g_weights
from mtl.weighting.imtl_l import scaled_losses


def rand_J(T, d, seed):
    return torch.randn(T, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def cone_projection_brute_force(x: np.ndarray, J: np.ndarray) -> np.ndarray:
    """argmin ‖y − x‖ s.t. Jy ≥ 0 by enumerating active sets S: y = x + J_Sᵀμ with J_S y = 0; the
    optimum is the candidate that satisfies KKT (μ ≥ 0, Jy ≥ 0). Independent of any NNLS solver."""
    T = len(J)
    for k in range(T + 1):
        for S in itertools.combinations(range(T), k):
            JS = J[list(S)]
            mu = -np.linalg.lstsq(JS @ JS.T, JS @ x, rcond=None)[0] if k else np.zeros(0)
            y = x + JS.T @ mu if k else x
            if (mu >= -1e-10).all() and (J @ y >= -1e-10).all():
                return y
    raise AssertionError("no KKT point found")


# ----------------------------------------------------------------------------- DualProj
@pytest.mark.parametrize("seed", range(5))
def test_dualproj_conflicts_with_no_task(seed):
    J = rand_J(6, 4, seed)                                               # 6 tasks in 4 dims: strong conflict
    d = W.aggregate("dualproj", J, reg_eps=0.0)
    assert (J @ d >= -1e-9 * float(J.norm() * d.norm())).all()


@pytest.mark.parametrize("seed", range(5))
def test_dualproj_is_the_projection_of_the_mean(seed):
    J = rand_J(4, 5, seed)
    ref = cone_projection_brute_force(J.mean(0).numpy(), J.numpy())
    np.testing.assert_allclose(W.aggregate("dualproj", J, reg_eps=0.0).numpy(), ref, rtol=1e-7, atol=1e-9)


def test_dualproj_is_the_mean_when_the_mean_conflicts_with_none():
    J = torch.tensor([[1.0, 0.2, 0], [0.5, 1.0, -0.3], [0.0, 0.3, 2.0]], dtype=torch.float64)
    assert (J @ J.mean(0) > 0).all() and (J @ J.T < 0).any()           # rows conflict, the mean does not
    torch.testing.assert_close(W.aggregate("dualproj", J, reg_eps=0.0), J.mean(0))


def test_dualproj_hand_computed_value():
    """J = [[−4, 1, 1], [6, 1, 1]]: the mean (1, 1, 1) conflicts with g₁ only, so the projection is
    ḡ − (g₁·ḡ/‖g₁‖²) g₁ = (1, 1, 1) + g₁/9 = (5/9, 10/9, 10/9); TorchJD's regulariser moves it ≈ 1e-3."""
    J = torch.tensor([[-4.0, 1, 1], [6, 1, 1]], dtype=torch.float64)
    exact = torch.tensor([5 / 9, 10 / 9, 10 / 9], dtype=torch.float64)
    torch.testing.assert_close(W.aggregate("dualproj", J, reg_eps=0.0), exact)
    torch.testing.assert_close(W.aggregate("dualproj", J), exact, rtol=0, atol=2e-3)


@pytest.mark.parametrize("seed", range(3))
def test_project_weights_kkt(seed):
    """v = argmin_{v ≥ u} vᵀGv: feasible, Gv ≥ 0 (the multipliers) and complementary to v − u."""
    J = rand_J(5, 3, seed).numpy()
    G = J @ J.T
    U = np.random.default_rng(seed).uniform(0, 1, size=(2, 5))
    V = project_weights(U, G)
    assert (V - U >= -1e-12).all() and (V @ G >= -1e-9).all()
    np.testing.assert_allclose(((V - U) * (V @ G)).sum(1), 0.0, atol=1e-9)
    np.testing.assert_array_equal(project_weights(np.eye(5), G), dual_cone_weights(G))   # UPGrad's case


# ----------------------------------------------------------------------------- ConFIG
def config_reference(J: np.ndarray) -> np.ndarray:
    """Liu et al. 2024 Eq. 2 as written: u = 𝒰(A⁺1) with A the unit gradients, g = (Σ_t g_tᵀu) u."""
    n = np.linalg.norm(J, axis=1, keepdims=True)
    A = np.where(n > 0, J / np.where(n > 0, n, 1), 0.0)
    x = np.linalg.pinv(A) @ np.ones(len(J))
    if np.linalg.norm(x) == 0:
        return np.zeros(J.shape[1])
    u = x / np.linalg.norm(x)
    return (J @ u).sum() * u


@pytest.mark.parametrize("T,d,seed", [(2, 5, 0), (3, 6, 1), (4, 10, 2), (5, 3, 3), (6, 4, 4)])
def test_config_matches_the_published_formula(T, d, seed):
    J = rand_J(T, d, seed) * torch.logspace(-2, 2, T, dtype=torch.float64)[:, None]
    np.testing.assert_allclose(W.aggregate("config", J).numpy(), config_reference(J.numpy()), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_config_has_equal_cosines_and_the_projection_length(seed):
    J = rand_J(4, 9, seed) * torch.tensor([0.01, 1, 3, 100], dtype=torch.float64)[:, None]   # T ≤ d, full rank
    g = W.aggregate("config", J)
    u = g / g.norm()
    cos = (J @ u) / J.norm(dim=1)
    torch.testing.assert_close(cos, cos.mean().expand(4), rtol=1e-8, atol=1e-10)
    assert float(cos.min()) > 0                                          # conflict-free
    torch.testing.assert_close(g.norm(), (J @ u).sum())                  # length = Σ_t g_tᵀu


def test_config_direction_ignores_gradient_scales():
    J = rand_J(3, 7, 8)
    g1, g2 = W.aggregate("config", J), W.aggregate("config", J * torch.tensor([[5.0], [0.1], [2.0]], dtype=J.dtype))
    torch.testing.assert_close(g1 / g1.norm(), g2 / g2.norm())


def test_config_rank_deficient_cases():
    g = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    J = torch.stack([g, 3 * g, torch.tensor([0.0, 1.0, 1.0], dtype=g.dtype)])        # rank 2, T ≤ d
    np.testing.assert_allclose(W.aggregate("config", J).numpy(), config_reference(J.numpy()), rtol=1e-7)
    assert np.all(config_weights(np.array([[1.0, -1.0], [-1.0, 1.0]])) == 0)          # g and −g: no direction


# ----------------------------------------------------------------------------- Krum
def krum_brute_force(J: np.ndarray, f: int, m: int = 1) -> np.ndarray:
    """Blanchard et al. 2017: s(i) = Σ over the T − f − 2 nearest j ≠ i of ‖g_i − g_j‖²; the mean of the m best."""
    T = len(J)
    scores = []
    for i in range(T):
        dists = sorted(float(np.sum((J[i] - J[j]) ** 2)) for j in range(T) if j != i)
        scores.append(sum(dists[:T - f - 2]))
    best = np.argsort(scores, kind="stable")[:m]
    return J[best].mean(0)


@pytest.mark.parametrize("f,m,seed", [(0, 1, 0), (1, 1, 1), (2, 1, 2), (1, 3, 3), (0, 2, 4)])
def test_krum_matches_brute_force(f, m, seed):
    J = rand_J(7, 5, seed)
    np.testing.assert_allclose(W.aggregate("krum", J, n_byzantine=f, n_selected=m).numpy(),
                               krum_brute_force(J.numpy(), f, m), rtol=1e-10)


def test_krum_ignores_outlying_gradients():
    honest = torch.ones(5, 4, dtype=torch.float64) + 0.01 * rand_J(5, 4, 0)
    J = torch.cat([honest, torch.tensor([[100.0, -50, 0, 0], [-80, 0, 60, 9]], dtype=torch.float64)])
    d = W.aggregate("krum", J, n_byzantine=2)
    assert any(torch.equal(d, h) for h in honest)


def test_krum_ties_are_averaged_and_bad_hyperparameters_refused():
    J = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)   # T = 2: both scores equal
    torch.testing.assert_close(W.aggregate("krum", J), J.mean(0))
    with pytest.raises(ValueError, match="n_byzantine"):
        W.create("krum", n_byzantine=-1)
    with pytest.raises(ValueError, match="n_selected"):
        W.create("krum", n_selected=0)


# ----------------------------------------------------------------------------- trimmed mean
@pytest.mark.parametrize("T,k", [(3, 1), (5, 1), (7, 2), (6, 0), (9, 3)])
def test_trimmed_mean_matches_scipy(T, k):
    J = rand_J(T, 11, T + k)
    ref = trim_mean(J.numpy(), (k + 0.5) / T, axis=0)                 # scipy cuts int(prop·T) = k per end
    np.testing.assert_allclose(W.aggregate("trimmedmean", J, trim_number=k).numpy(), ref, rtol=1e-12)


def test_trimmed_mean_resists_an_outlier_and_caps_at_the_median():
    J = rand_J(5, 6, 1)
    bad = J.clone()
    bad[2] = 1e6
    d, d_bad = W.aggregate("trimmedmean", J, trim_number=1), W.aggregate("trimmedmean", bad, trim_number=1)
    assert float((d - d_bad).abs().max()) < float((J.max(0).values - J.min(0).values).max())
    J4 = rand_J(4, 6, 2)
    np.testing.assert_allclose(W.aggregate("trimmedmean", J4, trim_number=5).numpy(), np.median(J4.numpy(), 0))
    with pytest.raises(ValueError, match="trim_number"):
        W.create("trimmedmean", trim_number=-1)


# ----------------------------------------------------------------------------- IMTL-G, IMTL-L
@pytest.mark.parametrize("seed", range(3))
def test_imtl_g_equal_projections_and_the_gram_formula(seed):
    """Equal projections on the unit gradients; weights as TorchJD's published α = G⁺n / 1ᵀG⁺n."""
    J = rand_J(4, 10, seed) * torch.tensor([0.1, 1, 2, 10], dtype=torch.float64)[:, None]
    d = W.aggregate("imtl_g", J)
    proj = (J / J.norm(dim=1, keepdim=True)) @ d
    torch.testing.assert_close(proj, proj.mean().expand(4), rtol=1e-8, atol=1e-10)
    G = (J @ J.T).numpy()
    v = np.linalg.pinv(G) @ np.sqrt(np.diag(G))
    np.testing.assert_allclose(imtl_g_weights(G), v / v.sum(), rtol=1e-7)
    torch.testing.assert_close(W.aggregate("imtl", J), d)             # the hybrid from fresh scales (s = 0)


def test_imtl_l_backward_is_the_gradient_of_its_transform():
    theta = torch.tensor([0.7, -1.2], dtype=torch.float64, requires_grad=True)
    w = W.create("imtl_l")

    def losses():
        return torch.stack([(theta ** 2).sum() + 0.5, (theta[0] - 2) ** 2 + 0.1])   # [T = 2]

    w.weights(losses().detach())                                       # materialises s = 0
    with torch.no_grad():
        w._s.copy_(torch.tensor([0.3, -0.8], dtype=torch.float64))
    L = losses()
    gs = [torch.autograd.grad(L[t], theta, retain_graph=True)[0] for t in range(2)]
    w.backward(L, ctx=None)
    s = w._s.detach()
    torch.testing.assert_close(theta.grad, torch.exp(s[0]) * gs[0] + torch.exp(s[1]) * gs[1])
    torch.testing.assert_close(w._s.grad, torch.exp(s) * L.detach() - 1)           # ∂/∂s (e^s L − s)
    torch.testing.assert_close(scaled_losses(s, L.detach()), torch.exp(s) * L.detach() - s)


def test_imtl_l_scales_drive_every_scaled_loss_to_one():
    L = torch.tensor([0.02, 1.0, 40.0], dtype=torch.float64)
    w = W.create("imtl_l")
    w.weights(L)                                                       # sizes s
    opt = torch.optim.LBFGS(w.parameters(), max_iter=200, tolerance_grad=1e-12, tolerance_change=0.0,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = scaled_losses(w._s, L).sum()
        loss.backward()
        return loss
    opt.step(closure)
    torch.testing.assert_close(torch.exp(w._s.detach()) * L, torch.ones(3, dtype=L.dtype), rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- SI-LS
def test_si_ls_is_the_gradient_of_the_sum_of_log_losses():
    theta = torch.tensor([0.4, -0.3, 1.1], dtype=torch.float64, requires_grad=True)
    A = rand_J(3, 3, 7)
    L = torch.exp(A @ theta) + torch.tensor([0.1, 2.0, 30.0], dtype=torch.float64)   # positive, unequal scales
    J = torch.stack([torch.autograd.grad(L[t], theta, retain_graph=True)[0] for t in range(3)])
    expected = torch.autograd.grad(torch.log(L).sum(), theta)[0]
    torch.testing.assert_close(W.aggregate("si_ls", J, losses=L.detach()), expected)


def test_si_ls_is_invariant_to_loss_scales_and_refuses_non_positive_losses():
    J, L = rand_J(3, 5, 2), torch.tensor([0.5, 2.0, 4.0], dtype=torch.float64)
    c = torch.tensor([10.0, 0.01, 3.0], dtype=torch.float64)
    torch.testing.assert_close(W.aggregate("si_ls", J * c[:, None], losses=L * c), W.aggregate("si_ls", J, losses=L))
    with pytest.raises(ValueError, match=r"si_ls takes log L_t.*\{1: 0.0\}"):
        W.create("si_ls").weights(torch.tensor([0.5, 0.0]))
    assert W.info("SI-LS").name == "si_ls"


# ----------------------------------------------------------------------------- the engine's route
@pytest.mark.parametrize("name", ["dualproj", "config", "krum", "trimmedmean", "imtl_g"])
def test_param_mode_step_writes_the_direction_of_j(name):
    """Whatever ``needs`` declares (Gramian without J, or J), one "param" step writes aggregate(J) into
    the shared gradients (float64, so the Gramian route is exact to round-off)."""
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 4)).double()
    model = MultiTaskModel(enc, {f"t{i}": nn.Linear(4, 1).double() for i in range(4)})
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    preds = model.decode(model.encode(x)).values()
    losses = torch.stack([(p.squeeze(1) - i).pow(2).mean() for i, p in enumerate(preds)])   # [T]
    J = jacobian(losses, list(model.shared_parameters()), retain_graph=True)            # [T, d]
    w = W.create(name, mode="param")
    w.backward(losses, W.StepContext(model=model, batch=(), rep=None, loss_fn=None, next_batch=None))
    got = flatten([p.grad for p in model.shared_parameters()])
    torch.testing.assert_close(got, w.aggregate(J.detach(), losses.detach()), rtol=1e-7, atol=1e-10)
