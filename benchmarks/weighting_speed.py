"""Per-step time of every weighting method relative to equal weighting and to a naive loop of T backward passes.

Setting (issue 4, item 7): shared MLP encoder 256→1024→1024 (ReLU, ≈1.31M parameters), T linear
MSE heads, batch 64, CPU, T ∈ {2, 4, 8, 16}, "param" and "rep" modes where a method defines them.
One step = forward, the method's backward, Adam step and the method's after-step hook (plus the
extra batches three-batch and bilevel methods draw). "naive" is LibMTL's way of getting the
Jacobian: T ``backward(retain_graph=True)`` passes, each copied out of ``.grad``, then the sum.
Times are the minimum over ``--repeats`` rounds after warm-up, all configurations timed
round-robin in each round. By default the clock is this process's CPU time on one thread
(``--clock cpu --threads 1``): on a shared machine wall time mostly measures the neighbours'
load, CPU time the work a method does. ``--clock wall --threads 0`` gives wall time with
torch's default threads.

    python benchmarks/weighting_speed.py                # full table (a few minutes)
    python benchmarks/weighting_speed.py --quick        # T ∈ {2, 16}, fewer repeats
    python benchmarks/weighting_speed.py --methods mgda pcgrad --T 16 --out table.md
"""
from __future__ import annotations

import argparse
import inspect
import platform
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn

import mtl.weighting as W
from mtl.models import MultiTaskModel
from mtl.weighting import StepContext

B, D_IN, WIDTH = 64, 256, 1024
METHODS = ["ew", "ls", "uw", "dwa", "gls", "rlw", "stch", "famo",                  # loss weightings
           "gradnorm", "mgda", "imtl", "alignedmtl", "graddrop", "pcgrad", "gradvac", "cagrad", "nashmtl",
           "moco", "dbmtl", "excessmtl", "fairgrad", "modo", "sdmgrad", "upgrad", "avgnorm",
           "moml", "forum", "autolambda"]                                             # bilevel


def make_model(T: int) -> MultiTaskModel:
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(D_IN, WIDTH), nn.ReLU(), nn.Linear(WIDTH, WIDTH), nn.ReLU())
    return MultiTaskModel(enc, {f"t{i}": nn.Linear(WIDTH, 1) for i in range(T)})


def make_batch(T: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, D_IN, generator=g), torch.randn(T, B, generator=g)


def losses_of(model: MultiTaskModel, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    preds = model.decode(z)
    return torch.stack([F.mse_loss(preds[t].squeeze(1), y[i]) for i, t in enumerate(model.tasks)])   # [T]


def method_step(model, weighting, opt, batch, batches):
    """One optimisation step as :class:`mtl.train.PlainStep` makes it."""
    x, y = batch
    z = model.encode(x)
    losses = losses_of(model, z, y)
    ctx = StepContext(model=model, batch=batch, rep=z if weighting.needs == "rep" else None,
                      loss_fn=lambda b: losses_of(model, model.encode(b[0]), b[1]),
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


def configurations(methods: list[str], modes: list[str]):
    for name in methods:
        cls = W.WEIGHTINGS.get(name)
        if "mode" in inspect.signature(cls).parameters:
            for mode in cls.modes:
                if mode in modes:
                    yield name, mode, {"mode": mode}
        else:
            yield name, "-", {}


def runners(T: int, methods, modes):
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
    return out


def bench(T: int, methods, modes, warmup: int, repeats: int, clock=time.process_time) -> dict:
    """Minimum step time (ms) per configuration; the configurations are timed round-robin, so a
    burst of outside load hits them alike and the minimum picks each one's quiet moments."""
    steps = runners(T, methods, modes)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--T", type=int, nargs="+", default=None, help="task counts (default 2 4 8 16)")
    ap.add_argument("--methods", nargs="+", default=None, help="method names (default: issue 4's list)")
    ap.add_argument("--modes", nargs="+", default=["param", "rep"], choices=["param", "rep"])
    ap.add_argument("--repeats", type=int, default=None, help="timed steps per method (default 7, quick 3)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu", help="process CPU time or wall time")
    ap.add_argument("--quick", action="store_true", help="T ∈ {2, 16} and 3 repeats")
    ap.add_argument("--out", default=None, help="also write the table (markdown) to this file")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning, module="torch.jit")   # from torch.func.jvp (MoDo)
    if args.threads:
        torch.set_num_threads(args.threads)
    Ts = args.T or ([2, 16] if args.quick else [2, 4, 8, 16])
    repeats = args.repeats or (3 if args.quick else 7)
    methods = args.methods or METHODS
    results = {}
    for T in Ts:
        t0 = time.perf_counter()
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        results[T] = bench(T, methods, args.modes, args.warmup, repeats, clock)
        print(f"# T={T} done in {time.perf_counter() - t0:.0f} s", flush=True)
    n_params = sum(p.numel() for p in make_model(2).encoder.parameters())
    info = (f"CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread(s), {args.clock} clock; encoder {n_params:,} parameters, batch {B}; "
            f"min over {repeats} round-robin rounds after {args.warmup} warm-up steps.")
    text = info + "\n\n" + table(results, Ts)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
