"""Per-step time of every weighting method relative to equal weighting and to a naive loop of T backward passes.

Settings (``--model``):

* ``mlp`` (issue 4, item 7): shared MLP encoder 256→1024→1024 (ReLU, ≈1.31M parameters), T linear
  MSE heads, batch 64, T ∈ {2, 4, 8, 16} by default.
* ``segnet`` (issue 17): the ``cpu`` profile's scenes SegNet encoder (width 16, 3 stages, 2 convs
  per stage; book/sections/imbalance.yaml) on 48×64 inputs, batch 8, T dense heads as the seeds
  use (MTAN's conv3×3-ReLU-conv1×1, one output channel, MSE on a random map), T ∈ {3, 4} by
  default; ``--T 2 4 8 16 32`` gives the growth of step time with T.
* ``resnet18``: the dilated ResNet-18 encoder (stride 8) with its upsampling dense heads, same
  inputs, T = 3 by default; ``--width`` narrows its stem (64: torchvision's network).

CPU, "param" and "rep" modes where a method defines them. One step = forward, the method's
backward, Adam step and the method's after-step hook (plus the extra batches three-batch and
bilevel methods draw). "naive" is LibMTL's way of getting the Jacobian: T
``backward(retain_graph=True)`` passes, each copied out of ``.grad``, then the sum. When
``LibMTL`` or ``torchjd`` can be imported (optional; never installed by this project) their
implementations of the same methods are timed in the same rounds (``--peers``); otherwise the
install hint is printed. Times are the minimum over ``--repeats`` rounds after warm-up, all
configurations timed round-robin in each round. By default the clock is this process's CPU time
on one thread (``--clock cpu --threads 1``): on a shared machine wall time mostly measures the
neighbours' load, CPU time the work a method does. ``--clock wall --threads 0`` gives wall time
with torch's default threads.

    python benchmarks/weighting_speed.py                # full MLP table (a few minutes)
    python benchmarks/weighting_speed.py --quick        # T ∈ {2, 16}, fewer repeats
    python benchmarks/weighting_speed.py --model segnet --T 3 4
    python benchmarks/weighting_speed.py --model segnet --T 2 4 8 16 32 --methods ew mgda imtl --modes rep
    python benchmarks/weighting_speed.py --model resnet18 --width 32 --T 3
    python benchmarks/weighting_speed.py --methods mgda pcgrad --T 16 --out table.md
    python benchmarks/weighting_speed.py --T 16 --processes 5   # the targets, over 5 fresh processes

The naive loop's time varies by ±8% between processes (its T·d-sized copies land in fresh pages or
not depending on the allocator's history), more than within one; ``--processes K`` re-runs the
benchmark in K fresh processes and checks the issue's targets on the median ratio, with the range.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

import mtl.weighting as W
from mtl import tasks as TK
from mtl.models import BACKBONES, MultiTaskModel
from mtl.weighting import StepContext

B, D_IN, WIDTH = 64, 256, 1024
CONV_B, HEIGHT, WIDTH_PX = 8, 48, 64
METHODS = ["ew", "ls", "uw", "dwa", "gls", "rlw", "stch", "famo",                  # loss weightings
           "gradnorm", "mgda", "imtl", "alignedmtl", "graddrop", "pcgrad", "gradvac", "cagrad", "nashmtl",
           "moco", "dbmtl", "excessmtl", "fairgrad", "modo", "sdmgrad", "upgrad", "avgnorm",
           "moml", "forum", "autolambda"]                                             # bilevel
PEERS = {"LibMTL": "pip install LibMTL  (https://github.com/median-research-group/LibMTL)",
         "torchjd": "pip install torchjd  (https://github.com/TorchJD/torchjd)"}


@dataclass(frozen=True)
class Setting:
    """A benchmark model: ``model(T)``, ``batch(T, seed)`` → (x, y [T, ...]), default task counts."""

    name: str
    model: Callable[[int], MultiTaskModel]
    batch: Callable[[int, int], tuple]
    Ts: tuple
    about: str


def _mlp_model(T: int) -> MultiTaskModel:
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(D_IN, WIDTH), nn.ReLU(), nn.Linear(WIDTH, WIDTH), nn.ReLU())
    return MultiTaskModel(enc, {f"t{i}": nn.Linear(WIDTH, 1) for i in range(T)})


def _mlp_batch(T: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, D_IN, generator=g), torch.randn(T, B, generator=g)


def _conv_model(backbone: str, **kw) -> Callable[[int], MultiTaskModel]:
    def make(T: int) -> MultiTaskModel:
        torch.manual_seed(0)
        bb = BACKBONES.get(backbone)(**kw)
        return MultiTaskModel(bb.encoder, {f"t{i}": bb.make_head(TK.regression(f"t{i}")) for i in range(T)})
    return make


def _conv_batch(T: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(CONV_B, 3, HEIGHT, WIDTH_PX, generator=g),
            torch.randn(T, CONV_B, HEIGHT, WIDTH_PX, generator=g))                 # [T, B, H, W] dense targets


def setting(name: str, width: int = 16) -> Setting:
    if name == "mlp":
        return Setting("mlp", _mlp_model, _mlp_batch, (2, 4, 8, 16),
                       f"shared MLP encoder {D_IN}→{WIDTH}→{WIDTH} (ReLU), T linear MSE heads, batch {B}")
    if name == "segnet":
        return Setting("segnet", _conv_model("segnet", width=16, stages=3, convs=2), _conv_batch, (3, 4),
                       f"scenes SegNet encoder of the cpu profile (width 16, 3 stages, 2 convs), {HEIGHT}×{WIDTH_PX} "
                       f"inputs, T dense heads (conv3×3-ReLU-conv1×1, MSE), batch {CONV_B}")
    if name == "resnet18":
        return Setting("resnet18", _conv_model("resnet18", width=width), _conv_batch, (3,),
                       f"dilated ResNet-18 encoder (stem width {width}), {HEIGHT}×{WIDTH_PX} inputs, T upsampling "
                       f"dense heads (MSE), batch {CONV_B}")
    raise ValueError(f"model must be one of ['mlp', 'segnet', 'resnet18'], got {name!r}")


SETTING = setting("mlp")


def make_model(T: int) -> MultiTaskModel:
    return SETTING.model(T)


def make_batch(T: int, seed: int):
    return SETTING.batch(T, seed)


def losses_of(model: MultiTaskModel, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    preds = model.decode(z)
    return torch.stack([F.mse_loss(preds[t].reshape(y[i].shape), y[i]) for i, t in enumerate(model.tasks)])   # [T]


def method_step(model, weighting, opt, batch, batches):
    """One optimisation step as :class:`mtl.train.PlainStep` makes it."""
    x, y = batch
    z = model.encode(x)
    losses = losses_of(model, z, y)
    def rep_loss_fn(b):
        zb = model.encode(b[0])
        return losses_of(model, zb, b[1]), zb

    ctx = StepContext(model=model, batch=batch, rep=z if weighting.needs == "rep" else None,
                      loss_fn=lambda b: rep_loss_fn(b)[0], rep_loss_fn=rep_loss_fn,
                      next_batch=lambda split: next(batches))
    opt.zero_grad(set_to_none=True)
    weighting.backward(losses, ctx)
    opt.step()
    weighting.after_step(ctx)


def naive_step(model, opt, batch):
    """LibMTL-style: T backward passes through the encoder, per-task gradients copied out of ``.grad``."""
    x, y = batch
    losses = losses_of(model, model.encode(x), y)
    shared = model.shared_parameters()
    rows = []
    for t in range(len(losses)):
        opt.zero_grad(set_to_none=True)
        losses[t].backward(retain_graph=t < len(losses) - 1)
        rows.append(torch.cat([p.grad.reshape(-1) for p in shared]))
    J = torch.stack(rows)                                                     # [T, d]
    d = J.sum(0)
    for p, g in zip(shared, d.split([p.numel() for p in shared])):
        p.grad = g.view_as(p).clone()
    opt.step()


def peers() -> dict:
    """The optional peer libraries that import here; the install hint is printed for the others."""
    found = {}
    for name, hint in PEERS.items():
        try:
            found[name] = importlib.import_module(name)
        except ImportError:
            print(f"# {name} is not installed: its columns are left out ({hint})", file=sys.stderr)
    return found


def peer_runners(T: int, methods, found: dict, batch) -> dict:
    """Steps of torchjd's implementations of ``methods`` on the same model and batch (its aggregators
    through ``torchjd.mtl_backward``, the API of its README; written against it but not run here,
    where torchjd is not installed). A method torchjd lacks is skipped. LibMTL's weightings need its
    Trainer's model wiring and are not timed by this script."""
    out = {}
    if "torchjd" in found:
        tj = found["torchjd"]
        aggs = {"mgda": "MGDA", "upgrad": "UPGrad", "pcgrad": "PCGrad", "imtl": "IMTLG", "cagrad": "CAGrad",
                "nashmtl": "NashMTL", "alignedmtl": "AlignedMTL", "gradvac": "GradVac", "ew": "Mean"}
        aggregation = importlib.import_module("torchjd.aggregation")
        for name in methods:
            cls = getattr(aggregation, aggs.get(name, ""), None)
            if cls is None:
                continue
            try:
                agg = cls()
            except TypeError:
                continue
            model = make_model(T)
            opt = torch.optim.Adam(model.parameters(), lr=1e-4)

            def step(m=model, o=opt, a=agg):
                x, y = batch
                z = m.encode(x)
                losses = losses_of(m, z, y)
                o.zero_grad(set_to_none=True)
                tj.mtl_backward(losses=list(losses), features=z, aggregator=a)
                o.step()
            out[(f"torchjd:{name}", "param")] = step
    if "LibMTL" in found:
        print("# LibMTL found but not timed: its weightings need its Trainer's model wiring", file=sys.stderr)
    return out


