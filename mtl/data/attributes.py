"""``attributes40``: a generated CelebA stand-in with 40 binary attributes in 8 planted groups.

Each image (``size``×``size`` RGB, default 32) shows one main shape on a background, optional small
dots, decorations and global photometric effects. Eight independent latent blocks drive five
attributes each, so attributes are dependent inside a group and independent across groups:

* ``shape``, ``colour``, ``size``, ``position``, ``count``: a categorical or continuous latent
  (shape class, hue family, radius and elongation, centre, number of dots); the attributes are
  functions of it, some nested (ring ⊂ round, red ⊂ warm, very_large ⊂ large), some exclusive.
* ``background``, ``decoration``, ``photometric``: a Gaussian copula: attribute k is on when
  ρ·z_g + √(1-ρ²)·ε_k exceeds the quantile giving its base rate, so pairs correlate positively.

Base rates run from 7 % to 65 % as CelebA's are imbalanced. The true grouping is
``bundle.info["groups"]`` (lists of task names) and ``task.info["group"]`` (its index); it is the
ground truth for the task-grouping section (EXTRA, Zhou et al. 2025 §5.3, grouping 40 CelebA tasks).
Images are cached as uint8 under ``cache_dir()/attributes40/``; generation is deterministic by
seed and each image depends only on ``(seed, split, index)``, so smaller sets are prefixes.
"""
from __future__ import annotations

import colorsys
import hashlib
import json
from pathlib import Path
from statistics import NormalDist

import numpy as np
import torch
from torch.utils.data import Dataset

from ..checks import check_count
from .. import tasks as T
from ..paths import cache_dir
from ._registry import DataBundle, register
from .cache import cached_entry, load_tensors_checked, save_tensors

GENERATOR_VERSION = 1
GROUPS: dict[str, tuple[str, ...]] = {
    "shape": ("round", "angular", "triangle", "ring", "cross"),
    "colour": ("red", "warm", "green", "blue", "purple"),
    "size": ("small", "large", "very_large", "elongated", "tall"),
    "position": ("left", "right", "top", "bottom", "centred"),
    "count": ("one_dot", "two_plus_dots", "four_plus_dots", "clustered_dots", "white_dots"),
    "background": ("dark_bg", "striped_bg", "gradient_bg", "grainy_bg", "framed"),
    "decoration": ("striped_fill", "outlined", "centre_spot", "shadow", "halo"),
    "photometric": ("blurry", "noisy", "low_contrast", "bright", "tinted"),
}
ATTRIBUTES = tuple(a for names in GROUPS.values() for a in names)
SHAPES = ("disk", "square", "triangle", "ring", "diamond", "cross")
SHAPE_P = (0.30, 0.25, 0.15, 0.12, 0.10, 0.08)
HUES = {"red": 0.0, "orange": 30.0, "yellow": 55.0, "green": 120.0, "blue": 220.0, "purple": 280.0}
HUE_P = (0.28, 0.08, 0.12, 0.22, 0.20, 0.10)
DOTS_P = (0.35, 0.25, 0.15, 0.10, 0.07, 0.05, 0.03)            # P(k dots), k = 0..6
COPULA_RHO = 0.7
COPULA_RATES = {"background": (0.40, 0.25, 0.30, 0.20, 0.15),
                "decoration": (0.20, 0.65, 0.15, 0.25, 0.10),
                "photometric": (0.15, 0.20, 0.15, 0.20, 0.12)}
THRESHOLDS = {g: np.array([NormalDist().inv_cdf(1 - p) for p in r]) for g, r in COPULA_RATES.items()}
SPLIT_ID = {"train": 0, "val": 1, "test": 2}


# ----------------------------------------------------------------------------- latent factors and labels


