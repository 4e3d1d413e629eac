"""``celeba``: CelebA's 40 binary attributes (Liu et al., ICCV 2015) through ``torchvision.datasets.CelebA``.

The data are never downloaded: ``root`` must hold ``celeba/`` with what torchvision reads,
``img_align_celeba/*.jpg``, ``list_attr_celeba.txt``, ``list_eval_partition.txt``,
``identity_CelebA.txt``, ``list_bbox_celeba.txt`` and ``list_landmarks_align_celeba.txt``
(from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html). torchvision's own check compares md5
sums and answers "Dataset not found or corrupted"; we replace it with structural checks that name
the file and the problem (``verify_md5=True`` adds torchvision's md5 check). Images are resized to
``size``×``size`` (64 in FAMO / FairGrad / EXTRA's CelebA runs); the official partition gives
train / val / test (162,770 / 19,867 / 19,962).
"""
from __future__ import annotations

import os
from pathlib import Path

from torch.utils.data import Dataset, Subset

from .. import tasks as T
from ._registry import DataBundle, register
from .dense import DatasetFormatError, DatasetNotFoundError, user_root

SOURCE = "CelebA (https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html, 'Align&Cropped Images' and 'Anno'/'Eval' files)"
FILES = {  # file -> (header lines, tokens per row incl. the image name)
    "list_attr_celeba.txt": (2, 41),
    "list_eval_partition.txt": (0, 2),
    "identity_CelebA.txt": (0, 2),
    "list_bbox_celeba.txt": (2, 5),
    "list_landmarks_align_celeba.txt": (2, 11),
}
SPLITS = {"train": "train", "val": "valid", "test": "test"}
MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def _rows(path: Path, header: int, width: int) -> tuple[list[str], list[list[str]]]:
    """(header lines, rows) of a whitespace-separated CelebA list file; every row has ``width`` tokens."""
    lines = [ln.split() for ln in path.read_text().splitlines()]
    lines = [ln for ln in lines if ln]
    if len(lines) < header:
        raise DatasetFormatError(f"{path}: expected {header} header lines (count, column names), "
                                 f"got {len(lines)} lines")
    head, rows = lines[:header], lines[header:]
    for i, row in enumerate(rows):
        if len(row) != width:
            raise DatasetFormatError(f"{path}, line {i + header + 1}: {len(row)} fields, expected {width} "
                                     f"(image name and {width - 1} values)")
    if header == 2 and (len(head[0]) != 1 or not head[0][0].isdigit() or int(head[0][0]) != len(rows)):
        raise DatasetFormatError(f"{path}: first line {' '.join(head[0])!r} should be the number of rows, {len(rows)}")
    return head[1] if header == 2 else [], rows


def check_root(base: Path) -> list[str]:
    """Check ``base`` (= ``root/celeba``) the way torchvision will read it; returns the 40 attribute names."""
    if not base.is_dir():
        raise DatasetNotFoundError(f"CelebA folder {base} does not exist; expected root/celeba/ with img_align_celeba/ "
                                   f"and {', '.join(FILES)} from {SOURCE} (nothing is downloaded)")
    for name in [*FILES, "img_align_celeba"]:
        if not (base / name).exists():
            raise DatasetNotFoundError(f"missing {base / name}; get it from {SOURCE}")
    parsed = {name: _rows(base / name, *spec) for name, spec in FILES.items()}
    names, attr_rows = parsed["list_attr_celeba.txt"]
    if len(names) != 40:
        raise DatasetFormatError(f"{base / 'list_attr_celeba.txt'}: line 2 names {len(names)} attributes, expected 40")
    bad = next((r for r in attr_rows if set(r[1:]) - {"-1", "1"}), None)
    if bad is not None:
        raise DatasetFormatError(f"{base / 'list_attr_celeba.txt'}: row {bad[0]} has values other than -1/1")
    images = [r[0] for r in attr_rows]
    for name, (_, rows) in parsed.items():
        if [r[0] for r in rows] != images:
            raise DatasetFormatError(f"{base / name}: its image names differ from list_attr_celeba.txt's "
                                     "(same images, same order expected)")
    bad = next((r for r in parsed["list_eval_partition.txt"][1] if r[1] not in ("0", "1", "2")), None)
    if bad is not None:
        raise DatasetFormatError(f"{base / 'list_eval_partition.txt'}: {bad[0]} has partition {bad[1]!r}, "
                                 "expected 0 (train), 1 (val) or 2 (test)")
    missing = sorted(set(images) - set(os.listdir(base / "img_align_celeba")))
    if missing:
        raise DatasetNotFoundError(f"{len(missing)} images listed in list_attr_celeba.txt are missing from "
                                   f"{base / 'img_align_celeba'}, e.g. {missing[0]}")
    return names


