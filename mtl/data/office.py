"""``office31`` and ``office_home``: multi-input classification, one task per image domain
(:class:`~mtl.data.MultiInputBundle`), from the user's copy in its standard folder layout.

* Office-31 (Saenko et al., ECCV 2010): ``<root>/{amazon,dslr,webcam}/images/<class>/<file>.jpg``,
  31 classes (the archive ``domain_adaptation_images.tar.gz`` unpacks to this).
* Office-Home (Venkateswara et al., CVPR 2017): ``<root>/{Art,Clipart,Product,Real World}/<class>/<file>.jpg``,
  65 classes (the archive ``OfficeHomeDataset_10072016.zip``).

``root=`` or the environment variable ``$MTL_OFFICE31`` / ``$MTL_OFFICE_HOME`` says where; nothing
is downloaded. The layout is checked before anything is read: a missing root, domain or class
folder, a domain with another number of classes, or class names that differ between domains give
an error naming the path and the expected layout. Every domain must have the same class folders
(their sorted names are the labels 0…C−1). Each domain is split by a seeded permutation into
train / val / test (``val_fraction``, ``test_fraction``: 0.2 / 0.2, the 60/20/20 proportions of
LibMTL's split files, which are not part of the datasets). Images are RGB, resized to
``image_size`` × ``image_size`` and scaled to [0, 1] ([3, S, S] float); an unreadable file is an
error naming it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import tasks as T
from ._registry import MultiInputBundle, register
from .dense import DatasetFormatError, DatasetNotFoundError, user_root

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
OFFICE31 = dict(name="office31", domains=("amazon", "dslr", "webcam"), sub="images", classes=31,
                layout="<root>/{amazon,dslr,webcam}/images/<class>/<file>.jpg",
                source="Office-31 (Saenko et al., ECCV 2010; domain_adaptation_images.tar.gz)")
OFFICE_HOME = dict(name="office_home", domains=("Art", "Clipart", "Product", "Real World"), sub="", classes=65,
                   layout="<root>/{Art,Clipart,Product,Real World}/<class>/<file>.jpg",
                   source="Office-Home (Venkateswara et al., CVPR 2017; OfficeHomeDataset_10072016.zip)")


def task_name(domain: str) -> str:
    """The task of a domain: its folder name in lower case, spaces as underscores ("Real World" -> "real_world")."""
    return domain.lower().replace(" ", "_")


def scan_domain(root: Path, domain: str, spec: dict) -> dict[str, list[Path]]:
    """{class: sorted image files} of one domain, the layout checked (see the module docstring)."""
    folder = root / domain / spec["sub"] if spec["sub"] else root / domain
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{spec['name']}: missing folder {folder}; expected {spec['layout']} "
                                   f"({spec['classes']} classes) from {spec['source']}")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if len(classes) != spec["classes"]:
        raise DatasetFormatError(f"{spec['name']}: {folder} holds {len(classes)} class folders, expected "
                                 f"{spec['classes']} ({spec['layout']})")
    files = {}
    for c in classes:
        found = sorted(p for p in (folder / c).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DatasetNotFoundError(f"{spec['name']}: no image ({'/'.join(IMAGE_SUFFIXES)}) in {folder / c}; "
                                       f"expected {spec['layout']}")
        files[c] = found
    return files


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int, what: str) -> dict[str, list[int]]:
    """Seeded train / val / test index lists of ``n`` samples (val and test at least one each when asked)."""
    for k, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < f < 1:
            raise ValueError(f"{k} must be in (0, 1), got {f}")
    perm = np.random.default_rng(seed).permutation(n).tolist()
    k_val, k_test = max(1, round(val_fraction * n)), max(1, round(test_fraction * n))
    if n - k_val - k_test < 1:
        raise DatasetFormatError(f"{what} has {n} images: too few for a train, val and test split "
                                 f"({val_fraction:g} / {test_fraction:g} held out)")
    return {"val": sorted(perm[:k_val]), "test": sorted(perm[k_val:k_val + k_test]),
            "train": sorted(perm[k_val + k_test:])}


def read_image(path: Path, size: int) -> torch.Tensor:
    """[3, size, size] float in [0, 1] from an image file (RGB, bilinear resize)."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as e:                                      # pillow comes with torchvision
        raise ImportError("reading Office images needs pillow: pip install pillow") from e
    try:
        with Image.open(path) as im:
            im = im.convert("RGB").resize((size, size), Image.BILINEAR)
            a = np.asarray(im, dtype=np.float32) / 255.0                       # [S, S, 3]
    except (UnidentifiedImageError, OSError) as e:
        raise DatasetFormatError(f"{path} is not a readable image ({e})") from e
    return torch.from_numpy(a).permute(2, 0, 1).contiguous()                  # [3, S, S]


