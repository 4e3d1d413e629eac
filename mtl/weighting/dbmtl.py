"""DB-MTL: dual-balancing multi-task learning (Lin et al., 2023)."""
from __future__ import annotations

import torch

from ..checks import check_positive
from ._registry import register
from .base import StepContext
from .gradient import GradientWeighting


@register("dbmtl", label="DB-MTL", paper="Lin et al. 2023, https://arxiv.org/abs/2308.12029", needs="factored",
          modes=("param",), stateful=True)
class DBMTL(GradientWeighting):
    """DB-MTL, Lin et al. 2023 Alg. 1 (https://arxiv.org/abs/2308.12029), LibMTL defaults.

    Loss-scale balancing: gradients of log(L_t + 1e-8) (heads too). Gradient-magnitude balancing:
    an EMA ĝ_t ← g_t + (β / k^σ)(ĝ_t − g_t) (state, starts at 0), and d = Σ_t (max_s‖ĝ_s‖ / ‖ĝ_t‖) ĝ_t:
    every task's tracked gradient rescaled to the largest norm. Parameter mode only. The EMA is
    updated in place from the layer factors of J (``FactoredJacobian.accumulate_into``), never from a formed J.
    """

    def __init__(self, beta: float = 0.9, beta_sigma: float = 0.0, mode: str | None = None,
                 chunk_size: int | None = None):
        super().__init__(mode, chunk_size)
        self.beta = check_positive("beta", beta, allow_zero=True)
        self.beta_sigma = check_positive("beta_sigma", beta_sigma, allow_zero=True)
        self.reset()

    def reset(self) -> None:
        self._buf, self._k = None, 0

    def transform(self, losses: torch.Tensor) -> torch.Tensor:
        return torch.log(losses + 1e-8)

    def track(self, jac, losses: torch.Tensor, ctx: StepContext | None = None):
        if self._buf is None or self._buf.shape != (jac.T, jac.d):
            self._buf = torch.zeros(jac.T, jac.d, dtype=jac.dtype, device=jac.device)   # [T, d]
        self._k += 1
        c = self.beta / self._k**self.beta_sigma
        jac.accumulate_into(self._buf, beta=c, scale=1 - c)                    # ĝ = c ĝ + (1−c) g, in place
        n = self._buf.norm(dim=1)                                             # [T]
        a = n.max() / n.clamp_min(1e-8 * n.max()) if n.max() > 0 else torch.ones_like(n)
        return a @ self._buf, a

    def _aggregate(self, J, losses):
        """From a fresh state J is taken as the gradients of log L (LibMTL's first step: ĝ = (1−β) J)."""
        self.reset()
        return super()._aggregate(J, losses)
