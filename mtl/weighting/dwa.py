"""Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019)."""
from __future__ import annotations

import torch

from ..checks import check_positive
from ._registry import register
from .base import LossWeighting


@register("dwa", label="DWA", paper="Liu et al. 2019, https://arxiv.org/abs/1803.10704", needs="losses", stateful=True)
class DWA(LossWeighting):
    """DWA, Liu et al. 2019 Eq. 1 (https://arxiv.org/abs/1803.10704).

    w_t(e) = T · softmax_t(r_t(e−1) / temp) with r_t(e−1) = L_t(e−1) / L_t(e−2), from the mean
    training losses of the last two epochs (``end_epoch``); epochs 0 and 1 use w = 1.
    """

    def __init__(self, temp: float = 2.0):
        self.temp = check_positive("temp", temp)
        self.reset()

    def reset(self) -> None:
        self._history: list[torch.Tensor] = []        # mean losses [T] of finished epochs

    def end_epoch(self, epoch: int, mean_losses: torch.Tensor) -> None:
        self._history = (self._history + [mean_losses.detach().double().cpu()])[-2:]

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        if len(self._history) < 2:
            return torch.ones_like(losses)
        prev, prev2 = self._history[-1], self._history[-2]
        r = prev / prev2.clamp_min(1e-12)                                       # [T]
        w = losses.numel() * torch.softmax(r / self.temp, 0)
        return w.to(losses.dtype).to(losses.device)