class ImageFolderDataset(Dataset):
    """(image [3, S, S], label) for a list of (file, label); ``preload`` reads every image once."""

    def __init__(self, items: list[tuple[Path, int]], image_size: int, preload: bool = False):
        self.items, self.image_size = list(items), int(image_size)
        self._cache = [self._read(i) for i in range(len(self.items))] if preload else None

    def _read(self, i: int):
        path, label = self.items[i]
        return read_image(path, self.image_size), torch.tensor(label)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self._cache[i] if self._cache is not None else self._read(i)


def office_bundle(spec: dict, root, domains, image_size: int, val_fraction: float, test_fraction: float,
                  seed: int, preload: bool) -> MultiInputBundle:
    """The multi-input bundle of ``domains`` of an Office-style dataset under ``root`` (or its variable)."""
    unknown = [d for d in domains if d not in spec["domains"]]
    if unknown or not domains:
        raise ValueError(f"{spec['name']} has no domain {unknown or list(domains)}; "
                         f"valid domains: {list(spec['domains'])}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive int (pixels per side), got {image_size!r}")
    root = user_root(root, spec["name"], f"{spec['source']}, laid out as {spec['layout']}")
    if not root.is_dir():
        raise DatasetNotFoundError(f"{spec['name']} root {root} does not exist; expected {spec['layout']} "
                                   f"from {spec['source']}")
    scans = {d: scan_domain(root, d, spec) for d in domains}
    names = list(scans[domains[0]])
    for d in domains[1:]:
        if list(scans[d]) != names:
            diff = sorted(set(names) ^ set(scans[d]))
            raise DatasetFormatError(f"{spec['name']}: domains {domains[0]!r} and {d!r} have different class "
                                     f"folders (e.g. {diff[:3]}); every domain needs the same {spec['classes']}")
    parts = {s: {} for s in ("train", "val", "test")}
    for k, d in enumerate(domains):
        items = [(f, c) for c, name in enumerate(names) for f in scans[d][name]]
        idx = split_indices(len(items), val_fraction, test_fraction, seed + k, f"{spec['name']} domain {d!r}")
        for s, ix in idx.items():
            parts[s][task_name(d)] = ImageFolderDataset([items[i] for i in ix], image_size, preload)
    tasks = [T.classification(task_name(d), spec["classes"]) for d in domains]
    info = {"root": str(root), "classes": names, "domains": list(domains), "source": spec["source"],
            "input_shape": (3, image_size, image_size), "multi_input": True,
            "sizes": {s: {t: len(ds) for t, ds in p.items()} for s, p in parts.items()},
            "split": f"seeded per-domain permutation (seed {seed}): {val_fraction:g} val, {test_fraction:g} test"}
    return MultiInputBundle(spec["name"], tasks, parts["train"], parts["val"], parts["test"], info=info)


@register("office31")
def load_office31(root=None, domains=OFFICE31["domains"], image_size: int = 224, val_fraction: float = 0.2,
                  test_fraction: float = 0.2, seed: int = 0, preload: bool = False) -> MultiInputBundle:
    """Office-31: 31-class classification in each of the domains amazon, dslr, webcam (one task each),
    from ``root`` (default ``$MTL_OFFICE31``) laid out as ``<root>/<domain>/images/<class>/<file>.jpg``."""
    return office_bundle(OFFICE31, root, tuple(domains), image_size, val_fraction, test_fraction, seed, preload)


@register("office_home")
def load_office_home(root=None, domains=OFFICE_HOME["domains"], image_size: int = 224, val_fraction: float = 0.2,
                     test_fraction: float = 0.2, seed: int = 0, preload: bool = False) -> MultiInputBundle:
    """Office-Home: 65-class classification in each of the domains Art, Clipart, Product, Real World
    (tasks art, clipart, product, real_world), from ``root`` (default ``$MTL_OFFICE_HOME``) laid out as
    ``<root>/<domain>/<class>/<file>.jpg``."""
    return office_bundle(OFFICE_HOME, root, tuple(domains), image_size, val_fraction, test_fraction, seed, preload)
