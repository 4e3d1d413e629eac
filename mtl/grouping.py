"""Task grouping from warm-up gradients: random, k-means and spectral clustering (Zhou et al. 2025 §5.3, App. B.2).

EXTRA groups many tasks (CelebA's 40) into 3 clusters: E1 and E2 sit at the ends of the curve,
E3 is aligned at its midpoint. ``cluster_tasks(G, k, method)`` takes the [T, d] matrix of
warm-up task gradients (``task_gradients``) and returns k groups of task indices;
``assign_roles`` orders them as (E1, E2, E3, ...).
"""
from __future__ import annotations

import numpy as np
import torch

from .checks import check_count
from .jacobian import jacobian
from .tasks import task_losses
from .train import to_device

METHODS = ("spectral", "kmeans", "random")
AFFINITIES = ("shift", "clip")


def _as_matrix(G) -> np.ndarray:
    G = np.asarray(G.detach().cpu() if isinstance(G, torch.Tensor) else G, dtype=np.float64)
    if G.ndim != 2 or G.shape[0] < 1 or G.shape[1] < 1:
        raise ValueError(f"G must be a [T, d] matrix of task gradients, got shape {G.shape}")
    if not np.isfinite(G).all():
        raise ValueError("G holds non-finite values")
    return G


def task_gradients(model, data, batches: int = 4, batch_size: int = 64, split: str = "train",
                   seed: int = 0) -> torch.Tensor:
    """G [T, d]: per-task gradients w.r.t. ``model.shared_parameters()``, averaged over ``batches`` batches.

    Uses :func:`mtl.jacobian.jacobian` (one batched backward per batch). Train the model for a few
    warm-up epochs first (Zhou et al. 2025 §5.3 leaves their number open).
    """
    device = next(model.parameters()).device
    total, n = None, 0
    for k, (x, y) in enumerate(data.loader(split, batch_size, shuffle=True, seed=seed)):
        if k >= batches:
            break
        x, y = to_device(x, device), to_device(y, device)
        z = model.encode(x)                                                  # heads crossed once from z
        J = jacobian(task_losses(model, data, model.decode(z), y), model.shared_parameters(), rep=z).detach()   # [T, d]
        total, n = (J if total is None else total + J), n + 1
    if n == 0:
        raise ValueError(f"split {split!r} gave no batch")
    return total / n


def cosine_matrix(G) -> np.ndarray:
    """A [T, T] with A_ij = cos(g_i, g_j) (a zero gradient has cosine 0 with everything but itself)."""
    G = _as_matrix(G)
    norms = np.linalg.norm(G, axis=1, keepdims=True)
    U = G / np.where(norms > 0, norms, 1.0)
    A = U @ U.T
    np.fill_diagonal(A, 1.0)
    return np.clip(A, -1.0, 1.0)


def affinity(A: np.ndarray, how: str = "shift") -> np.ndarray:
    """A non-negative affinity from cosines, which spectral clustering needs (Zhou et al. 2025 leaves this open).

    ``"shift"``: (A + 1)/2, a monotone map onto [0, 1] that keeps every pair's order and the graph
    connected (conflicting pairs get weight below ½); ``"clip"``: max(A, 0), conflicting pairs
    get no edge (the graph may fall apart).
    """
    if how not in AFFINITIES:
        raise ValueError(f"affinity must be one of {AFFINITIES}, got {how!r}")
    return (A + 1.0) / 2.0 if how == "shift" else np.maximum(A, 0.0)


def _labels_to_groups(labels: np.ndarray) -> list[list[int]]:
    groups: dict[int, list[int]] = {}
    for i, lab in enumerate(labels):
        groups.setdefault(int(lab), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def cluster_tasks(G, k: int, method: str = "spectral", seed: int = 0, how: str = "shift") -> list[list[int]]:
    """k groups of task indices (sorted by their first task) from warm-up gradients G [T, d].

    ``spectral``: scikit-learn's SpectralClustering (normalised-Laplacian embedding, then k-means;
    Ng–Jordan–Weiss style) on ``affinity(cosine_matrix(G), how)`` (EXTRA's grouping);
    ``kmeans``: k-means on the gradient vectors (App. B.2's baseline, which gave singleton
    clusters); ``random``: a uniform random division into k near-equal groups (App. B.2's "Random").
    """
    G = _as_matrix(G)
    T = G.shape[0]
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    check_count("k", k, 1, T)
    if method == "random":
        perm = np.random.default_rng(seed).permutation(T)
        return sorted((sorted(int(i) for i in part) for part in np.array_split(perm, k)), key=lambda g: g[0])
    try:
        from sklearn.cluster import KMeans, SpectralClustering
    except ImportError as e:  # pragma: no cover - a base dependency
        raise ImportError("task grouping needs scikit-learn: pip install scikit-learn") from e
    if method == "kmeans":
        labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(G)
    else:
        W = affinity(cosine_matrix(G), how)
        labels = SpectralClustering(n_clusters=k, affinity="precomputed", random_state=seed,
                                    assign_labels="kmeans").fit_predict(W)
    return _labels_to_groups(labels)


def assign_roles(groups: list[list[int]], G) -> list[list[int]]:
    """Order groups as (E1, E2, E3, …): E1, E2 are the pair whose mean gradients have the lowest
    cosine (the curve trades them off), the rest follow in their given order.

    Zhou et al. 2025 does not say which cluster becomes E3; this rule is our choice (METHODS §1.6).
    """
    G = _as_matrix(G)
    if len(groups) < 2:
        raise ValueError(f"need at least two groups, got {len(groups)}")
    means = np.stack([G[g].mean(0) for g in groups])            # [k, d]
    A = cosine_matrix(means)
    np.fill_diagonal(A, np.inf)
    i, j = np.unravel_index(np.argmin(A), A.shape)
    i, j = sorted((int(i), int(j)))
    return [groups[i], groups[j]] + [g for n, g in enumerate(groups) if n not in (i, j)]