def _rgb(img):
    """A PIL image as RGB (a grayscale or CMYK JPEG would otherwise give 1 or 4 channels)."""
    return img if img.mode == "RGB" else img.convert("RGB")


def _torchvision_celeba(verify_md5: bool):
    from torchvision.datasets import CelebA

    class LocalCelebA(CelebA):
        """torchvision's CelebA with the md5 check optional (the structure was checked by :func:`check_root`)."""

        def _check_integrity(self) -> bool:
            return super()._check_integrity() if verify_md5 else True

    return LocalCelebA


class CelebAAttributes(Dataset):
    """A sample is ``(image [3, size, size] normalised, {attribute: 0./1.})``."""

    def __init__(self, base, names: list[str]):
        self.base, self.names = base, names

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        x, attr = self.base[i]
        if x.shape[0] != 3:
            raise DatasetFormatError(f"CelebA image {self.base.filename[i]} has {x.shape[0]} channels, expected RGB")
        return x, {n: attr[k].float() for k, n in enumerate(self.names)}


def _first(ds: Dataset, n: int | None, name: str) -> Dataset:
    if n is None:
        return ds
    if not 1 <= int(n) <= len(ds):
        raise ValueError(f"{name} must be in [1, {len(ds)}] or None for the whole split, got {n}")
    return Subset(ds, range(int(n)))


@register("celeba")
def load_celeba(root=None, size: int = 64, n_train: int | None = None, n_val: int | None = None,
                n_test: int | None = None, verify_md5: bool = False) -> DataBundle:
    """CelebA's 40 attributes as binary tasks from a local ``root`` (holding ``celeba/``; default ``$MTL_CELEBA``)."""
    root = user_root(root, "celeba", SOURCE, folder="<folder holding celeba/>")
    if int(size) < 8:
        raise ValueError(f"size must be at least 8, got {size}")
    from torchvision import transforms

    names = check_root(Path(root) / "celeba")
    tf = transforms.Compose([_rgb, transforms.Resize((size, size)), transforms.ToTensor(),   # grayscale/RGBA JPEGs too
                             transforms.Normalize(MEAN, STD)])
    cls = _torchvision_celeba(verify_md5)
    splits = {s: CelebAAttributes(cls(str(root), split=tv, target_type="attr", transform=tf, download=False), names)
              for s, tv in SPLITS.items()}
    for s, ds in splits.items():
        if len(ds) == 0:
            raise DatasetFormatError(f"list_eval_partition.txt assigns no image to the {s} split")
    base_rates = splits["train"].base.attr.float().mean(0)                         # [40] on the full train split
    splits = {s: _first(ds, n, f"n_{s}") for (s, ds), n in zip(splits.items(), (n_train, n_val, n_test))}
    return DataBundle("celeba", [T.binary(n) for n in names], splits["train"], splits["val"], splits["test"],
                      info={"root": str(root), "input_shape": (3, size, size), "source": SOURCE,
                            "base_rates": dict(zip(names, base_rates.tolist()))})
