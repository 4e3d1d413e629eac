"""Label noise and data subsampling of Guo et al. §V-E (Table V), as wrappers around dense bundles.

* Segmentation noise: per sample, choose ``noise_classes`` (5) of the categories present (all if
  fewer) and flip each of their pixels, with probability ``label_noise`` (0.5 in the paper), to a
  wrong category. The paper says "the wrong category": we draw one wrong category per chosen
  category and sample, uniformly among the others.
* Depth / normal noise: additive Gaussian noise of std ``depth_sigma`` / ``normal_sigma`` on valid
  pixels; noisy normals are renormalised; invalid pixels (0) stay invalid and valid depths are
  clamped to stay valid (> 0).
* Subsampling of train by scene and scan (Replica's organisation; ``scenes`` provides it in
  ``info["meta"]["train"]``): ``scenes`` / ``scans`` given as a fraction (float, e.g. 0.5, 0.25)
  or a count (int, e.g. 12 scans per scene, 1 scene).

* Missing labels (partial labels, issue 19): ``missing={task: fraction}`` removes the labels of that
  fraction of the samples of each listed task (exactly ``round(fraction × n)`` per split, a seeded
  choice): the batch then carries the mask ``targets[mtl.tasks.LABELED]`` and the removed targets
  are overwritten (NaN for float targets, -1 for integer ones), so that nothing can learn from them.

Only targets change, never images. The noise of a sample depends only on ``(seed, split, index
in the uncorrupted split, task)``, so it is the same every epoch and under any subsampling; the
test split is never corrupted.
"""
from __future__ import annotations

import numbers
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset

from ..checks import check_count
from ..tasks import LABELED
from ._registry import DataBundle, MultiInputBundle

NOISY_KINDS = ("segmentation", "depth", "normal")
DEPTH_FLOOR = 1e-6                # a noisy valid depth never becomes 0 (= invalid)


def segmentation_noise(label: torch.Tensor, g: torch.Generator, num_classes: int, rate: float = 0.5,
                       n_classes: int = 5) -> torch.Tensor:
    """[H, W] labels with ``n_classes`` present categories flipped to a wrong category at ``rate`` (Guo et al. §V-E)."""
    present = label[label >= 0].unique()                                           # [P]
    chosen = present[torch.randperm(len(present), generator=g)[:n_classes]]
    out = label.clone()
    for c in chosen.tolist():
        wrong = int(torch.randint(num_classes - 1, (1,), generator=g))
        wrong += wrong >= c                                                         # any class but c
        flip = (label == c) & (torch.rand(label.shape, generator=g) < rate)
        out[flip] = wrong
    return out


def depth_noise(depth: torch.Tensor, g: torch.Generator, sigma: float) -> torch.Tensor:
    """[1, H, W] depth + N(0, σ²) on valid pixels (> 0); invalid pixels stay 0, valid ones stay > 0."""
    valid = depth > 0
    noisy = (depth + sigma * torch.randn(depth.shape, generator=g)).clamp(min=DEPTH_FLOOR)
    return torch.where(valid, noisy, torch.zeros_like(depth))


def normal_noise(normal: torch.Tensor, g: torch.Generator, sigma: float) -> torch.Tensor:
    """[3, H, W] unit normals + N(0, σ²) per component, renormalised; zero (invalid) normals stay zero."""
    valid = normal.abs().sum(0, keepdim=True) > 0                                   # [1, H, W]
    noisy = F.normalize(normal + sigma * torch.randn(normal.shape, generator=g), dim=0)
    return torch.where(valid, noisy, torch.zeros_like(normal))


class NoisyTargets(Dataset):
    """``base`` with ``noise[task](target, generator)`` applied to its targets; images untouched."""

    def __init__(self, base: Dataset, noise: dict, seed: int, split_id: int):
        self.base, self.noise, self.seed, self.split_id = base, noise, seed, split_id

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        x, y = self.base[i]
        y = dict(y)
        for k, (task, fn) in enumerate(self.noise.items()):
            state = np.random.SeedSequence([self.seed, self.split_id, i, k]).generate_state(2)
            g = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
            y[task] = fn(y[task], g)
        return x, y


