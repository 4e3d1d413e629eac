"""Peak training memory of PaMaL and EXTRA's two stages as the number of tasks grows (seed 000 App. B.3, Fig. 2).

For T ∈ {2, 3, 10, 40} (``--tasks``) a small conv encoder (``encoder``) with T binary linear heads is trained
on random images for ``--steps`` steps (the second step already holds Adam's state) under
``mtl.memory.PeakMemory``: CUDA peak allocated on a GPU, tracked live-tensor bytes on the CPU.
Everything (networks, gradients, optimiser state, activations) is built inside the meter.

* EXTRA-1: one end-point network trained by LS (stage 1 trains the two end points in turn).
* EXTRA-2: the NURBS curve (``--points``: 3 for every T, or ``protocol``: 4 / 5 / 3 as seed 000
  App. A.2) with frozen end points, two forward passes per step (t₁, t₂), R_o and R_align.
* PaMaL: T members, ``--window`` forward passes per step.

The encoder is parameter-heavy for its activations (16×16 images, an FC layer), like the
networks of seed 000's memory figure, where stored weights rather than activations dominate.

A configuration predicted above ``--limit-gb`` (or a CUDA OOM) is not run: its value is a linear
fit over the measured T and marked "(est.)", as seed 000 did for PaMaL on CelebA.

    python benchmarks/curve_memory.py [--device cpu] [--tasks 2,3,10,40]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

import mtl.curves as C
from mtl import tasks as TK
from mtl import weighting as W
from mtl.data import DataBundle
from mtl.memory import PeakMemory
from mtl.models.base import MultiTaskModel
from mtl.train import PlainStep, StepInfo, resolve_device

MiB = 2 ** 20
FEATURES = 256


class RandomImages(Dataset):
    """n random images [3, s, s] with T random binary labels."""

    def __init__(self, n: int, tasks: list[str], size: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 3, size, size, generator=g)
        self.y = torch.randint(0, 2, (n, len(tasks)), generator=g).float()
        self.tasks = tasks

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], {t: self.y[i, k] for k, t in enumerate(self.tasks)}


def encoder(width: int, size: int) -> nn.Module:
    """conv-BN-ReLU-pool ×3 (width, 2·width, 4·width) and FC → 256: [B, 3, s, s] -> [B, 256]."""
    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.MaxPool2d(2))
    side = size // 8
    return nn.Sequential(block(3, width), block(width, 2 * width), block(2 * width, 4 * width),
                         nn.Flatten(), nn.Linear(4 * width * side * side, FEATURES), nn.ReLU())


class ManyHeads(MultiTaskModel):
    """T linear heads stored as one Linear(F, T): the parameters of T Linear(F, 1) in 2 tensors, not 2T.

    Memory is the same as separate heads; the point is speed, since PaMaL holds T members each with
    T heads (T² tensors) and the CPU meter inspects every tensor operation.
    """

    def __init__(self, enc: nn.Module, tasks: list[str]):
        super().__init__(enc, {})
        self._tasks = list(tasks)
        self.head = nn.Linear(FEATURES, len(tasks))

    @property
    def tasks(self) -> list[str]:
        return self._tasks

    def decode(self, z):
        out = self.head(z)                                  # [B, T]
        return {t: out[:, k] for k, t in enumerate(self._tasks)}

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return list(self.head.parameters())


def make_model(tasks: list[str], width: int, size: int) -> MultiTaskModel:
    return ManyHeads(encoder(width, size), tasks)


def bundle(T: int, batch: int, size: int) -> DataBundle:
    names = [f"attr{k:02d}" for k in range(T)]
    ds = RandomImages(batch, names, size)
    return DataBundle("random", [TK.binary(n) for n in names], ds, ds, ds)


def three_groups(tasks: list[str]) -> list[list[str]] | None:
    """EXTRA's default groups up to 3 tasks; above, a round-robin split into 3 clusters."""
    return None if len(tasks) <= 3 else [tasks[k::3] for k in range(3)]


def run_steps(build, rule, data, steps: int, device) -> int:
    """Peak bytes of building ``build()`` and taking ``steps`` steps of ``rule`` on one batch."""
    x, y = next(iter(data.loader("train", len(data.train))))
    x, y = x.to(device), {k: v.to(device) for k, v in y.items()}
    weighting = W.create("ls")
    with PeakMemory(device) as meter:
        model = build().to(device).train()
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        for s in range(steps):
            rule.step(model, data, (x, y), weighting, opt, StepInfo(step=s))
        del model, opt
    return meter.peak_bytes


