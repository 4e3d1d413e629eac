"""A tiny in-memory regression problem shared by the engine-level tests (mixed precision, data parallelism)."""
import torch
from torch.utils.data import Dataset

from mtl import tasks as TK
from mtl.data import DataBundle


class DictSamples(Dataset):
    """Samples ``(x[i], {task: y[i]})``."""

    def __init__(self, x, ys):
        self.x, self.ys = x, ys

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], {t: y[i] for t, y in self.ys.items()}


def regression_bundle(name: str, n: int = 32, T: int = 3, dtype=torch.float32, gain: float = 1.0) -> DataBundle:
    """``T`` regression tasks ``t0..`` on [2, 4, 4] inputs (targets ``gain`` × tanh of a random linear map);
    splits of n/2, n/4, n/4 samples."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, 4, 4, generator=g, dtype=dtype)
    y = gain * torch.tanh(x.flatten(1) @ torch.randn(32, T, generator=g, dtype=dtype))
    names = [f"t{i}" for i in range(T)]
    cut = [0, n // 2, 3 * n // 4, n]
    parts = [DictSamples(x[a:b], {t: y[a:b, i] for i, t in enumerate(names)}) for a, b in zip(cut, cut[1:])]
    return DataBundle(name, [TK.regression(t) for t in names], *parts)
