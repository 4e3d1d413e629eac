"""``nyuv2``: the preprocessed NYUv2 of MTAN (Liu et al., CVPR 2019), as used by LibMTL and Nash-MTL.

Layout ``root/{train,val}/{image,label,depth,normal}/{i}.npy`` (795 train, 654 val images of
288×384): image H×W×3 in [0, 1], label H×W with 13 classes and -1 = ignore, depth H×W×1 in metres
(0 = invalid), normal H×W×3 unit vectors (0 = invalid). Every array is checked on load.

The layout's ``val`` folder is the **test** set (MTAN, LibMTL, Nash-MTL all report on it). Our
validation split is a seeded hold-out of ``val_fraction`` of the training images (default 10 %,
the role of LibMTL's former ``data_split.json``); ``val_fraction=0`` gives LibMTL's current
protocol, where model selection looks at the test set, and says so in ``info["val_protocol"]``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import tasks as T
from ._registry import DataBundle, register
from .dense import CheckedNpyDataset, DatasetNotFoundError, check_layout, user_root

SOURCE = ("the preprocessed NYUv2 of MTAN (https://github.com/lorenmt/mtan, download link in its README; "
          "also LibMTL's and Nash-MTL's NYUv2)")
TASKS = ("segmentation", "depth", "normal")
NUM_CLASSES = 13
FOLDERS = {"segmentation": "label", "depth": "depth", "normal": "normal"}
KINDS = {"segmentation": "label", "depth": "depth", "normal": "normal"}


def holdout(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded (train, val) index lists of ``n`` training images; ``val_fraction`` in [0, 1)."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    k = max(1, int(round(val_fraction * n))) if val_fraction > 0 else 0
    if k >= n:
        raise ValueError(f"val_fraction={val_fraction} of {n} training images leaves an empty train or val split")
    return sorted(perm[k:].tolist()), sorted(perm[:k].tolist())


def require_root(root, name: str, source: str) -> Path:
    """``root``, else ``$MTL_<NAME>`` (:func:`mtl.data.dense.user_root`), which must be a folder."""
    root = user_root(root, name, source)
    if not root.is_dir():
        raise DatasetNotFoundError(f"{name} root {root} does not exist; expected <root>/{{train,val}}/<field>/<i>.npy "
                                   f"from {source}")
    return root


def dense_bundle(name: str, root: Path, tasks, folders: dict, kinds: dict, task_factories: dict, source: str,
                 num_classes: int, val_fraction: float, seed: int, preload: bool, info: dict) -> DataBundle:
    """Train/val (hold-out from train) and test (the layout's ``val``) of a checked ``.npy`` dataset."""
    fields = {t: folders[t] for t in tasks}
    kw = dict(fields=fields, kinds={t: kinds[t] for t in tasks}, source=source, num_classes=num_classes,
              preload=preload)
    tr, va = holdout(check_layout(root, "train", ["image", *fields.values()], source), val_fraction, seed)
    test = CheckedNpyDataset(root, "val", **kw)
    train = CheckedNpyDataset(root, "train", **kw, indices=tr)
    if val_fraction == 0:
        val, protocol = test, "val = test (LibMTL protocol: model selection sees the test set)"
    else:
        val = CheckedNpyDataset(root, "train", **kw, indices=va)
        protocol = f"val = seeded {val_fraction:g} hold-out of train (seed {seed}); test = the layout's val/"
    x, _ = train[0]
    return DataBundle(name, [task_factories[t]() for t in tasks], train, val, test,
                      info={"root": str(root), "val_protocol": protocol, "input_shape": tuple(x.shape),
                            "source": source, **info})


@register("nyuv2")
def load_nyuv2(root=None, tasks=TASKS, val_fraction: float = 0.1, seed: int = 0, preload: bool = True) -> DataBundle:
    """NYUv2 (13-class segmentation, depth, normals) from MTAN's ``.npy`` layout under ``root``
    (default ``$MTL_NYUV2``)."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"nyuv2 has no task {unknown}; valid tasks: {TASKS}")
    factories = {"segmentation": lambda: T.segmentation("segmentation", NUM_CLASSES), "depth": T.depth,
                 "normal": T.normal}
    return dense_bundle("nyuv2", require_root(root, "nyuv2", SOURCE), list(tasks), FOLDERS, KINDS, factories,
                        SOURCE, NUM_CLASSES, val_fraction, seed, preload, {"classes": NUM_CLASSES})
