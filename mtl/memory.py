"""Peak memory of a block of code, and the cost (parameters, time, memory) of one training step.

``with PeakMemory(device) as m: ...`` then ``m.peak_bytes``: the most memory the block held at
once **above what was already allocated when it started** (build the model inside the block to
include its parameters). Two methods, one meaning:

* CUDA — the caching allocator's own counters: ``torch.cuda.max_memory_allocated`` minus
  ``memory_allocated`` at entry (peak stats are reset on entry).
* CPU — there is no allocator counter, so a ``TorchDispatchMode`` watches every aten op run in the
  block (forward, autograd's backward on this thread, optimiser): each output whose storage is new
  (not one of the op's inputs' storages) is added with its ``nbytes``; a weak reference to the
  storage tells when it is freed. The peak is the largest sum of live tracked storages after any
  op. Kernel-internal scratch buffers (e.g. a convolution's workspace) are invisible at this
  level, so the CPU figure is the peak of live *tensor* bytes, a slight underestimate of RSS.

:func:`step_cost` measures one training step of the real loop (``mtl.train.PlainStep``), so a
grid cell that would not fit a memory budget is reported as OOM, as LibMTL's NYUv2 benchmark does.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from .train import PlainStep, StepInfo, resolve_device, to_device


def _storages(obj) -> list:
    return [t.untyped_storage() for t in tree_leaves(obj)
            if isinstance(t, torch.Tensor) and t.device.type == "cpu" and t.layout == torch.strided]


class _LiveTensorBytes(TorchDispatchMode):
    """Tracks the bytes of CPU storages created inside the mode and their peak.

    ``current`` is kept as an upper bound (frees are not subtracted op by op): only when it exceeds
    the recorded peak are the dead storages swept to get the exact figure, so a long block with many
    live tensors costs O(1) per op instead of a scan of every live storage after every op.
    """

    def __init__(self):
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.current = self.peak = 0

    def _sweep(self) -> None:
        for key in [k for k, (ref, _) in self.live.items() if ref.expired()]:
            self.current -= self.live.pop(key)[1]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {s._cdata for s in _storages((args, kwargs))}
        for s in _storages(out):
            key = s._cdata
            if key in inputs:
                continue
            old = self.live.get(key)
            if old is not None:
                if not old[0].expired():
                    continue                                   # a view of a tracked storage
                self.current -= old[1]                         # a dead storage's address, reused
            self.live[key] = (StorageWeakRef(s), s.nbytes())
            self.current += s.nbytes()
        if self.current > self.peak:                           # an upper bound: exact only after a sweep
            self._sweep()
            self.peak = max(self.peak, self.current)
        return out


class PeakMemory:
    """Context manager: ``peak_bytes`` = peak memory the block allocated above its starting level.

    >>> with PeakMemory("cpu") as m:
    ...     a = torch.ones(1000); b = torch.ones(2000); del a; c = torch.ones(500)
    >>> m.peak_bytes
    12000
    """

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        if self.device.type not in ("cpu", "cuda"):
            raise ValueError(f"PeakMemory measures 'cpu' or 'cuda' devices, got {self.device}")
        self.method = ("torch.cuda.max_memory_allocated" if self.device.type == "cuda"
                       else "TorchDispatchMode live-storage tracking")
        self.peak_bytes: int | None = None
        self._mode: _LiveTensorBytes | None = None

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            self._mode = _LiveTensorBytes().__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = int(torch.cuda.max_memory_allocated(self.device) - self._start)
        else:
            self._mode.__exit__(*exc)
            self.peak_bytes = int(self._mode.peak)


@dataclass
class StepCost:
    """Cost of one training step: parameters, seconds per step (median), peak bytes, whether it fits."""

    params: int
    step_time_s: float | None
    peak_bytes: int | None
    oom: bool
    device: str
    method: str

    def as_dict(self) -> dict:
        return asdict(self)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step, steps: int, device: torch.device) -> float | None:
    """Median seconds of ``steps`` calls of ``step(i)``."""
    times = []
    for i in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        step(i + 1)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) if times else None


def step_cost(make_model: Callable[[], torch.nn.Module], data, weighting, batch_size: int = 8,
              device: str = "auto", steps: int = 3, lr: float = 1e-4,
              memory_limit_bytes: int | None = None) -> StepCost:
    """Build a model, take one training step under :class:`PeakMemory` (model, gradients, Adam
    state and activations all count), then time ``steps`` more steps without the meter.

    A CUDA out-of-memory error, or a peak above ``memory_limit_bytes`` (e.g. LibMTL's 24 GB
    RTX 3090), gives ``oom=True``.
    """
    dev = resolve_device(device)
    batch = to_device(next(iter(data.loader("train", batch_size, shuffle=True))), dev)
    rule, meter, params, state = PlainStep(), PeakMemory(dev), 0, {}
    weighting.reset()

    def one_step(i):
        rule.step(state["model"], data, batch, weighting, state["opt"],
                  StepInfo(step=i, next_batch=lambda split: batch))

    try:
        with meter:
            model = make_model()
            params = sum(p.numel() for p in model.parameters())
            state["model"] = model.to(dev).train()
            state["opt"] = torch.optim.Adam(list(model.parameters()) + list(weighting.parameters()), lr=lr)
            one_step(0)
        if memory_limit_bytes is not None and meter.peak_bytes > memory_limit_bytes:
            return StepCost(params, None, meter.peak_bytes, True, str(dev), meter.method)
        seconds = _timed(one_step, steps, dev)
    except torch.cuda.OutOfMemoryError:
        state.clear()
        torch.cuda.empty_cache()
        return StepCost(params, None, None, True, str(dev), meter.method)
    return StepCost(params, seconds, meter.peak_bytes, False, str(dev), meter.method)
