"""The preprocessed ``.npy`` layout of MTAN / LibMTL / Nash-MTL, shared by ``scenes`` and ``nyuv2``.

``root/<split>/<field>/<i>.npy`` with ``i = 0..N-1``; ``image`` is H×W×3 in [0, 1], ``label`` H×W
with -1 = ignore, ``depth`` H×W×1 (0 = invalid), ``normal`` H×W×3 unit vectors (0 = invalid),
``edge`` H×W in {0, 1}.
"""
from __future__ import annotations

import os
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


def _load_npy(path: Path) -> np.ndarray:
    """``np.load(path)``; an unreadable file raises ``ValueError`` naming it."""
    try:
        return np.load(path)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path} is not a readable .npy array ({e})") from e


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
        x = to_tensor("image", _load_npy(base / "image" / f"{i}.npy"))
        y = {t: to_tensor(folder, _load_npy(base / folder / f"{i}.npy")) for t, folder in self.fields.items()}
        return x, y

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        return self._cache[k] if self._cache is not None else self._read(self.indices[k])


# ----------------------------------------------------------------------------- checked reading of user data (issue 3)


class DatasetNotFoundError(FileNotFoundError):
    """A user-provided dataset root, folder or file is missing; the message says where the data comes from."""


class DatasetFormatError(ValueError):
    """A user-provided file exists but is not what the layout expects (shape, dtype, range, numbering)."""


def user_root(root, name: str, source: str, env: str | None = None, folder: str = "<folder>") -> Path:
    """Where user-provided dataset ``name`` lives: ``root`` if given, else ``$MTL_<NAME>`` (``env``),
    else :class:`DatasetNotFoundError` naming both ways (nothing is ever downloaded)."""
    env = env or f"MTL_{name.upper()}"
    if root is None:
        root = os.environ.get(env) or None
    if root is None:
        raise DatasetNotFoundError(f"{name} needs its data folder: pass root={folder} or set the environment "
                                   f"variable {env}; get the data from {source} (nothing is downloaded)")
    return Path(root).expanduser()


def check_layout(root: Path, split: str, folders: list[str], source: str) -> int:
    """The number N of samples of ``root/split``: every folder must hold exactly ``0.npy … N-1.npy``."""
    if not root.is_dir():
        raise DatasetNotFoundError(f"dataset root {root} does not exist; expected {root}/<split>/<field>/<i>.npy "
                                   f"from {source}")
    counts = {}
    for folder in folders:
        path = root / split / folder
        if not path.is_dir():
            raise DatasetNotFoundError(f"missing folder {path}; expected "
                                       f"{root}/{split}/{{{','.join(folders)}}}/<i>.npy from {source}")
        names = sorted(p.stem for p in path.glob("*.npy"))
        if not names:
            raise DatasetNotFoundError(f"no .npy files in {path}; expected 0.npy … N-1.npy from {source}")
        bad = [n for n in names if not n.isdigit()]
        if bad:
            raise DatasetFormatError(f"{path} holds files not named <i>.npy: {bad[:3]}; expected 0.npy … N-1.npy")
        idx = {int(n) for n in names}
        gaps = sorted(set(range(len(idx))) - idx)
        if gaps:
            raise DatasetFormatError(f"{path} numbering has gaps: missing {gaps[0]}.npy (found {len(idx)} files, "
                                     f"expected 0.npy … {len(idx) - 1}.npy with no gaps)")
        counts[folder] = len(idx)
    if len(set(counts.values())) > 1:
        raise DatasetFormatError(f"{root / split}: folders hold different numbers of samples {counts}; "
                                 "every field needs one file per image")
    return counts[folders[0]]


def check_array(path: Path, kind: str, a: np.ndarray, num_classes: int | None = None,
                hw: tuple[int, int] | None = None) -> None:
    """Raise :class:`DatasetFormatError` naming ``path`` unless ``a`` is a valid ``kind`` array of the MTAN layout."""
    expect = {"image": "H×W×3 float in [0, 1]",
              "label": f"H×W integral values in [-1, {(num_classes or 0) - 1}]",
              "depth": "H×W×1 (or H×W) float ≥ 0, 0 = invalid",
              "normal": "H×W×3 float in [-1, 1], 0 = invalid"}[kind]

    def fail(what: str):
        raise DatasetFormatError(f"{path}: {what}; expected {kind} as {expect}")

    allowed = {"image": [(3,)], "label": [()], "depth": [(), (1,)], "normal": [(3,)]}[kind]   # trailing dims
    if a.ndim not in (2, 3) or tuple(a.shape[2:]) not in allowed:
        fail(f"shape {a.shape}")
    if hw is not None and tuple(a.shape[:2]) != tuple(hw):
        fail(f"size {a.shape[:2]} differs from the image's {tuple(hw)}")
    if kind == "label":
        if np.issubdtype(a.dtype, np.floating) and not np.array_equal(a, np.round(a)):
            fail("non-integer class values")
        lo, hi = a.min(), a.max()
        if lo < -1 or (num_classes is not None and hi >= num_classes):
            fail(f"class values in [{lo:g}, {hi:g}]")
        return
    if not np.issubdtype(a.dtype, np.floating):
        fail(f"dtype {a.dtype}" + (" (images stored as 0–255? divide by 255)" if kind == "image" else ""))
    if not np.isfinite(a).all():
        fail("non-finite values")
    lo, hi = float(a.min()), float(a.max())
    limits = {"image": (0.0, 1.0), "depth": (0.0, np.inf), "normal": (-1.0, 1.0)}[kind]
    if lo < limits[0] - 1e-3 or hi > limits[1] + 1e-3:
        fail(f"values in [{lo:g}, {hi:g}]")


class CheckedNpyDataset(NpyDenseDataset):
    """:class:`NpyDenseDataset` for user data: checks the layout and every array it reads (see :func:`check_array`).

    ``fields`` maps task -> folder (e.g. ``label_7``), ``kinds`` maps task -> ``label|depth|normal``.
    """

    def __init__(self, root, split: str, fields: dict[str, str], kinds: dict[str, str], source: str,
                 num_classes: int | None = None, preload: bool = True, indices=None):
        self.kinds, self.num_classes, self.source = dict(kinds), num_classes, source
        self._hw = None                                  # (path, H×W) of the first image read
        check_layout(Path(root), split, ["image", *fields.values()], source)
        super().__init__(root, split, fields, preload=preload, indices=indices)

    def _load(self, path: Path, kind: str, hw=None) -> np.ndarray:
        try:
            a = np.load(path)
        except (ValueError, OSError, EOFError) as e:
            raise DatasetFormatError(f"{path} is not a readable .npy array ({e}); "
                                     f"expected files from {self.source}") from e
        check_array(path, kind, a, self.num_classes, hw)
        return a

    def _read(self, i: int):
        base = self.root / self.split
        path = base / "image" / f"{i}.npy"
        img = self._load(path, "image")
        if self._hw is None:
            self._hw = (path, img.shape[:2])
        elif img.shape[:2] != self._hw[1]:             # would fail later in batching, without a name
            raise DatasetFormatError(f"{path}: size {img.shape[:2]} differs from {self._hw[0]}'s {self._hw[1]}; "
                                     "every image of a split must have the same H×W")
        x = to_tensor("image", img)
        y = {t: to_tensor(self.kinds[t], self._load(base / folder / f"{i}.npy", self.kinds[t], img.shape[:2]))
             for t, folder in self.fields.items()}
        return x, y
