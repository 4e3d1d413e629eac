"""Krum: Byzantine-tolerant aggregation (Blanchard, El Mhamdi, Guerraoui & Stainer, NeurIPS 2017)."""
from __future__ import annotations

import numpy as np
import torch

from ..checks import check_count
from ._registry import register
from .gradient import GradientWeighting

PAPER = ("Blanchard et al. 2017, "
         "https://proceedings.neurips.cc/paper/2017/hash/f4b9ec30ad9f68f89b29639786cb62ef-Abstract.html")


def krum_scores(G: np.ndarray, n_byzantine: int) -> np.ndarray:
    """s [T]: s(i) = Σ_{i→j} ‖g_i − g_j‖² over the k = T − f − 2 tasks j ≠ i closest to g_i (Blanchard
    et al. 2017 §4), squared distances from G (‖g_i − g_j‖² = G_ii + G_jj − 2G_ij). Below the paper's
    range T ≥ f + 3 each score uses the single nearest neighbour (k = 1; no neighbour when T = 1)."""
    T = len(G)
    diag = np.diag(G)
    D2 = np.clip(diag[:, None] + diag[None, :] - 2 * G, 0.0, None)           # [T, T]
    np.fill_diagonal(D2, np.inf)
    k = min(max(T - n_byzantine - 2, 1), T - 1)
    return np.sort(D2, axis=1)[:, :k].sum(1)                                 # [T]


@register("krum", label="Krum", paper=PAPER, needs="gramian", modes=("param", "rep"))
class Krum(GradientWeighting):
    """Krum, Blanchard et al. 2017 §4 (https://proceedings.neurips.cc/paper/2017/hash/f4b9ec30ad9f68f89b29639786cb62ef-Abstract.html).

    Each task gradient is scored by the sum of squared distances to its T − f − 2 nearest other
    gradients (:func:`krum_scores`, f = ``n_byzantine``); the update is the gradient with the smallest
    score, or with ``n_selected`` = m > 1 the mean of the m best-scored (Multi-Krum, the paper's
    experimental variant). Ties at the m-th score are all kept, so equal scores are treated alike.
    A function of G = JJᵀ only. Unlike TorchJD's ``Krum``, which sums the distances themselves, the
    score sums squared distances as in the paper, and fewer than f + 3 tasks are accepted (see
    :func:`krum_scores`). Mean scale.
    """

    def __init__(self, n_byzantine: int = 0, n_selected: int = 1, mode: str | None = None,
                 chunk_size: int | None = None):
        super().__init__(mode, chunk_size)
        self.n_byzantine = check_count("n_byzantine", n_byzantine, 0)
        self.n_selected = check_count("n_selected", n_selected)

    def gram_weights(self, G: np.ndarray, losses: torch.Tensor) -> np.ndarray:
        s = krum_scores(G, self.n_byzantine)                                  # [T]
        cut = np.sort(s)[min(self.n_selected, len(s)) - 1]
        chosen = s <= cut + 1e-12 * max(abs(cut), np.abs(s).max(initial=0.0), 1e-300)
        return chosen / chosen.sum()