def sample_factors(rng: np.random.Generator) -> dict:
    """The latent description of one image (independent across groups)."""
    f = {"shape": SHAPES[rng.choice(6, p=SHAPE_P)], "hue": list(HUES)[rng.choice(6, p=HUE_P)],
         "hue_jitter": rng.uniform(-8, 8), "sat": rng.uniform(0.6, 1.0), "val": rng.uniform(0.65, 1.0),
         "u_size": rng.beta(2.0, 2.5), "vertical": bool(rng.random() < 0.5), "angle": rng.uniform(-0.35, 0.35),
         "u_x": rng.beta(1.3, 1.3), "u_y": rng.beta(1.3, 1.3),
         "dots": int(rng.choice(7, p=DOTS_P)), "clustered": bool(rng.random() < 0.4),
         "white": bool(rng.random() < 0.5)}
    f["u_elong"] = float(np.clip(0.5 * f["u_size"] + 0.5 * rng.random(), 0, 1))     # size and elongation correlate
    for g, rates in COPULA_RATES.items():
        z = rng.standard_normal()
        eps = rng.standard_normal(len(rates))
        f[g] = COPULA_RHO * z + np.sqrt(1 - COPULA_RHO**2) * eps > THRESHOLDS[g]
    return f


def labels(f: dict) -> np.ndarray:
    """[40] uint8 attributes of one factor description, in :data:`ATTRIBUTES` order."""
    s, h, k = f["shape"], f["hue"], f["dots"]
    cx, cy = abs(f["u_x"] - 0.5), abs(f["u_y"] - 0.5)
    elongated = f["u_elong"] > 0.62
    out = [s in ("disk", "ring"), s in ("square", "triangle", "diamond"), s == "triangle", s == "ring", s == "cross",
           h == "red", h in ("red", "orange", "yellow"), h == "green", h == "blue", h == "purple",
           f["u_size"] < 0.25, f["u_size"] > 0.6, f["u_size"] > 0.78, elongated, elongated and f["vertical"],
           f["u_x"] < 0.3, f["u_x"] > 0.7, f["u_y"] < 0.3, f["u_y"] > 0.72, cx < 0.15 and cy < 0.15,
           k == 1, k >= 2, k >= 4, k >= 2 and f["clustered"], k >= 1 and f["white"],
           *f["background"], *f["decoration"], *f["photometric"]]
    return np.asarray(out, dtype=np.uint8)


# ----------------------------------------------------------------------------- rendering


