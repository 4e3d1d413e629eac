"""Task grouping from warm-up gradients (seed 000 §5.3, App. B.2)."""
import numpy as np
import pytest
import torch

from mtl import grouping as G
from mtl.models import create_model
from mtl.tasks import task_losses


def planted(seed=0, sizes=(5, 3, 4), d=30, noise=0.15):
    """Gradients of tasks in planted groups: three directions, groups 0 and 1 conflicting."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(3, d))
    base[1] = -base[0] + 0.3 * rng.normal(size=d)                   # group 1 opposes group 0
    rows, truth = [], []
    for g, n in enumerate(sizes):
        for _ in range(n):
            rows.append(base[g] * rng.uniform(0.5, 3.0)
                        + noise * np.linalg.norm(base[g]) * rng.normal(size=d) / np.sqrt(d))
            truth.append(g)
    perm = rng.permutation(len(rows))
    return np.array(rows)[perm], np.array(truth)[perm]


def as_partition(groups):
    return sorted(tuple(sorted(g)) for g in groups)


def test_cosine_matrix_and_affinities():
    M, _ = planted()
    A = G.cosine_matrix(M)
    assert np.allclose(A, A.T) and np.allclose(np.diag(A), 1) and (A < 0).any()
    for how in G.AFFINITIES:
        W = G.affinity(A, how)
        assert (W >= 0).all() and np.allclose(W, W.T)
    assert np.allclose(G.affinity(A, "shift"), (A + 1) / 2)
    with pytest.raises(ValueError, match="affinity"):
        G.affinity(A, "abs")


@pytest.mark.parametrize("how", G.AFFINITIES)
def test_spectral_recovers_planted_groups(how):
    M, truth = planted()
    groups = G.cluster_tasks(M, 3, "spectral", how=how)
    expected = [np.flatnonzero(truth == g).tolist() for g in range(3)]
    assert as_partition(groups) == as_partition(expected)


def test_every_method_returns_a_partition():
    M, _ = planted(seed=1)
    for method in G.METHODS:
        groups = G.cluster_tasks(M, 3, method, seed=2)
        assert sorted(i for g in groups for i in g) == list(range(len(M))), method
        assert all(g == sorted(g) for g in groups)
    sizes = sorted(len(g) for g in G.cluster_tasks(np.ones((40, 5)), 3, "random"))
    assert sizes == [13, 13, 14]                                     # a uniform division
    assert G.cluster_tasks(M, 3, "random", seed=0) != G.cluster_tasks(M, 3, "random", seed=1)


def test_roles_put_the_conflicting_pair_at_the_ends():
    M, truth = planted()
    groups = [np.flatnonzero(truth == g).tolist() for g in (2, 0, 1)]
    e1, e2, e3 = G.assign_roles(groups, M)
    assert {tuple(e1), tuple(e2)} == {tuple(groups[1]), tuple(groups[2])} and e3 == groups[0]


def test_bad_inputs_are_named():
    M, _ = planted()
    with pytest.raises(ValueError, match="method"):
        G.cluster_tasks(M, 3, "dbscan")
    with pytest.raises(ValueError, match="k must"):
        G.cluster_tasks(M, 13, "spectral")
    with pytest.raises(ValueError, match=r"\[T, d\]"):
        G.cluster_tasks(M[0], 2)


def test_task_gradients_match_per_task_autograd(tiny_mnist):
    torch.manual_seed(0)
    model = create_model("hps", "lenet", tiny_mnist.tasks)
    M = G.task_gradients(model, tiny_mnist, batches=1, batch_size=16, seed=3)
    x, y = next(iter(tiny_mnist.loader("train", 16, shuffle=True, seed=3)))
    losses = task_losses(model, tiny_mnist, model(x), y)
    shared = model.shared_parameters()
    rows = [torch.cat([g.reshape(-1) for g in torch.autograd.grad(L, shared, retain_graph=True)]) for L in losses]
    torch.testing.assert_close(M, torch.stack(rows), atol=1e-5, rtol=1e-4)
