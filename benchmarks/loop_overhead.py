"""The training loop's overhead: an ``ew`` step of :func:`mtl.train.fit` against a plain PyTorch loop,
and where a ``cpu`` run's time goes.

Model and data: the ``cpu`` profile's scenes SegNet (book/sections/imbalance.yaml), one torch thread.

1. **Step** — the same model, batch and optimizer settings, timed interleaved in one process (the
   minimum over rounds): the plain loop (forward, ``torch.stack`` of the task losses, sum,
   backward, Adam step) and fit's step (``PlainStep.step`` with ``ew``, plus the per-step
   bookkeeping fit does with its logs). Target (issue 17): fit ≤ 1.05× plain.
2. **Split** — one short ``fit`` with timers wrapped around its pieces: data (drawing the batches),
   forward (encode, decode, task losses), backward + weighting (the method's ``backward``), optimizer
   (Adam), evaluation (val and test after the epoch) and the rest (records, bookkeeping).

Times are this process's CPU time (one thread), so other jobs on the machine do not count.

    PYTHONPATH=. python benchmarks/loop_overhead.py [--rounds 30] [--steps 20]
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch

import mtl.train as TR
import mtl.weighting as W
from mtl.experiment import RunSpec

CLOCK = time.process_time    # this process's CPU time: on a shared machine wall time measures the neighbours
SCENES = {"dataset": "scenes", "backbone": "segnet", "backbone_kw": {"width": 16, "stages": 3, "convs": 2},
          "dataset_kw": {"height": 48, "width": 64, "train_scenes": 24, "val_scenes": 6, "test_scenes": 8,
                         "scans_per_scene": 10}}


def plain_step(model, data, batch, opt):
    x, y = batch
    preds = model(x)
    loss = torch.stack([data.task(t).loss(preds[t], y[t]) for t in model.tasks]).sum()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def fit_step(model, data, batch, weighting, opt, sums, weights):
    """``PlainStep.step`` and what fit does with its logs every step."""
    logs = TR.PlainStep().step(model, data, batch, weighting, opt, TR.StepInfo())
    sums += logs["losses"].cpu()
    if "weights" in logs:
        weights.append(logs["weights"].float().cpu())


def step_ratio(spec, data, rounds: int) -> dict:
    batch = next(TR.batches(data, "train", 8, 0, torch.device("cpu")))
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        m = spec.build_model(data).train()
        models.append((m, torch.optim.Adam(m.parameters(), lr=1e-3)))
    (pm, popt), (fm, fopt) = models
    ew, sums, weights = W.create("ew"), torch.zeros(len(fm.tasks)), []
    best = {"plain": float("inf"), "fit": float("inf")}
    for r in range(rounds + 3):
        for key in best:
            t0 = CLOCK()
            if key == "plain":
                plain_step(pm, data, batch, popt)
            else:
                fit_step(fm, data, batch, ew, fopt, sums, weights)
            if r >= 3:                                               # 3 warm-up rounds
                best[key] = min(best[key], (CLOCK() - t0) * 1000)
    same = all(torch.equal(a, b) for a, b in zip(pm.parameters(), fm.parameters()))
    return {**best, "ratio": best["fit"] / best["plain"], "same_parameters": same}


class _Timers:
    def __init__(self):
        self.s = defaultdict(float)

    def wrap(self, key, fn, when=lambda: True):
        def timed(*a, **k):
            if not when():
                return fn(*a, **k)
            t0 = CLOCK()
            try:
                return fn(*a, **k)
            finally:
                self.s[key] += CLOCK() - t0
        return timed


def split(spec, data, steps: int) -> dict:
    """Seconds per piece of one epoch of ``steps`` steps of fit (ew), and the total."""
    timers = _Timers()
    torch.manual_seed(0)
    model = spec.build_model(data)
    model.encode = timers.wrap("forward", model.encode, when=lambda: model.training)   # not evaluation's
    model.decode = timers.wrap("forward", model.decode, when=lambda: model.training)
    weighting = W.create("ew")
    weighting.backward = timers.wrap("backward+weighting", weighting.backward)
    orig_batches, orig_eval, orig_adam, orig_losses = TR.batches, TR.evaluate, torch.optim.Adam.step, TR.task_losses

    def timed_batches(*a, **k):
        it = orig_batches(*a, **k)
        while True:
            t0 = CLOCK()
            b = next(it)
            timers.s["data"] += CLOCK() - t0
            yield b

    TR.batches, TR.evaluate = timed_batches, timers.wrap("evaluation", orig_eval)
    TR.task_losses = timers.wrap("forward", orig_losses)
    torch.optim.Adam.step = timers.wrap("optimizer", orig_adam)
    try:
        t0 = CLOCK()
        TR.fit(model, data, weighting, TR.TrainConfig(epochs=1, batch_size=8, max_steps_per_epoch=steps,
                                                      device="cpu"))
        total = CLOCK() - t0
    finally:
        TR.batches, TR.evaluate, torch.optim.Adam.step, TR.task_losses = orig_batches, orig_eval, orig_adam, orig_losses
    out = dict(timers.s)
    out["rest (records, bookkeeping)"] = total - sum(out.values())
    out["total"] = total
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    spec = RunSpec.from_dict({**SCENES, "name": "overhead"})
    data = spec.build_data()
    r = step_ratio(spec, data, args.rounds)
    print(f"step: plain {r['plain']:.2f} ms, fit {r['fit']:.2f} ms, fit/plain {r['ratio']:.3f} "
          f"(same parameters after the same steps: {r['same_parameters']})")
    s = split(spec, data, args.steps)
    print(f"split of one epoch of {args.steps} steps (+ evaluation), fit with ew:")
    for k, v in s.items():
        print(f"  {k:28s} {v * 1000:9.1f} ms  {100 * v / s['total']:5.1f} %")


if __name__ == "__main__":
    main()