def _sdf(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (in units of the radius, < 0 inside) of a unit shape at local coordinates u, v."""
    if shape == "disk":
        return np.hypot(u, v) - 1.0
    if shape == "square":
        return np.maximum(abs(u), abs(v)) - 0.85
    if shape == "diamond":
        return (abs(u) + abs(v)) / np.sqrt(2) - 0.85
    if shape == "ring":
        return abs(np.hypot(u, v) - 0.75) - 0.3
    if shape == "cross":
        return np.minimum(np.maximum(abs(u) - 1.0, abs(v) - 0.35), np.maximum(abs(u) - 0.35, abs(v) - 1.0))
    normals = [(0.0, -1.0), (0.866, 0.5), (-0.866, 0.5)]               # triangle, inradius 0.6
    return np.max([nx * u + ny * v for nx, ny in normals], axis=0) - 0.6


def _background(f: dict, S: int, yy, xx, rng) -> np.ndarray:
    dark, stripes, gradient, grain, frame = f["background"]
    base = rng.uniform(0.05, 0.25) if dark else rng.uniform(0.55, 0.78)
    tint = np.array(colorsys.hsv_to_rgb(rng.random(), 0.15, 1.0))
    img = np.ones((S, S, 1)) * base * tint                              # [S, S, 3]
    if stripes:
        a, period = rng.uniform(0, np.pi), rng.uniform(4, 6) * S / 32
        img = img + 0.12 * np.sign(np.sin(2 * np.pi * (xx * np.cos(a) + yy * np.sin(a)) / period))[..., None]
    if gradient:
        a = rng.uniform(0, 2 * np.pi)
        img = img + 0.25 * ((xx * np.cos(a) + yy * np.sin(a)) / S)[..., None]
    if grain:
        img = img + rng.normal(0, 0.08, (S, S, 1))
    if frame:
        b = max(1, round(2 * S / 32))
        edge = np.zeros((S, S), bool)
        edge[:b], edge[-b:], edge[:, :b], edge[:, -b:] = True, True, True, True
        img[edge] = 0.9 if dark else 0.1
    return img


def _object(f: dict, S: int, yy, xx, img: np.ndarray, rng) -> np.ndarray:
    striped, outlined, spot, shadow, halo = f["decoration"]
    r = S * (0.12 + 0.28 * f["u_size"])
    a = 1.0 + 1.3 * f["u_elong"] if f["u_elong"] > 0.62 else 1.0 + 0.25 * f["u_elong"]
    cx, cy = S * (0.2 + 0.6 * f["u_x"]), S * (0.2 + 0.6 * f["u_y"])
    ca, sa = np.cos(f["angle"]), np.sin(f["angle"])

    def sdf_px(dx: float = 0.0, dy: float = 0.0):
        x, y = xx - cx - dx, yy - cy - dy
        p, q = ca * x + sa * y, -sa * x + ca * y
        if f["vertical"]:
            p, q = q, p
        return _sdf(f["shape"], p / (r * np.sqrt(a)), q / (r / np.sqrt(a))) * r / np.sqrt(a)   # ≈ pixels

    hue = (HUES[f["hue"]] + f["hue_jitter"]) % 360 / 360
    colour = np.array(colorsys.hsv_to_rgb(hue, f["sat"], f["val"]))
    d = sdf_px()
    if shadow:
        off = 2 * S / 32
        img = _blend(img, np.clip(0.5 - sdf_px(off, off), 0, 1), np.zeros(3) + 0.03, 0.7)
    if halo:
        img = _blend(img, np.exp(-np.clip(d, 0, None) / (1.5 * S / 32)) * (d > 0), np.ones(3), 0.6)
    fill = np.ones((S, S, 1)) * colour
    if striped:
        period = 3.5 * S / 32
        fill = fill * (0.45 + 0.55 * (np.sin(2 * np.pi * (xx + yy) / period) > 0))[..., None]
    if spot:
        fill = np.where((np.hypot(xx - cx, yy - cy) < 0.35 * r / np.sqrt(a))[..., None], 1.0, fill)
    img = img * (1 - np.clip(0.5 - d, 0, 1))[..., None] + fill * np.clip(0.5 - d, 0, 1)[..., None]
    if outlined:
        img = _blend(img, np.clip(1.0 - abs(d + 0.6), 0, 1), np.zeros(3) + 0.02, 1.0)
    return img


def _blend(img: np.ndarray, alpha: np.ndarray, colour: np.ndarray, strength: float) -> np.ndarray:
    w = (strength * alpha)[..., None]
    return img * (1 - w) + colour * w


def _dots(f: dict, S: int, yy, xx, img: np.ndarray, rng) -> np.ndarray:
    k = f["dots"]
    if k == 0:
        return img
    rad = 1.4 * S / 32
    if f["clustered"] and k >= 2:
        c = rng.uniform(0.25 * S, 0.75 * S, 2)
        centres = c + rng.normal(0, 0.08 * S, (k, 2))
    else:
        centres = rng.uniform(0.08 * S, 0.92 * S, (k, 2))
    colour = np.ones(3) if f["white"] else np.array([0.0, 0.95, 0.95])
    for cx, cy in centres:
        img = _blend(img, np.clip(rad + 0.5 - np.hypot(xx - cx, yy - cy), 0, 1), colour, 1.0)
    return img


def _photometric(f: dict, img: np.ndarray, rng) -> np.ndarray:
    blurry, noisy, low_contrast, bright, tinted = f["photometric"]
    S = img.shape[0]
    if blurry:
        from scipy.ndimage import gaussian_filter

        img = gaussian_filter(img, sigma=(1.0 * S / 32, 1.0 * S / 32, 0))
    if low_contrast:
        img = 0.5 + 0.4 * (img - img.mean())
    if bright:
        img = np.clip(img, 0, 1) ** 0.55
    if tinted:
        img = img * np.array([0.8, 0.92, 1.2])
    img = img + rng.normal(0, 0.12 if noisy else 0.02, img.shape)
    return np.clip(img, 0, 1)


def render(f: dict, size: int, rng: np.random.Generator) -> np.ndarray:
    """[size, size, 3] uint8 image of one factor description."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    img = _background(f, size, yy, xx, rng)
    img = _object(f, size, yy, xx, img, rng)
    img = _dots(f, size, yy, xx, img, rng)
    return (_photometric(f, img, rng) * 255 + 0.5).astype(np.uint8)


def generate(n: int, size: int, seed: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images [n, 3, size, size] uint8 and labels [n, 40] uint8; image i depends only on (seed, split, i)."""
    images = np.empty((n, 3, size, size), np.uint8)
    ys = np.empty((n, len(ATTRIBUTES)), np.uint8)
    for i in range(n):
        rng = np.random.default_rng([seed, SPLIT_ID[split], i])
        f = sample_factors(rng)
        ys[i] = labels(f)
        images[i] = render(f, size, rng).transpose(2, 0, 1)
    return images, ys


# ----------------------------------------------------------------------------- dataset


def _cached(n: int, size: int, seed: int, split: str, cache) -> tuple[torch.Tensor, torch.Tensor]:
    """The split's images and labels from the cache (verified, built once under a lock; :mod:`mtl.data.cache`)."""
    key = hashlib.sha1(json.dumps([n, size, seed, split, GENERATOR_VERSION]).encode()).hexdigest()[:16]
    path = (Path(cache) if cache else cache_dir() / "attributes40") / f"{split}_{key}.pt"

    def build(tmp):
        images, ys = generate(n, size, seed, split)
        save_tensors({"images": torch.from_numpy(images), "labels": torch.from_numpy(ys)}, tmp)

    def load(p):
        return load_tensors_checked(p, lambda d: {"images": (n, 3, size, size), "labels": (n, len(ATTRIBUTES))})

    d, _ = cached_entry(path, load, build)
    return d["images"], d["labels"]


class AttributeImages(Dataset):
    """A sample is ``(image [3, S, S] float, standardised, {attribute: 0./1.})``."""

    MEAN, STD = 0.5, 0.25

    def __init__(self, images: torch.Tensor, ys: torch.Tensor):
        self.images, self.labels = images, ys.float()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        x = (self.images[i].float() / 255 - self.MEAN) / self.STD
        y = self.labels[i]
        return x, {a: y[k] for k, a in enumerate(ATTRIBUTES)}


@register("attributes40")
def load_attributes40(n_train: int = 10000, n_val: int = 2000, n_test: int = 2000, size: int = 32,
                      seed: int = 0, cache=None) -> DataBundle:
    """40 binary attribute tasks in 8 known groups (see module doc); images ``size``×``size`` RGB."""
    for k, v in dict(n_train=n_train, n_val=n_val, n_test=n_test).items():
        check_count(k, v)
    if size < 16 or size % 8:
        raise ValueError(f"size must be a multiple of 8 and at least 16 (cnn9 pools three times), got {size}")
    splits = {s: AttributeImages(*_cached(int(n), size, seed, s, cache))
              for s, n in (("train", n_train), ("val", n_val), ("test", n_test))}
    group_of = {a: g for g, names in enumerate(GROUPS.values()) for a in names}
    task_list = []
    for a in ATTRIBUTES:
        t = T.binary(a)
        t.info.update(group=group_of[a], group_name=list(GROUPS)[group_of[a]])
        task_list.append(t)
    base_rates = splits["train"].labels.mean(0)
    return DataBundle("attributes40", task_list, splits["train"], splits["val"], splits["test"],
                      info={"groups": [list(v) for v in GROUPS.values()], "group_names": list(GROUPS),
                            "group_of": group_of, "input_shape": (3, size, size),
                            "base_rates": dict(zip(ATTRIBUTES, base_rates.tolist()))})
