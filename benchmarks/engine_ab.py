"""Before/after: one training step of each method with the library at an older commit and with this
working tree, interleaved in one process (so machine load hits both alike).

The older ``mtl/`` is exported with ``git archive`` into a temporary folder as the package
``mtl_old`` (the library imports itself only relatively, so both live side by side); only the
weighting methods (and the engine under them) come from it. Settings as in
``weighting_speed.py`` (``--model mlp | segnet | resnet18``). Prints, per method and mode, the
minimum step time (this process's CPU time, one thread) of both and the ratio new / old.

    PYTHONPATH=. python benchmarks/engine_ab.py --old 43e0e4e --model segnet --T 3 --methods ew mgda imtl
"""
from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import weighting_speed as WS


def export(commit: str, root: Path) -> None:
    """``mtl/`` at ``commit`` as ``root/mtl_old``."""
    repo = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(repo), "archive", commit, "mtl"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    (root / "mtl").rename(root / "mtl_old")


def steps(pkg, T: int, methods, modes) -> dict:
    """(method, mode) → a step of ``pkg``'s weighting (the engine under test) on the benchmark model;
    the model, data and loop are this tree's for both sides (the models did not change)."""
    W = importlib.import_module(f"{pkg}.weighting")
    batch = WS.make_batch(T, 0)
    batches = (WS.make_batch(T, 100 + k) for k in range(10**9))
    out = {}
    for name, mode, kw in WS.configurations(methods, modes):
        model, weighting = WS.make_model(T), W.create(name, **kw)
        weighting.reset()
        opt = torch.optim.Adam(list(model.parameters()) + list(weighting.parameters()), lr=1e-4)
        out[(name, mode)] = lambda m=model, w=weighting, o=opt: WS.method_step(m, w, o, batch, batches)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="the older commit")
    ap.add_argument("--model", default="segnet", choices=["mlp", "segnet", "resnet18"])
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--T", type=int, default=3)
    ap.add_argument("--methods", nargs="+", default=["ew", "mgda", "imtl", "pcgrad", "upgrad", "dbmtl", "moco"])
    ap.add_argument("--modes", nargs="+", default=["param", "rep"])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    WS.SETTING = WS.setting(args.model, args.width)
    with tempfile.TemporaryDirectory() as tmp:
        export(args.old, Path(tmp))
        sys.path.insert(0, tmp)
        runs = {"old": steps("mtl_old", args.T, args.methods, args.modes),
                "new": steps("mtl", args.T, args.methods, args.modes)}
        for side in runs.values():
            for step in side.values():
                for _ in range(args.warmup):
                    step()
        best = {(s, k): float("inf") for s, side in runs.items() for k in side}
        for _ in range(args.repeats):
            for key in runs["new"]:
                for s in ("old", "new"):
                    t0 = time.process_time()
                    runs[s][key]()
                    best[(s, key)] = min(best[(s, key)], (time.process_time() - t0) * 1000)
    print(f"{WS.SETTING.about}; T = {args.T}; old = {args.old}; min over {args.repeats} interleaved rounds, CPU time, "
          "1 thread.\n")
    print("| method | mode | old ms | new ms | new / old |\n|---|---|---:|---:|---:|")
    for key in runs["new"]:
        o, n = best[("old", key)], best[("new", key)]
        print(f"| {key[0]} | {key[1]} | {o:.1f} | {n:.1f} | {n / o:.2f} |")


if __name__ == "__main__":
    main()
