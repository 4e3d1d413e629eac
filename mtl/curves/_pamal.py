"""PaMaL's training step and evaluation grid (Dimitriadis et al., ICML 2023; METHODS §2).

Each step draws W points α⁽¹…W⁾ ~ Dir(p·1_T), runs the simplex model at each on the same batch,
sums the losses Σ_t α_t L_t(θ(α)) over the window and optionally adds the ordering regulariser;
one backward pass then updates all T members.
"""
from __future__ import annotations

import itertools

import torch

from ..checks import check_count
from ..tasks import task_losses
from ..train import StepInfo, check_finite


def simplex_grid(n_tasks: int, n: int = 11) -> torch.Tensor:
    """PaMaL's evaluation points [P, T] (code ``validate_models``): n evenly spaced α for T = 2,
    the triangular mesh with n − 1 subdivisions for T = 3, the T vertices and the centroid above."""
    if n_tasks < 2:
        raise ValueError(f"a simplex needs at least 2 tasks, got {n_tasks}")
    if n < 2:
        raise ValueError(f"the grid needs n >= 2 points per edge, got {n}")
    if n_tasks == 2:
        s = torch.linspace(0, 1, n, dtype=torch.float64)
        return torch.stack([1 - s, s], 1)
    if n_tasks == 3:
        k = n - 1
        pts = [(i / k, j / k, (k - i - j) / k) for i in range(k + 1) for j in range(k + 1 - i)]
        return torch.tensor(pts, dtype=torch.float64).clamp(min=0)
    eye = torch.eye(n_tasks, dtype=torch.float64)
    return torch.cat([eye, torch.full((1, n_tasks), 1.0 / n_tasks, dtype=torch.float64)])


def ordering_penalty(alphas: torch.Tensor, losses: torch.Tensor, temperature: float = 1.0,
                     pairs: str = "all", code_sign: bool = False) -> torch.Tensor:
    """PaMaL's ordering regulariser R = Σ_t log mean_{(i,j): α_t⁽ⁱ⁾ > α_t⁽ʲ⁾} exp(τ [L_t⁽ⁱ⁾ − L_t⁽ʲ⁾]_+).

    ``alphas``, ``losses`` [W, T]. A sample with a larger α_t should have a smaller L_t (the stated
    intent); ``code_sign=True`` penalises the reverse, as the released code does (METHODS §2.3).
    ``pairs="all"`` uses every ordered pair, ``"chain"`` only neighbours after sorting by α_t (code).
    """
    if pairs not in ("all", "chain"):
        raise ValueError(f"pairs must be 'all' or 'chain', got {pairs!r}")
    W, T = losses.shape
    total = losses.new_zeros(())
    for t in range(T):
        order = torch.argsort(alphas[:, t], descending=True).tolist()        # high α_t first
        cand = zip(order, order[1:]) if pairs == "chain" else itertools.combinations(order, 2)
        hi_lo = [(i, j) for i, j in cand if alphas[i, t] > alphas[j, t]]
        if not hi_lo:
            continue
        hi, lo = (torch.tensor(v, device=losses.device) for v in zip(*hi_lo))
        diff = losses[hi, t] - losses[lo, t]                                 # [pairs]
        pen = torch.relu(-diff if code_sign else diff)
        total = total + torch.log(torch.exp(temperature * pen).mean())
    return total


class PamalStep:
    """PaMaL's step: W forward passes at α ~ Dir(p·1), loss Σ_w Σ_t α_t L_t + λ·R (METHODS §2.4).

    :param window: W, forward passes per step (MultiMNIST config: 4).
    :param concentration: p of the Dirichlet (MultiMNIST: 1).
    :param reg: λ of the ordering regulariser (MultiMNIST: 0).
    :param temperature: τ inside the regulariser (code: 1).
    :param pairs: "all" ordered pairs (stated intent) or "chain" (code).
    :param code_sign: use the code's (inverted-looking) sign of the regulariser.
    :param conditional: add λR only when λR < the window loss, as the code does (default: always add).

    Only the "ls" inner method is implemented; the weighting passed to ``fit`` is not used.
    """

    def __init__(self, window: int = 4, concentration: float = 1.0, reg: float = 0.0, temperature: float = 1.0,
                 pairs: str = "all", code_sign: bool = False, conditional: bool = False):
        check_count("window", window)
        if not concentration > 0:
            raise ValueError(f"concentration must be positive, got {concentration}")
        if not reg >= 0:
            raise ValueError(f"reg must be non-negative, got {reg}")
        if pairs not in ("all", "chain"):
            raise ValueError(f"pairs must be 'all' or 'chain', got {pairs!r}")
        self.window, self.concentration = int(window), float(concentration)
        self.reg, self.temperature = float(reg), float(temperature)
        self.pairs, self.code_sign, self.conditional = pairs, bool(code_sign), bool(conditional)

    def sample(self, n_tasks: int) -> torch.Tensor:
        """α [W, T] ~ Dir(p·1_T), one row per forward pass."""
        conc = torch.full((n_tasks,), self.concentration, dtype=torch.float64)
        return torch.distributions.Dirichlet(conc).sample((self.window,))

    def step(self, model, data, batch, weighting, optimizer, info: StepInfo) -> dict:
        x, y = batch
        alphas = self.sample(len(model.tasks))                              # [W, T]
        rows = []
        for a in alphas:
            with model.at(a):
                rows.append(task_losses(model, data, model(x), y))           # [T]
        L = torch.stack(rows)                                               # [W, T]
        for row in L:
            check_finite(row, model.tasks, info.epoch, info.step)
        a = alphas.to(L)
        total = (a * L).sum()                                               # Σ_w Σ_t α_t L_t
        reg = L.new_zeros(())
        if self.reg > 0 and self.window > 1:
            reg = self.reg * ordering_penalty(a, L, self.temperature, self.pairs, self.code_sign)
            if not self.conditional or reg < total:
                total = total + reg
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        return {"losses": L.detach().mean(0), "weights": alphas.mean(0).float(),
                "total": total.detach(), "reg": reg.detach()}

    def __repr__(self) -> str:
        return (f"PamalStep(window={self.window}, concentration={self.concentration}, reg={self.reg}, "
                f"temperature={self.temperature}, pairs={self.pairs!r}, code_sign={self.code_sign}, "
                f"conditional={self.conditional})")