def configurations(methods: list[str], modes: list[str]):
    for name in methods:
        cls = W.WEIGHTINGS.get(name)
        if "mode" in inspect.signature(cls).parameters:
            for mode in W.info(name).modes:
                if mode in modes:
                    yield name, mode, {"mode": mode}
        else:
            yield name, "-", {}


def runners(T: int, methods, modes, found=None):
    """A step function per configuration, each with its own model, optimizer and method state."""
    batches = (make_batch(T, 100 + k) for k in range(10**9))
    batch = make_batch(T, 0)
    model = make_model(T)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    out = {("naive", "-"): (lambda m=model, o=opt: naive_step(m, o, batch))}
    for name, mode, kw in configurations(methods, modes):
        model, weighting = make_model(T), W.create(name, **kw)
        weighting.reset()
        opt = torch.optim.Adam(list(model.parameters()) + list(weighting.parameters()), lr=1e-4)
        out[(name, mode)] = lambda m=model, w=weighting, o=opt: method_step(m, w, o, batch, batches)
    out.update(peer_runners(T, methods, found or {}, batch))
    return out


def bench(T: int, methods, modes, warmup: int, repeats: int, clock=time.process_time, found=None) -> dict:
    """Minimum step time (ms) per configuration; the configurations are timed round-robin, so a
    burst of outside load hits them alike and the minimum picks each one's quiet moments."""
    steps = runners(T, methods, modes, found)
    for step in steps.values():
        for _ in range(warmup):
            step()
    best = {k: float("inf") for k in steps}
    for _ in range(repeats):
        for key, step in steps.items():
            t0 = clock()
            step()
            best[key] = min(best[key], (clock() - t0) * 1000)
    return best