def builders(T: int, args) -> dict:
    tasks = [f"attr{k:02d}" for k in range(T)]
    n_points = C.default_control_points("cityscapes" if T == 2 else "nyuv2" if T == 3 else "attributes", T) \
        if args.points == "protocol" else int(args.points)

    def extra2():
        ends = [make_model(tasks, args.width, args.size) for _ in range(2)]
        return C.curve_model(ends, "nurbs", n_points)
    return {
        "EXTRA-1": (lambda: make_model(tasks, args.width, args.size), PlainStep()),
        "EXTRA-2": (extra2, C.ExtraStep(groups=three_groups(tasks))),
        "PaMaL": (lambda: C.simplex_model([make_model(tasks, args.width, args.size) for _ in range(T)]),
                  C.PamalStep(window=args.window)),
    }


def estimate(Ts: list[int], values: list[float], T: int) -> float:
    """Linear fit in T of the measured values, evaluated at T."""
    a, b = np.polyfit(np.asarray(Ts, float), np.asarray(values, float), 1)
    return float(a * T + b)


def measure(args, device) -> dict:
    results: dict[str, dict[int, tuple[float, bool]]] = {}
    limit = args.limit_gb * 2 ** 30 if args.limit_gb else None
    for T in args.tasks:
        data = bundle(T, args.batch, args.size)
        for name, (build, rule) in builders(T, args).items():
            row = results.setdefault(name, {})
            done = sorted((t, v) for t, (v, est) in row.items() if not est)
            predicted = estimate(*zip(*done), T) if len(done) >= 2 else 0.0
            if limit and predicted > limit:
                row[T] = (predicted, True)
                continue
            try:
                row[T] = (float(run_steps(build, rule, data, args.steps, device)), False)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                row[T] = (estimate(*zip(*done), T) if len(done) >= 2 else float("nan"), True)
    return results


def report(results: dict, Ts: list[int], device) -> None:
    how = "CUDA max_memory_allocated" if device.type == "cuda" else "tracked live tensor bytes"
    print(f"peak training memory (MiB), device {device}, {how}")
    print(f"{'method':<9}" + "".join(f"{'T=' + str(T):>17}" for T in Ts))
    for name, row in results.items():
        cells = [(f"{row[T][0] / MiB:.1f}" + (" (est.)" if row[T][1] else "")).rjust(17) for T in Ts]
        print(f"{name:<9}" + "".join(cells))
    lo, hi = min(Ts), max(Ts)
    print(f"\nratio T={hi} / T={lo}:")
    for name, row in results.items():
        print(f"  {name:<9}{row[hi][0] / row[lo][0]:8.2f}")
    pam = results["PaMaL"]
    measured = [T for T in Ts if not pam[T][1]]
    if len(measured) >= 3:
        x = np.asarray(measured, float)
        y = np.asarray([pam[T][0] for T in measured])
        a, b = np.polyfit(x, y, 1)
        r2 = 1 - ((y - (a * x + b)) ** 2).sum() / ((y - y.mean()) ** 2).sum()
        print(f"\nPaMaL linear fit over measured T {measured}: "
              f"{a / MiB:.2f} MiB per task + {b / MiB:.1f} MiB, R² = {r2:.4f}")
    e2 = results["EXTRA-2"]
    verdict = e2[hi][0] <= 1.2 * e2[lo][0]
    print(f"EXTRA-2 at T={hi} within 1.2x of T={lo}: {verdict} ({e2[hi][0] / e2[lo][0]:.3f}x)")
    print("PaMaL / EXTRA-2 per T: " + ", ".join(f"T={T}: {pam[T][0] / e2[T][0]:.2f}x" for T in Ts))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--tasks", default="2,3,10,40", type=lambda s: [int(v) for v in s.split(",")])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=16, help="image side (a multiple of 8)")
    p.add_argument("--width", type=int, default=32, help="encoder channels (2·width features)")
    p.add_argument("--window", type=int, default=3, help="PaMaL's forward passes per step")
    p.add_argument("--points", default="3", help="control points of EXTRA-2: an integer or 'protocol'")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--limit-gb", type=float, default=None, help="estimate instead of running above this")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = resolve_device(args.device)
    report(measure(args, device), args.tasks, device)


if __name__ == "__main__":
    main()