class MissingLabels(Dataset):
    """``base`` with the labels of some samples removed: ``missing`` maps task -> the sorted indices
    without a label; every sample gets ``y[LABELED] = {task: bool}`` and a removed target is
    overwritten (NaN, or -1 for integer targets)."""

    def __init__(self, base: Dataset, missing: dict):
        self.base, self.missing = base, {t: set(ix) for t, ix in missing.items()}

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        x, y = self.base[i]
        y, mask = dict(y), {}
        for task, gone in self.missing.items():
            mask[task] = torch.tensor(i not in gone)
            if i in gone:
                t = torch.as_tensor(y[task])
                y[task] = torch.full_like(t, float("nan") if t.is_floating_point() else -1)
        y[LABELED] = {**y.get(LABELED, {}), **mask}
        return x, y


def missing_indices(n: int, fraction: float, seed: int, split_id: int, k: int) -> list[int]:
    """The ``round(fraction × n)`` samples (sorted indices) of a split that lose task ``k``'s label."""
    m = int(round(fraction * n))
    return sorted(np.random.default_rng([seed, 2, split_id, k]).permutation(n)[:m].tolist())


def _check_missing(bundle: DataBundle, missing) -> dict:
    if not isinstance(missing, dict):
        raise ValueError(f"missing must map task names to fractions in [0, 1), e.g. {{'depth': 0.5}}; got {missing!r}")
    names = [t.name for t in bundle.tasks]
    unknown = [t for t in missing if t not in names]
    if unknown:
        raise ValueError(f"missing names tasks {unknown} that dataset {bundle.name!r} does not have; tasks: {names}")
    bad = {t: f for t, f in missing.items() if isinstance(f, bool) or not isinstance(f, numbers.Real) or not 0 <= f < 1}
    if bad:
        raise ValueError(f"missing fractions must be numbers in [0, 1) (1 would remove a task), got {bad}")
    return {t: float(f) for t, f in missing.items()}


def _noise_fns(bundle: DataBundle, label_noise: float, noise_classes: int, depth_sigma: float,
               normal_sigma: float) -> dict:
    """{task name: noise function} for the requested corruptions; an error if a requested kind is absent."""
    wanted = {"segmentation": label_noise > 0, "depth": depth_sigma > 0, "normal": normal_sigma > 0}
    by_kind = {t.kind: t for t in bundle.tasks if t.kind in NOISY_KINDS}
    missing = [k for k, on in wanted.items() if on and k not in by_kind]
    if missing:
        raise ValueError(f"noise asked for {missing} but dataset {bundle.name!r} has tasks "
                         f"{[(t.name, t.kind) for t in bundle.tasks]}; corrupt before select()")
    fns = {}
    if wanted["segmentation"]:
        C = by_kind["segmentation"].out_channels
        fns[by_kind["segmentation"].name] = lambda y, g: segmentation_noise(y, g, C, label_noise, noise_classes)
    if wanted["depth"]:
        fns[by_kind["depth"].name] = lambda y, g: depth_noise(y, g, depth_sigma)
    if wanted["normal"]:
        fns[by_kind["normal"].name] = lambda y, g: normal_noise(y, g, normal_sigma)
    return fns


def _count(spec, n: int, name: str) -> int:
    """A fraction (float in (0, 1]) or a count (int in [1, n]) of ``n`` items -> a count ≥ 1."""
    if isinstance(spec, bool) or not isinstance(spec, numbers.Real):
        raise ValueError(f"{name} must be a fraction (float in (0, 1]) or a count (int ≥ 1), got {spec!r}")
    if isinstance(spec, numbers.Integral):
        spec = int(spec)
        if not 1 <= spec <= n:
            raise ValueError(f"{name}={spec} but only {n} are available (a count must be in [1, {n}])")
        return spec
    if not 0 < spec <= 1:
        raise ValueError(f"{name} as a fraction must be in (0, 1], got {spec}")
    return max(1, int(round(spec * n)))


