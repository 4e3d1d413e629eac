"""``cityscapes``: the preprocessed 128×256 CityScapes of MTAN (Liu et al., CVPR 2019).

Layout ``root/{train,val}/{image,<labels>,depth}/{i}.npy`` (2975 train, 500 val = test). The
segmentation folder is ``label_7/`` or ``label_19/`` (MTAN, CAGrad, Nash-MTL, FAMO) or ``label/``
(LibMTL's renamed ``label_7``); ``label_dir`` chooses, and ``None`` picks the one present (an
error lists them when several are). Labels use -1 = ignore. ``depth`` is H×W×1 **inverse depth
(disparity)**, 0 = invalid (lorenmt/mtan#15), so depth metrics are on disparity as in the
papers. Validation is a seeded hold-out of train, as for :mod:`mtl.data.nyuv2`.
"""
from __future__ import annotations

from .. import tasks as T
from ._registry import DataBundle, register
from .dense import DatasetNotFoundError, DatasetFormatError
from .nyuv2 import dense_bundle, require_root

SOURCE = ("the preprocessed CityScapes of MTAN (https://github.com/lorenmt/mtan, download link in its README; "
          "also used by CAGrad, Nash-MTL, FAMO and LibMTL)")
TASKS = ("segmentation", "depth")
LABEL_DIRS = {"label_7": 7, "label_19": 19, "label": 7}


def find_label_dir(root, label_dir: str | None) -> str:
    """The segmentation folder to read: ``label_dir`` if given, else the only one of :data:`LABEL_DIRS` present."""
    if label_dir is not None:
        if label_dir not in LABEL_DIRS:
            raise ValueError(f"label_dir must be one of {list(LABEL_DIRS)} or None (auto), got {label_dir!r}")
        return label_dir
    train = root / "train"
    if not train.is_dir():
        raise DatasetNotFoundError(f"missing folder {train}; expected {root}/{{train,val}}/"
                                   f"{{image,label_7|label_19|label,depth}}/<i>.npy from {SOURCE}")
    present = [d for d in LABEL_DIRS if (train / d).is_dir()]
    if not present:
        raise DatasetNotFoundError(f"no segmentation folder in {train}: expected one of {list(LABEL_DIRS)} "
                                   f"from {SOURCE}")
    if len(present) > 1:
        raise DatasetFormatError(f"{train} holds several segmentation folders {present}; pass label_dir= one of them")
    return present[0]


@register("cityscapes")
def load_cityscapes(root=None, tasks=TASKS, label_dir: str | None = None, num_classes: int | None = None,
                    val_fraction: float = 0.1, seed: int = 0, preload: bool = True) -> DataBundle:
    """CityScapes segmentation (7 or 19 classes) and disparity from MTAN's ``.npy`` layout under ``root``
    (default ``$MTL_CITYSCAPES``)."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"cityscapes has no task {unknown}; valid tasks: {TASKS}")
    root = require_root(root, "cityscapes", SOURCE)
    folder = find_label_dir(root, label_dir) if "segmentation" in tasks else "label"
    classes = int(num_classes or LABEL_DIRS[folder])
    factories = {"segmentation": lambda: T.segmentation("segmentation", classes), "depth": T.depth}
    folders = {"segmentation": folder, "depth": "depth"}
    kinds = {"segmentation": "label", "depth": "depth"}
    return dense_bundle("cityscapes", root, list(tasks), folders, kinds, factories, SOURCE, classes, val_fraction,
                        seed, preload, {"classes": classes, "label_dir": folder, "depth_kind": "disparity"})
