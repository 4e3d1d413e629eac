"""ConFIG: conflict-free training (Liu, Chu & Thuerey, arXiv 2024 / ICLR 2025)."""
from __future__ import annotations

import numpy as np
import torch

from ._registry import register
from ._linalg import norms_from_gram
from .gradient import GradientWeighting


def config_weights(G: np.ndarray) -> np.ndarray:
    """w [T] with d = wᵀJ = (Σ_t g_tᵀu) u, u = 𝒰(A⁺1), A = [𝒰(g_1); ...; 𝒰(g_T)] the unit gradients.

    From G alone: A⁺ = Aᵀ(AAᵀ)⁺ and AAᵀ = C, the cosine matrix, so A⁺1 = Jᵀ D⁻¹ c with c = C⁺1 and
    D = diag ‖g_t‖; then ‖A⁺1‖² = cᵀCc and Σ_t g_tᵀ(A⁺1) = nᵀCc, hence w = D⁻¹c · nᵀCc / cᵀCc. C⁺
    drops eigenvalues below T·eps₃₂·λ_max (the noise floor of a Gram computed in float32, as
    Aligned-MTL's rank); zero rows count as zero unit vectors (TorchJD's ``nan_to_num``); w = 0 when
    A⁺1 = 0 (e.g. g and −g).
    """
    n = norms_from_gram(G)                                                   # [T]
    inv = np.where(n > 0, 1.0 / np.where(n > 0, n, 1.0), 0.0)
    C = G * np.outer(inv, inv)                                               # [T, T] cosines
    lam, V = np.linalg.eigh((C + C.T) / 2)
    keep = lam > max(lam.max(initial=0.0), 0.0) * len(G) * np.finfo(np.float32).eps
    c = V[:, keep] @ ((V[:, keep].T @ np.ones(len(G))) / lam[keep])          # C⁺1 [T]
    Cc = C @ c
    q = float(c @ Cc)                                                         # ‖A⁺1‖²
    if not q > 0:
        return np.zeros(len(G))
    return inv * c * float(n @ Cc) / q


@register("config", label="ConFIG", paper="Liu et al. 2024, https://arxiv.org/abs/2408.11104", needs="gramian",
          modes=("param", "rep"))
class ConFIG(GradientWeighting):
    """ConFIG, Liu et al. 2024 Eq. 2 (https://arxiv.org/abs/2408.11104), as the official code and TorchJD.

    The update is g = (Σ_t g_tᵀu) u with u = 𝒰(A⁺1_T), A the matrix of unit task gradients 𝒰(g_t) =
    g_t/‖g_t‖ and A⁺ its pseudo-inverse: a direction with the same cosine to every task gradient
    (when T ≤ d and J has full rank), of length the sum of the gradients' projections onto it
    (the paper's projection length). Exactly a function of G = JJᵀ (:func:`config_weights`), so the
    engine never forms J in "param" mode. Equal task weights (the paper's default); the momentum
    variant M-ConFIG is not included. Sum scale.
    """

    def gram_weights(self, G: np.ndarray, losses: torch.Tensor) -> np.ndarray:
        return config_weights(G)