def table(results: dict[int, dict], Ts: list[int]) -> str:
    keys = list(next(iter(results.values())).keys())
    head = "| method | mode | " + " | ".join(f"T={T} ms | ×ew | ×naive" for T in Ts) + " |"
    sep = "|---|---|" + "---:|---:|---:|" * len(Ts)
    lines = [head, sep]
    for key in keys:
        cells = []
        for T in Ts:
            r = results[T]
            ms, ew, naive = r[key], r[("ew", "-")], r[("naive", "-")]
            cells.append(f"{ms:.1f} | {ms / ew:.2f} | {ms / naive:.2f}")
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


PARAM_TARGET, REP_TARGET = 0.6, 3.0     # issue 4: param mode ≤ 0.6× naive, rep mode ≤ 3× ew, at T = 16


def spread(args, T: int, K: int) -> str:
    """Ratios to naive and ew over K fresh processes at task count T: median [min, max], and the targets."""
    runs = []
    for _ in range(K):
        with tempfile.TemporaryDirectory() as tmp:
            out = f"{tmp}/times.json"
            cmd = [sys.executable, __file__, "--model", args.model, "--width", str(args.width),
                   "--T", str(T), "--repeats", str(args.repeats or 7), "--warmup",
                   str(args.warmup), "--threads", str(args.threads), "--clock", args.clock, "--json", out,
                   "--modes", *args.modes] + (["--methods", *args.methods] if args.methods else [])
            subprocess.run(cmd, check=True, capture_output=True)
            with open(out) as f:
                runs.append({tuple(k.split("|")): v for k, v in json.load(f).items()})
    lines = [f"T = {T}, {K} fresh processes: ratio median [min, max]; target param ≤ {PARAM_TARGET}× naive, "
             f"rep ≤ {REP_TARGET}× ew (on the median).", "",
             "| method | mode | ×naive | ×ew | target met |", "|---|---|---:|---:|:---:|"]
    for key in runs[0]:
        rn = [r[key] / r[("naive", "-")] for r in runs]
        re = [r[key] / r[("ew", "-")] for r in runs]
        ok = (statistics.median(rn) <= PARAM_TARGET if key[1] == "param" else
              statistics.median(re) <= REP_TARGET if key[1] == "rep" else None)
        lines.append(f"| {key[0]} | {key[1]} | {statistics.median(rn):.2f} [{min(rn):.2f}, {max(rn):.2f}] | "
                     f"{statistics.median(re):.2f} [{min(re):.2f}, {max(re):.2f}] | "
                     f"{'' if ok is None else ('yes' if ok else '**no**')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mlp", choices=["mlp", "segnet", "resnet18"], help="the setting (see above)")
    ap.add_argument("--width", type=int, default=16, help="ResNet-18 stem width (64: torchvision's)")
    ap.add_argument("--T", type=int, nargs="+", default=None, help="task counts (default: the setting's)")
    ap.add_argument("--methods", nargs="+", default=None, help="method names (default: issue 4's list)")
    ap.add_argument("--modes", nargs="+", default=["param", "rep"], choices=["param", "rep"])
    ap.add_argument("--repeats", type=int, default=None, help="timed steps per method (default 7, quick 3)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu", help="process CPU time or wall time")
    ap.add_argument("--quick", action="store_true", help="T ∈ {2, 16} and 3 repeats")
    ap.add_argument("--out", default=None, help="also write the table (markdown) to this file")
    ap.add_argument("--processes", type=int, default=0,
                    help="instead: run the largest T in this many fresh processes; ratio spread and targets")
    ap.add_argument("--json", default=None, help=argparse.SUPPRESS)          # one process's times (for --processes)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning, module="torch.jit")   # from torch.func.jvp (MoDo)
    if args.threads:
        torch.set_num_threads(args.threads)
    global SETTING
    SETTING = setting(args.model, args.width)
    found = peers()
    Ts = args.T or ([2, 16] if args.quick and args.model == "mlp" else list(SETTING.Ts))
    repeats = args.repeats or (3 if args.quick else 7)
    methods = args.methods or METHODS
    if args.processes:
        text = spread(args, max(Ts), args.processes)
        print(text)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text + "\n")
        return
    results = {}
    for T in Ts:
        t0 = time.perf_counter()
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        results[T] = bench(T, methods, args.modes, args.warmup, repeats, clock, found)
        print(f"# T={T} done in {time.perf_counter() - t0:.0f} s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({f"{k[0]}|{k[1]}": v for k, v in results[max(Ts)].items()}, f)
        return
    n_params = sum(p.numel() for p in make_model(2).encoder.parameters())
    info = (f"CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread(s), {args.clock} clock; {SETTING.about}; encoder {n_params:,} "
            f"parameters; min over {repeats} round-robin rounds after {args.warmup} warm-up steps.")
    text = info + "\n\n" + table(results, Ts)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
