"""Wall time of a sweep of N small training runs on each executor, and each executor's overhead.

Setting (issue "Sweeps on an existing engine", item 6): N runs of one small spec (``scenes``
32×48 with 48 training scans, a 2-stage SegNet of width 8, three tasks, 3 epochs of 6 steps:
the ``architectures`` section's ``cpu`` setting), differing only in the seed, each
sweep into a fresh folder (nothing loaded). Executors: ``serial`` (this process), ``local`` and
``ray`` with ``--workers`` workers, each run pinned to one torch thread, and optionally
``slurm-local`` (the slurm executor on submitit's local backend) and ``slurm`` (a real Slurm, e.g.
the one-node one of ``.ci/slurm-up``). The overhead is measured with trivial jobs (they return at
once): "fixed" is the wall time of a sweep of one trivial job (start-up: spawning workers,
starting Ray, submitting), "per run" the extra time of each further trivial job.

    python benchmarks/sweep_speed.py                       # serial, local, ray; 8 runs, 2 workers
    python benchmarks/sweep_speed.py --executors serial local ray slurm-local slurm --runs 8
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import torch

from mtl import sweep

SPEC = {"dataset": "scenes", "backbone": "segnet", "tasks": ["segmentation", "depth", "normal"],
        "dataset_kw": {"height": 32, "width": 48, "train_scenes": 8, "val_scenes": 2, "test_scenes": 4,
                       "scans_per_scene": 6},
        "backbone_kw": {"width": 8, "stages": 2, "convs": 1}, "train": {"epochs": 3, "batch_size": 8, "lr": 0.003}}


def trivial(out_dir: str) -> dict:
    """A job that does nothing: what an executor costs beyond the run itself."""
    return {"pid": os.getpid()}


def executor(name: str, workers: int):
    if name == "serial":
        return sweep.Serial(threads=1)
    if name == "local":
        return sweep.Local(workers=workers, threads=1)
    if name == "ray":
        return sweep.Ray(workers=workers, threads=1)
    if name == "slurm-local":
        return sweep.Slurm(cluster="local", workers=workers, threads=1, time=30, poll_s=0.2)
    if name == "slurm":
        return sweep.Slurm(cluster="slurm", workers=workers, threads=1, time=30, mem_gb=1, poll_s=0.5)
    raise ValueError(f"unknown executor {name!r}; valid: serial, local, ray, slurm-local, slurm")


def timed(jobs, ex) -> float:
    start = time.perf_counter()
    sweep.run(jobs, ex)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--executors", nargs="+", default=["serial", "local", "ray"])
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    from mtl.experiment import RunSpec
    RunSpec.from_dict(SPEC).build_data()            # the data cache is built once, before any timing
    rows = []
    for name in args.executors:
        ex = executor(name, args.workers)
        with tempfile.TemporaryDirectory(prefix=f"sweep-speed-{name}-") as tmp:
            jobs = [sweep.train(tmp, {**SPEC, "name": f"bench-s{s}", "train": {**SPEC["train"], "seed": s}})
                    for s in range(args.runs)]
            wall = timed(jobs, ex)
            one = timed([sweep.Job(trivial, tmp)], ex)
            many = timed([sweep.Job(trivial, tmp) for _ in range(args.runs)], ex)
        rows.append((name, wall, one, max(0.0, many - one) / max(1, args.runs - 1)))
        print(f"{name}: {wall:.1f} s", flush=True)
    serial = next((w for n, w, *_ in rows if n == "serial"), None)
    print(f"\n{args.runs} runs of a small scenes SegNet spec (3 epochs), {args.workers} workers, 1 torch thread "
          f"per run; {os.cpu_count()} cores, {platform.processor() or platform.machine()}, torch {torch.__version__}\n")
    print("| executor | wall (s) | speed-up vs serial | fixed cost (s) | per-run overhead (s) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, wall, one, per in rows:
        speed = f"{serial / wall:.2f}×" if serial else "–"
        workers = "" if name == "serial" else f" ({args.workers} workers)"
        print(f"| {name}{workers} | {wall:.1f} | {speed} | {one:.2f} | {per:.3f} |")


if __name__ == "__main__":
    main()
