"""Small numerical pieces the gradient weightings share: Gram matrices, simplex projection, the
exact MGDA min-norm solver and the dual-cone projection of task weights (both through
``scipy.optimize.nnls``), lazily sized task parameters and the optional-dependency guard.

Solvers work in float64 NumPy on the T×T Gram matrix G = J Jᵀ, never on J itself, so their cost
does not depend on the number of parameters d.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import nnls
from torch.nn.parameter import UninitializedParameter


EPS = 1e-12


def gram(J: torch.Tensor) -> np.ndarray:
    """G = J Jᵀ as float64 NumPy [T, T] (the matmul runs in J's dtype and device)."""
    G = (J @ J.T).double().cpu().numpy()
    return (G + G.T) / 2


def norms_from_gram(G: np.ndarray) -> np.ndarray:
    """Row norms ‖g_t‖ [T] from the Gram diagonal."""
    return np.sqrt(np.clip(np.diag(G), 0.0, None))


def psd_root(G: np.ndarray) -> np.ndarray:
    """A [T, T] with AᵀA = G for a PSD G (A = Λ^{1/2} Vᵀ; negative round-off eigenvalues clipped)."""
    lam, V = np.linalg.eigh((G + G.T) / 2)
    return np.sqrt(np.clip(lam, 0.0, None))[:, None] * V.T


def normalized(G: np.ndarray) -> tuple[np.ndarray, float]:
    """G / s with s = mean diagonal (weights of scale-free solvers do not change); s=0 for G = 0."""
    s = float(np.trace(G)) / len(G)
    return (G / s, s) if s > 0 and np.isfinite(s) else (np.zeros_like(G), 0.0)


def min_norm_weights(G: np.ndarray) -> np.ndarray:
    """argmin_{w ∈ simplex} wᵀ G w, exactly (MGDA's min-norm point, Sener & Koltun 2018 Eq. 3).

    Solved as Lawson & Hanson's least-distance programme (Solving Least Squares Problems, ch. 23):
    NNLS of [A; 1ᵀ] u ≈ e_{T+1} with AᵀA = G gives w = u / Σu (also when 0 is in the hull).
    """
    T = len(G)
    Gn, s = normalized(G)
    if s == 0.0:
        return np.full(T, 1.0 / T)
    E = np.vstack([psd_root(Gn), np.ones((1, T))])                 # [T+1, T]
    f = np.zeros(T + 1)
    f[-1] = 1.0
    u, _ = nnls(E, f, maxiter=50 * T)
    return u / u.sum() if u.sum() > 0 else np.full(T, 1.0 / T)


def project_weights(U: np.ndarray, G: np.ndarray, reg: float = 0.0) -> np.ndarray:
    """V [k, T]: row i is v_i = argmin_{v ≥ u_i} vᵀ G v for the rows u_i of U [k, T], so that Jᵀ v_i is
    the projection of Jᵀ u_i onto the dual cone {x : Jx ≥ 0} (Quinton & Rey 2024 Prop. 1).

    With v = u_i + x, x ≥ 0, it is the NNLS min ‖A x + A u_i‖ for AᵀA = G + reg·I, solved by
    ``scipy.optimize.nnls`` one row at a time (UPGrad projects every g_i, DualProj the mean).
    """
    T = len(G)
    A = psd_root(G + reg * np.eye(T))                                 # [T, T]
    V = np.array(U, dtype=np.float64, copy=True).reshape(-1, T)       # [k, T]
    for i in range(len(V)):                                           # a loop over k ≤ T, not T²
        x, _ = nnls(A, -(A @ V[i]), maxiter=50 * T)
        V[i] += x
    return V


def dual_cone_weights(G: np.ndarray, reg: float = 0.0) -> np.ndarray:
    """V [T, T]: row i is v_i = argmin_{v ≥ e_i} vᵀ G v, so Jᵀ v_i projects g_i onto {x : Jx ≥ 0}
    (UPGrad's dual problem, Quinton & Rey 2024 Prop. 1; :func:`project_weights` of the identity)."""
    return project_weights(np.eye(len(G)), G, reg)


def project_simplex(v: torch.Tensor) -> torch.Tensor:
    """Euclidean projection of v [T] onto the probability simplex (Duchi et al. 2008, Fig. 1)."""
    v = torch.nan_to_num(v, nan=0.0, posinf=1e30, neginf=-1e30)
    u, _ = torch.sort(v, descending=True)
    css = torch.cumsum(u, 0) - 1                                     # [T]
    k = torch.arange(1, v.numel() + 1, dtype=v.dtype, device=v.device)
    rho = int(torch.nonzero(u - css / k > 0).max())
    return torch.clamp(v - css[rho] / (rho + 1), min=0)


def lazy_parameter() -> UninitializedParameter:
    """A parameter whose size (T) is set on the first step, so it can join the optimizer before."""
    return UninitializedParameter()


class LogScales:
    """Mixin: learnable per-task log-scales ``_s`` [T], sized on the first step and filled with ``init``,
    trained with the model (UW's log-variances, IMTL-L's scales)."""

    init: float = 0.0

    def reset(self) -> None:
        self._s = lazy_parameter()                     # [T], sized on the first step

    def parameters(self) -> list[torch.Tensor]:
        return [self._s]

    def log_scales(self, losses: torch.Tensor) -> torch.nn.Parameter:
        return materialize(self._s, losses.numel(), losses, self.init)   # [T]


def materialize(p: torch.nn.Parameter, T: int, like: torch.Tensor, value: float) -> torch.nn.Parameter:
    """Give a lazy parameter T entries filled with ``value`` on ``like``'s device (no-op once sized)."""
    if isinstance(p, UninitializedParameter):
        p.materialize((T,), device=like.device, dtype=like.dtype)
        with torch.no_grad():
            p.fill_(value)
    elif p.numel() != T:
        raise ValueError(f"this weighting was set up for {p.numel()} tasks but got {T}; call reset()")
    return p


def require(module: str, method: str, extra: str = "solvers"):
    """Import an optional dependency or raise an ImportError that says how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{method} needs the optional dependency {module!r}: "
                          f"pip install 'mtl-imbalance[{extra}]' (or pip install {module})") from e


