"""The preprocessed ``.npy`` layout of MTAN / LibMTL / Nash-MTL, shared by ``scenes`` and ``nyuv2``.

``root/<split>/<field>/<i>.npy`` with ``i = 0..N-1``; ``image`` is H×W×3 in [0, 1], ``label`` H×W
with -1 = ignore, ``depth`` H×W×1 (0 = invalid), ``normal`` H×W×3 unit vectors (0 = invalid),
``edge`` H×W in {0, 1}.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

# task kind -> folder name in the layout
FIELDS = {"segmentation": "label", "depth": "depth", "normal": "normal", "edge": "edge"}


def count_files(folder: Path) -> int:
    if not folder.is_dir():
        raise FileNotFoundError(f"missing folder {folder} (expected <root>/<split>/<field>/<i>.npy)")
    n = len(list(folder.glob("*.npy")))
    if n == 0:
        raise FileNotFoundError(f"no .npy files in {folder}")
    return n


def to_tensor(field: str, a: np.ndarray) -> torch.Tensor:
    """One stored array -> the tensor a model sees (channels first)."""
    if field == "image":
        return torch.from_numpy(np.moveaxis(a, -1, 0).astype(np.float32))      # [3, H, W]
    if field == "label":
        return torch.from_numpy(a.astype(np.int64))                           # [H, W]
    if field == "edge":
        return torch.from_numpy(a.astype(np.float32))[None]                   # [1, H, W]
    a = a[..., None] if a.ndim == 2 else a
    return torch.from_numpy(np.moveaxis(a, -1, 0).astype(np.float32))          # [C, H, W]


class NpyDenseDataset(Dataset):
    """Reads ``root/split/{image,<task fields>}/{i}.npy``; ``preload`` keeps every sample in memory."""

    def __init__(self, root: str | Path, split: str, fields: dict[str, str], preload: bool = True,
                 indices=None):
        self.root, self.split, self.fields = Path(root), split, dict(fields)  # task name -> folder
        n = count_files(self.root / split / "image")
        for folder in self.fields.values():
            m = count_files(self.root / split / folder)
            if m != n:
                raise ValueError(f"{self.root / split / folder} has {m} files but image/ has {n}")
        self.indices = list(range(n)) if indices is None else list(indices)
        self._cache = [self._read(i) for i in self.indices] if preload else None

    def _read(self, i: int):
        base = self.root / self.split
        x = to_tensor("image", np.load(base / "image" / f"{i}.npy"))
        y = {t: to_tensor(folder, np.load(base / folder / f"{i}.npy")) for t, folder in self.fields.items()}
        return x, y

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        return self._cache[k] if self._cache is not None else self._read(self.indices[k])
