"""Per-step time with and without mixed precision (``TrainConfig.amp``) for a SegNet-like conv model.

The HPS SegNet of the scenes dataset (segmentation, depth, normals, edges), trained by the loop's own
step (:class:`mtl.train.PlainStep`, Adam) for ``--steps`` steps after ``--warmup``; the median step
time for each method and precision: float32 and bf16 on the CPU; float32, bf16 and fp16 (with its
GradScaler) on CUDA when present. Methods: a loss weighting (``ew``), a Gramian method in param mode
(``mgda``: per-task rows of every shared parameter) and in rep mode (``cagrad``).

    python benchmarks/amp_speed.py [--device cpu|cuda] [--width 16] [--batch 8] [--steps 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from mtl import weighting as W
from mtl.experiment import load_data
from mtl.models import create_model
from mtl.train import PlainStep, StepInfo, batches, resolve_device

METHODS = (("ew", {}), ("mgda", {"mode": "param"}), ("cagrad", {"mode": "rep"}))


def step_times(data, device, method: str, kw: dict, amp: str | None, args) -> list[float]:
    """Seconds of each timed step (the device synchronised around each)."""
    torch.manual_seed(0)
    model = create_model("hps", "segnet", data.tasks, backbone_kw={"width": args.width}).to(device).train()
    weighting = W.create(method, **kw)
    weighting.configure(engine="batched")
    opt = torch.optim.Adam(list(model.parameters()) + list(weighting.parameters()), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None
    stream = batches(data, "train", args.batch, 0, device)
    info = StepInfo(next_batch=lambda split: next(stream), amp=amp, device_type=device.type, scaler=scaler)
    out = []
    for k in range(args.warmup + args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        PlainStep().step(model, data, next(stream), weighting, opt, info)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if k >= args.warmup:
            out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--width", type=int, default=16, help="SegNet base width")
    p.add_argument("--height", type=int, default=48)
    p.add_argument("--image-width", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    args = p.parse_args()
    device = resolve_device(args.device)
    data = load_data("scenes", height=args.height, width=args.image_width, train_scenes=4, val_scenes=1,
                     test_scenes=1, scans_per_scene=4)
    amps = (None, "bf16", "fp16") if device.type == "cuda" else (None, "bf16")
    print(f"device {device}, SegNet width {args.width}, batch {args.batch} of {args.height}×{args.image_width}, "
          f"median of {args.steps} steps (ms)")
    print(f"{'method':<16}" + "".join(f"{a or 'float32':>10}" for a in amps) + "   speed-up")
    for method, kw in METHODS:
        ms = [1000 * statistics.median(step_times(data, device, method, kw, amp, args)) for amp in amps]
        label = f"{method}-{kw.get('mode', '')}".rstrip("-")
        print(f"{label:<16}" + "".join(f"{m:>10.1f}" for m in ms) + "   " +
              ", ".join(f"{a} ×{ms[0] / m:.2f}" for a, m in zip(amps[1:], ms[1:])))


if __name__ == "__main__":
    main()