def subsample(rows: list[dict], scenes=None, scans=None, seed: int = 0) -> list[int]:
    """Indices of the kept training samples: ``scenes`` of the scenes, ``scans`` of each kept scene's scans."""
    rng = np.random.default_rng([seed, 1])
    by_scene: dict = {}
    for i, r in enumerate(rows):
        by_scene.setdefault(r["scene"], []).append(i)
    ids = sorted(by_scene)
    if scenes is not None:
        ids = sorted(rng.choice(ids, _count(scenes, len(ids), "scenes"), replace=False).tolist())
    keep = []
    for s in ids:
        idx = by_scene[s]
        if scans is not None:
            idx = rng.choice(idx, _count(scans, len(idx), f"scans (scene {s})"), replace=False).tolist()
        keep += idx
    return sorted(keep)


def corrupt(bundle: DataBundle, *, label_noise: float = 0.0, noise_classes: int = 5, depth_sigma: float = 0.0,
            normal_sigma: float = 0.0, scenes=None, scans=None, seed: int = 0, splits=("train",),
            missing=None) -> DataBundle:
    """A copy of ``bundle`` with noisy targets on ``splits`` and a scene/scan subsample of train (Guo et al. §V-E);
    ``missing`` ({task: fraction}) removes the labels of that fraction of each split's samples (partial labels)."""
    if isinstance(bundle, MultiInputBundle):
        raise ValueError(f"dataset {bundle.name!r} is multi-input (one dataset per task); corrupt() takes a "
                         "single-input bundle")
    if not 0 <= label_noise <= 1:
        raise ValueError(f"label_noise is a flip rate in [0, 1] (0.5 in Guo et al.), got {label_noise}")
    if depth_sigma < 0 or normal_sigma < 0:
        raise ValueError(f"depth_sigma and normal_sigma must be ≥ 0, got {depth_sigma}, {normal_sigma}")
    check_count("noise_classes", noise_classes)
    bad = [s for s in splits if s not in ("train", "val")]
    if bad:
        raise ValueError(f"splits {bad} cannot be corrupted: only 'train' and 'val' (the test split stays clean)")
    fns = _noise_fns(bundle, label_noise, int(noise_classes), depth_sigma, normal_sigma)
    gone = _check_missing(bundle, missing) if missing else {}
    parts = {s: bundle.split(s) for s in ("train", "val")}
    if fns:
        parts = {s: NoisyTargets(d, fns, seed, i) if s in splits else d for i, (s, d) in enumerate(parts.items())}
    if gone:
        order = [t.name for t in bundle.tasks]
        parts = {s: MissingLabels(d, {t: missing_indices(len(d), f, seed, i, order.index(t)) for t, f in gone.items()})
                 if s in splits else d for i, (s, d) in enumerate(parts.items())}
    info = dict(bundle.info)
    if scenes is not None or scans is not None:
        rows = (info.get("meta") or {}).get("train")
        if rows is None or len(rows) != len(bundle.train):
            raise ValueError(f"subsampling by scene/scan needs info['meta']['train'] (one {{'scene', 'scan'}} per "
                             f"training sample, as 'scenes' provides); dataset {bundle.name!r} has none")
        keep = subsample(rows, scenes, scans, seed)
        parts["train"] = Subset(parts["train"], keep)
        info["meta"] = {**info["meta"], "train": [rows[i] for i in keep]}
    info["corruption"] = dict(label_noise=label_noise, noise_classes=noise_classes, depth_sigma=depth_sigma,
                              normal_sigma=normal_sigma, scenes=scenes, scans=scans, seed=seed, splits=list(splits))
    if gone:
        info["corruption"]["missing"] = gone
    return replace(bundle, train=parts["train"], val=parts["val"], info=info)
