"""Nash-MTL: multi-task learning as a bargaining game (Navon et al., ICML 2022)."""
from __future__ import annotations

import numpy as np
import torch

from ..checks import check_count, check_positive
from ._registry import register
from ._linalg import norms_from_gram, psd_root, require
from .gradient import GradientWeighting

RIDGE = 1e-8      # on the cosine matrix: keeps the problem bounded when gradients cancel exactly
CLARABEL_TOL = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10, "tol_ktratio": 1e-8}


def active_rows(G: np.ndarray) -> np.ndarray:
    """Tasks whose gradient is not numerically zero (a zero row has no Nash/FairGrad solution; it gets w = 0)."""
    n = norms_from_gram(G)
    return n > 1e-12 * max(n.max(initial=0.0), 1e-300)


def clip_weights(w: np.ndarray, G: np.ndarray, max_norm: float | None) -> np.ndarray:
    """Scale w so that ‖wᵀJ‖ ≤ max_norm (``clip_grad_norm_`` on the shared gradient); None: no clip."""
    if not max_norm:
        return w
    norm = np.sqrt(max(w @ G @ w, 0.0))
    return w * (max_norm / norm) if norm > max_norm else w


def newton_polish(C: np.ndarray, beta: np.ndarray, steps: int = 3) -> np.ndarray:
    """A few Newton steps on ½βᵀCβ − Σ log β from the conic solution (Hessian C + diag(1/β²) ≻ 0),
    bringing Cβ = 1/β to machine precision; step-halving keeps β > 0."""
    for _ in range(steps):
        step = np.linalg.solve(C + np.diag(1.0 / beta**2), C @ beta - 1.0 / beta)
        t = 1.0
        while np.any(beta - t * step <= 0) and t > 1e-8:
            t /= 2
        beta = beta - t * step
    return beta


class NashSolver:
    """Solves GᵀGα = 1/α (our G = JJᵀ) for α > 0 with cvxpy.

    With α = β / ‖g‖ the system becomes Cβ = 1/β for the cosine matrix C, the stationarity
    condition of the strictly convex ½βᵀCβ − Σ log β, solved exactly as one exponential-cone
    programme (Clarabel, shipped with cvxpy), polished by :func:`newton_polish`. This is the fixed point
    the paper's sequence of convex surrogates (Navon et al. §3.1) approaches, reached without its
    20-iteration cap.
    """

    def __init__(self, solver: str = "CLARABEL"):
        self.cp = require("cvxpy", "nashmtl")
        if solver not in self.cp.installed_solvers():
            raise ImportError(f"nashmtl: cvxpy solver {solver!r} is not installed; installed: "
                              f"{self.cp.installed_solvers()} (pip install cvxpy brings CLARABEL)")
        self.solver, self._problems = solver, {}

    def __deepcopy__(self, memo) -> "NashSolver":
        """The compiled problems are a cache, not state (no warm start): copies share them."""
        return self

    def _problem(self, T: int):
        if T not in self._problems:
            cp = self.cp
            beta, A = cp.Variable(T, pos=True), cp.Parameter((T, T))
            prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(A @ beta) - cp.sum(cp.log(beta))))
            self._problems[T] = (prob, beta, A)
        return self._problems[T]

    def __call__(self, G: np.ndarray) -> np.ndarray | None:
        """α [T] (zeros for zero rows), or None when the solver fails."""
        keep = active_rows(G)
        alpha = np.zeros(len(G))
        if not keep.any():
            return alpha
        n = norms_from_gram(G)[keep]
        C = G[np.ix_(keep, keep)] / np.outer(n, n)
        prob, beta, A = self._problem(int(keep.sum()))
        A.value = psd_root(C + RIDGE * np.eye(len(C)))
        try:
            prob.solve(solver=self.solver, **(CLARABEL_TOL if self.solver == "CLARABEL" else {}))
        except self.cp.error.SolverError:
            return None
        if beta.value is None or prob.status not in ("optimal", "optimal_inaccurate"):
            return None
        Cr = C + RIDGE * np.eye(len(C))
        alpha[keep] = newton_polish(Cr, np.clip(np.asarray(beta.value), 1e-12, None)) / n
        return alpha


@register("nashmtl", label="NashMTL", aliases=("Nash-MTL",), paper="Navon et al. 2022, https://arxiv.org/abs/2202.01017",
          needs="gramian", modes=("param", "rep"), stateful=True)
class NashMTL(GradientWeighting):
    """Nash-MTL, Navon et al. 2022 Eq. 2 / Alg. 1 (https://arxiv.org/abs/2202.01017).

    The bargaining solution α > 0 of GᵀGα = 1/α (:class:`NashSolver`, cvxpy) recomputed every
    ``update_weights_every`` steps (reused in between); the direction Σ_t α_t g_t is clipped to norm
    ``max_norm`` (1.0, LibMTL's NYUv2 benchmark Table 1; None: no clip). If the solver fails the previous α is kept
    as in the official code, and ``solver_failures`` counts it (never a silent equal weighting:
    a missing cvxpy raises at construction).
    """

    def __init__(self, update_weights_every: int = 1, max_norm: float | None = 1.0, solver: str = "CLARABEL",
                 mode: str | None = None, chunk_size: int | None = None):
        super().__init__(mode, chunk_size)
        self.update_weights_every = check_count("update_weights_every", update_weights_every)
        self.max_norm = None if max_norm is None else check_positive("max_norm", max_norm, allow_zero=True)
        self.solver = solver
        self._solve = NashSolver(solver)
        self.reset()

    def reset(self) -> None:
        self._alpha, self._step, self._failures = None, 0, 0

    @property
    def solver_failures(self) -> int:
        """How many solves failed since ``reset`` (the previous α was kept each time)."""
        return self._failures

    def gram_weights(self, G: np.ndarray, losses: torch.Tensor) -> np.ndarray:
        if self._alpha is None or len(self._alpha) != len(G) or self._step % self.update_weights_every == 0:
            alpha = self._solve(G)
            if alpha is None:
                self._failures += 1
                alpha = self._alpha if self._alpha is not None else 1.0 / np.maximum(norms_from_gram(G), 1e-300)
            self._alpha = alpha
        self._step += 1
        return clip_weights(self._alpha, G, self.max_norm)
