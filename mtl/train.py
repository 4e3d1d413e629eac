"""One training loop for every method: forward, per-task losses, weighting, step, evaluation, history.

The loop calls a :class:`StepRule` (how one step is made) and a weighting (how losses become
gradients) through their contracts only; curve, simplex, bilevel and ConsMTL variants are other
step rules or weightings, never branches here.

**Dry mode** (``MTL_DRY_RUN=1``, what ``mtl-reproduce --dry-run`` sets): every :func:`fit` builds
everything as usual but trains one epoch of one step and evaluates one batch per split, and records
the step's time with the planned epochs and steps (``info["dry_run"]``, and one JSON line appended to
``$MTL_DRY_RUN_LOG`` when set) so that the full cost can be estimated. Nothing else changes.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from .checks import check_choice, check_count, check_positive
from . import distributed
from .data import DataBundle, MultiInputBundle
from .jacobian import relabel
from .metrics import relative_improvements
from .models import MultiTaskModel
from .tasks import labeled, present, select, task_losses
from .weighting import StepContext, Weighting
from .weighting._present import restricted
from .weighting.gradient import ROW_PATHS as ENGINE_PATHS

PROTOCOLS = ("last", "best_val", "mean_last_k")
DIVERGENCE_RATIO = 1e4     # a task's epoch-mean training loss above this × its first epoch's: diverged
DIVERGENCE_ABSOLUTE = 1e12  # ... or above this value at any epoch
DRY_RUN, DRY_RUN_LOG = "MTL_DRY_RUN", "MTL_DRY_RUN_LOG"   # environment variables of the dry mode
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}   # TrainConfig.amp -> autocast dtype


def dry_run() -> bool:
    """Whether the dry mode is on (``MTL_DRY_RUN`` set to anything but ``""`` or ``"0"``)."""
    return os.environ.get(DRY_RUN, "") not in ("", "0")


def log_dry_run(entry: dict) -> None:
    """Append ``entry`` as one JSON line to ``$MTL_DRY_RUN_LOG`` (if set); one short write, so
    concurrent workers appending to the same file do not interleave."""
    path = os.environ.get(DRY_RUN_LOG)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(entry) + "\n")


@dataclass
class TrainConfig:
    """Optimisation and evaluation settings (Adam with an optional step schedule, as the seeds use)."""

    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_step: int | None = None          # StepLR step size in epochs (None: constant lr)
    lr_gamma: float = 0.5
    eval_protocol: str = "last"         # last | best_val | mean_last_k
    eval_k: int = 3
    seed: int = 0
    device: str = "auto"                # auto | cpu | cuda | cuda:N
    progress: bool = False
    max_steps_per_epoch: int | None = None
    steps_per_epoch: int | None = None  # exactly this many steps per epoch, cycling the reshuffled training set
                                        # (a fixed step budget whatever the data size); None: one pass
    engine: str = "auto"                # how gradient methods make per-task rows: auto | batched | loop (speed only)
    amp: str | None = None              # mixed precision: None | "bf16" | "fp16" (autocast forward; fp16 adds a
                                        # GradScaler; per-task rows unscaled, Gramians in float64)

    def __post_init__(self):
        """Every field checked here, so a wrong value fails now with its name, not deep inside torch."""
        check_choice("eval_protocol", self.eval_protocol, PROTOCOLS)
        for k in ("epochs", "batch_size", "eval_k"):
            check_count(k, getattr(self, k), strict=True)
        for k in ("lr_step", "max_steps_per_epoch", "steps_per_epoch"):
            if getattr(self, k) is not None:
                check_count(k, getattr(self, k), strict=True)
        if self.steps_per_epoch is not None and self.max_steps_per_epoch is not None:
            raise ValueError("give steps_per_epoch (a fixed number of steps) or max_steps_per_epoch (a cap on one "
                             f"pass), not both; got {self.steps_per_epoch} and {self.max_steps_per_epoch}")
        check_count("seed", self.seed, minimum=0, strict=True)
        check_positive("lr", self.lr, strict=True)
        check_positive("lr_gamma", self.lr_gamma, strict=True)
        check_positive("weight_decay", self.weight_decay, allow_zero=True, strict=True)
        check_choice("engine", self.engine, ENGINE_PATHS)
        if self.amp is not None:
            check_choice("amp", self.amp, (None, *AMP_DTYPES))
        if not isinstance(self.device, str):
            raise ValueError(f"device must be a string (auto | cpu | cuda | cuda:N), got {self.device!r}")
        if not isinstance(self.progress, bool):
            raise ValueError(f"progress must be True or False, got {self.progress!r}")


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for but CUDA is not available; use 'cpu' or 'auto'")
    return dev


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_device(obj, device: torch.device):
    if isinstance(obj, dict):                              # a TaskInputs stays one
        return type(obj)((k, to_device(v, device)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj.to(device) if hasattr(obj, "to") else obj


def check_finite(losses: torch.Tensor, tasks: list[str], epoch: int, step: int) -> None:
    bad = [(t, float(v)) for t, v in zip(tasks, losses.detach()) if not math.isfinite(float(v))]
    if bad:
        raise FloatingPointError(f"non-finite loss at epoch {epoch}, step {step}: " +
                                 ", ".join(f"task {t!r} = {v}" for t, v in bad))


class DivergedError(FloatingPointError):
    """Training exploded (see :func:`check_divergence`); nothing of the run is recorded."""


def check_divergence(mean_losses: torch.Tensor, first: torch.Tensor, tasks: list[str], epoch: int) -> None:
    """Raise :class:`DivergedError` if a task's epoch-mean training loss exceeds
    ``DIVERGENCE_RATIO`` × its first epoch's mean (when that is positive) or ``DIVERGENCE_ABSOLUTE``."""
    for t, v, v0 in zip(tasks, mean_losses.tolist(), first.tolist()):
        if v > DIVERGENCE_ABSOLUTE or (v0 > 0 and v > DIVERGENCE_RATIO * v0):
            rule = (f"above {DIVERGENCE_ABSOLUTE:g}" if v > DIVERGENCE_ABSOLUTE else
                    f"above {DIVERGENCE_RATIO:g} × its epoch-0 mean {v0:.3g}")
            raise DivergedError(f"training diverged: task {t!r} has mean training loss {v:.3g} at epoch {epoch}, "
                                f"{rule}; nothing is recorded (lower lr, check the data)")


@dataclass(frozen=True)
class StepInfo:
    """Where a step rule is in training, and what the loop offers it (the step-rule contract's context).

    ``next_batch(split)`` draws another batch of a split (bilevel methods ask for "val", three-batch
    methods for "train"); ``probes`` are diagnostics called after the backward, before the optimizer step.
    ``sync``: the run's :class:`mtl.distributed.DataParallel` (None: one process); ``amp`` the autocast
    dtype name (None: off) on ``device_type``, ``scaler`` fp16's ``torch.amp.GradScaler``.
    """

    epoch: int = 0
    step: int = 0
    next_batch: Callable[[str], tuple] | None = None
    probes: tuple = ()
    sync: object | None = None
    amp: str | None = None
    device_type: str = "cpu"
    scaler: object | None = None

    def autocast(self):
        """The forward passes' context: autocast to ``amp``'s dtype, or nothing."""
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=AMP_DTYPES[self.amp])


class PlainStep:
    """One forward pass, the weighting's backward, one optimiser step. Supports data parallelism (each
    forward on this rank's shard) and mixed precision (forward passes under autocast)."""

    data_parallel = mixed_precision = True

    def step(self, model: MultiTaskModel, data: DataBundle, batch, weighting: Weighting, optimizer,
             info: StepInfo) -> dict:
        x, y = batch
        with info.autocast():
            z = model.encode(x)
            losses = task_losses(model, data, model.decode(z), y)
        rep = z if weighting.needs == "rep" else None
        check_finite(losses, model.tasks, info.epoch, info.step)

        def rep_loss_fn(b):
            bx, by = b
            with info.autocast():
                zb = model.encode(bx)
                return task_losses(model, data, model.decode(zb), by), zb

        def shard_loss_fn(b):
            return rep_loss_fn(b)[0]

        loss_fn = shard_loss_fn if info.sync is None else (lambda b: info.sync.global_losses(shard_loss_fn(b)))
        ctx = StepContext(model=model, batch=batch, rep=rep, loss_fn=loss_fn, shard_loss_fn=shard_loss_fn,
                          rep_loss_fn=rep_loss_fn, epoch=info.epoch, step=info.step, next_batch=info.next_batch,
                          probes=info.probes, present=present(model, y), sync=info.sync)
        if ctx.present is not None and ctx.sync is not None:
            raise ValueError("partial labels (a batch with a task mask) are not supported with distributed=True: "
                             "each rank would see only its shard's mask; train them on one process")
        if ctx.present is not None and not bool(ctx.present.any()):   # no label of any task: nothing to train
            return {"losses": losses.detach(), "present": ctx.present}
        out = {"losses": losses.detach(), **weighted_step(weighting, losses, ctx, optimizer, info.scaler)}
        return out if ctx.present is None else {**out, "present": ctx.present}


def weighted_step(weighting: Weighting, losses: torch.Tensor, ctx: StepContext, optimizer, scaler=None) -> dict:
    """One optimisation step of ``weighting`` on the task ``losses`` [T]: zero the gradients, the
    model's regularisation term (if any), the weighting's backward, the probes of ``ctx``, the
    optimiser step, the weighting's ``after_step``. Returns the weighting's logs (``weights`` [T]
    when defined; ``probes`` when a probe recorded).

    With ``ctx.present`` set (a batch that lacks some tasks' labels) the backward and ``after_step``
    run on the present tasks alone (:func:`mtl.weighting._present.restricted`): absent tasks get no
    gradient, no state update and weight 0 in the logs.

    The loop's own step (:class:`PlainStep`), and how to use a weighting inside another training
    loop (a PyTorch Lightning ``training_step`` with manual optimisation, say): build
    ``StepContext(model, batch, rep=z)`` from the forward (``z = model.encode(x)``: keep it for
    "rep" mode), add ``loss_fn=`` / ``next_batch=`` for methods that need them, call this, and call
    ``weighting.end_epoch(epoch, mean_losses)`` at the end of each epoch.

    Data parallelism (``ctx.sync``, :mod:`mtl.distributed`): the weighting gets the global batch's
    losses (returned as ``losses``) with this rank's gradients, the engine makes what must be global
    global, and the other gradients are averaged over ranks before the probes and the step.
    Loss scaling (``scaler``, fp16's ``torch.amp.GradScaler``, scale s): an engine method's losses carry
    s-scaled gradients (``ctx.loss_scale``; the engine unscales J, so every value a method reads is
    unscaled) and its own parameters, whose gradients come from loss values only, are scaled after;
    a custom backward runs unscaled and all its gradients are scaled after. The scaler then unscales
    (before the probes), skips a step with inf/NaN gradients and updates s.
    """
    optimizer.zero_grad(set_to_none=True)
    enabled = scaler is not None and scaler.is_enabled()   # scaler.scale(1) is s (and starts the scaler)
    scale = float(scaler.scale(torch.ones((), device=losses.device))) if enabled else 1.0
    engine = weighting.info.needs != "custom"                  # a method the engine computes unscales J itself
    out = {}
    if ctx.sync is not None:
        losses = ctx.sync.global_losses(losses)                 # [T] the global batch's values
        out["losses"] = losses.detach()
    k = scale if engine else 1.0
    if k != 1:
        losses, ctx.loss_scale = relabel(losses, scale=k), k
    reg = ctx.model.regularization() if hasattr(ctx.model, "regularization") else None
    if reg is not None:
        (reg * k if k != 1 else reg).backward(retain_graph=True)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    with restricted(weighting, losses, ctx) as r:          # every task present: r.losses, r.ctx are these
        logs = r.full_logs(weighting.backward(r.losses, r.ctx))
        if scale != 1:
            for p in (weighting.parameters() if engine else params):
                if p.grad is not None:
                    p.grad.mul_(scale)
        if ctx.sync is not None:
            ctx.sync.reduce_grads(params)
        if scaler is not None:
            scaler.unscale_(optimizer)
        records = [rec for rec in (probe(ctx, logs) for probe in ctx.probes) if rec]   # diagnostics, before the step
        if records:
            logs["probes"] = records
        with r.full_parameters(optimizer):
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
        weighting.after_step(r.ctx)
    return {**logs, **out}


@dataclass
class History:
    """Per-epoch records and the final metrics chosen by the evaluation protocol."""

    epochs: list[dict] = field(default_factory=list)
    final: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)


@torch.no_grad()
def evaluate(model: MultiTaskModel, data: DataBundle, split: str, batch_size: int, device,
             max_batches: int | None = None) -> dict:
    """{task: {metric: value}} on a whole split (model in eval mode), or its first ``max_batches`` batches."""
    model.eval()
    meters = {t: data.task(t).make_meter() for t in model.tasks}
    for i, (x, y) in enumerate(data.loader(split, batch_size)):
        if max_batches is not None and i >= max_batches:
            break
        x, y = to_device(x, device), to_device(y, device)
        preds = model(x)
        for t in model.tasks:
            if t not in y:                                 # multi-input: this task's split is exhausted
                continue
            mask = labeled(y, t)                           # partial labels: unlabelled samples are skipped
            if mask is None:
                meters[t].update(preds[t], y[t])
            elif bool(mask.any()):
                meters[t].update(select(preds[t], mask), select(y[t], mask))
    model.train()
    return {t: m.compute() for t, m in meters.items()}


def batches(data: DataBundle, split: str, batch_size: int, seed: int, device) -> Iterator:
    """An endless stream of shuffled batches of ``split`` (reshuffled every pass)."""
    k = 0
    while True:
        for b in data.loader(split, batch_size, shuffle=True, seed=seed + 7919 * k,
                             drop_last=data.n_samples(split) > batch_size):
            yield to_device(b, device)
        k += 1


def select_final(records: list[dict], protocol: str, k: int, tasks: list[str], data: DataBundle) -> dict:
    """Test metrics by protocol: the last epoch, the epoch best on validation Δ (mean relative
    improvement over the first epoch), or the mean of the last ``k`` epochs (Nash-MTL / FAMO)."""
    if protocol == "last":
        return records[-1]["test"]
    if protocol == "mean_last_k":
        last = records[-k:]
        return {t: {m: float(np.mean([r["test"][t][m] for r in last])) for m in last[-1]["test"][t]} for t in tasks}
    def score(r):
        vals = []
        for t in tasks:
            dirs = data.task(t).primary_directions()
            base = {m: records[0]["val"][t][m] or 1e-12 for m in dirs}
            vals += list(relative_improvements(r["val"][t], base, dirs).values())
        return float(np.mean(vals))
    return max(records, key=score)["test"]


def steps_per_epoch(n_train: int, config: TrainConfig) -> int:
    """Optimisation steps in one epoch: ``config.steps_per_epoch`` when set, else one pass over ``n_train``
    samples in full batches (at least 1), capped by ``config.max_steps_per_epoch``."""
    if config.steps_per_epoch:
        return config.steps_per_epoch
    steps = max(1, n_train // config.batch_size) if n_train > config.batch_size else 1
    return min(steps, config.max_steps_per_epoch) if config.max_steps_per_epoch else steps


def check_multi_input(model, data: DataBundle) -> None:
    """Multi-input data (:class:`mtl.data.MultiInputBundle`) needs a model whose encoder is shared as a
    whole (``MultiTaskModel``'s own encode/decode, e.g. "hps"): an architecture with its own
    per-task routing reads one common input."""
    if not isinstance(data, MultiInputBundle):
        return
    if type(model).encode is not MultiTaskModel.encode or type(model).decode is not MultiTaskModel.decode:
        raise ValueError(f"dataset {data.name!r} has one input domain per task (multi-input); architecture "
                         f"{type(model).__name__} routes one common input through its own encode/decode. Use "
                         "'hps' (a shared encoder with one head per task), which runs the encoder on each task's input")


def _data_parallel(weighting: Weighting, step_rule, device: torch.device, allow_inexact: bool):
    """The run's :class:`mtl.distributed.DataParallel`, after checking that the method and the step rule are exact."""
    info = weighting.info
    if not info.ddp_exact and not allow_inexact:
        raise ValueError(f"weighting {info.name!r} is not exact under data parallelism ({info.ddp_note}); "
                         "pass allow_inexact=True to train it so anyway, or train on one process")
    if not getattr(step_rule, "data_parallel", False):
        raise ValueError(f"step rule {type(step_rule).__name__} does not support distributed=True (PlainStep does)")
    return distributed.init(device)


def reduction_info() -> dict:
    """What fixes CPU reduction order, recorded by every run: CPU results are bit-identical for the same
    seed, torch version and thread count."""
    return {"torch": torch.__version__, "threads": torch.get_num_threads()}


def fit(model: MultiTaskModel, data: DataBundle, weighting: Weighting, config: TrainConfig,
        step_rule=None, probes=(), *, distributed: bool = False, allow_inexact: bool = False,
        sync_batchnorm: bool = False) -> History:
    """Train ``model`` on ``data`` with ``weighting``; evaluates val and test after every epoch.

    ``probes`` (e.g. :class:`mtl.diagnostics.GradientProbe`) are called inside each step after the
    backward and before the optimizer step; their records go to the epoch record's ``probes``.
    A non-finite loss raises ``FloatingPointError`` at its step; an exploding epoch-mean training
    loss (see :func:`check_divergence`) raises :class:`DivergedError` at the end of its epoch, so a
    diverged run is never recorded as finished.

    ``distributed=True`` (under ``torchrun --nproc-per-node N``): one run on N processes, each on its
    shard of a global batch of N × ``config.batch_size`` samples, taking exactly the step one process takes
    on the whole batch (:mod:`mtl.distributed`); a method whose registry entry declares
    ``ddp_exact=False`` is refused unless ``allow_inexact``. ``sync_batchnorm``: BatchNorm layers become
    ``torch.nn.SyncBatchNorm`` (statistics of the global batch; CUDA only, as torch's; without it each
    rank normalises by its shard's, the run is not the one-process run, and a warning says so). Every
    rank evaluates the whole splits.
    """
    missing = [t for t in model.tasks if t not in {x.name for x in data.tasks}]
    if missing:
        raise ValueError(f"model tasks {missing} are not tasks of dataset {data.name!r}")
    check_multi_input(model, data)
    step_rule = step_rule or PlainStep()
    device = resolve_device(config.device)
    sync = _data_parallel(weighting, step_rule, device, allow_inexact) if distributed else None
    if sync_batchnorm and sync is None:
        raise ValueError("sync_batchnorm=True needs distributed=True (one process has the whole batch's statistics)")
    if sync_batchnorm and device.type != "cuda":
        raise ValueError(f"sync_batchnorm=True needs CUDA: torch's SyncBatchNorm does not run on {device.type!r}")
    if sync is not None and not sync_batchnorm and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                                                       for m in model.modules()):
        warnings.warn("distributed=True with BatchNorm layers normalises each rank by its shard's statistics: the "
                      "run is not the one-process run (pass sync_batchnorm=True on CUDA)", stacklevel=2)
    if config.amp is not None and not getattr(step_rule, "mixed_precision", False):
        raise ValueError(f"amp={config.amp!r}: step rule {type(step_rule).__name__} does not support mixed "
                         "precision (PlainStep does)")
    if sync is not None and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    seed_everything(config.seed)
    if sync_batchnorm:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device).train()
    if sync is not None:
        sync.broadcast_module(model)                       # the same start on every rank
    weighting.reset()
    weighting.configure(engine=config.engine)
    params = list(model.parameters()) + list(weighting.parameters())
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.lr_step, config.lr_gamma) if config.lr_step else None
    scaler = torch.amp.GradScaler(device.type) if config.amp == "fp16" else None
    world = 1 if sync is None else sync.world
    streams = {}

    def next_batch(split: str):
        if split not in streams:                           # the global batch's stream; each rank takes its shard
            streams[split] = batches(data, split, config.batch_size * world, config.seed + 1 + len(streams), device)
        return next(streams[split]) if sync is None else sync.shard(next(streams[split]))

    steps = steps_per_epoch(data.n_samples("train"),        # steps of the global batch
                            config if world == 1 else replace(config, batch_size=config.batch_size * world))
    dry = dry_run()
    planned = {"epochs": config.epochs, "steps_per_epoch": steps}
    epochs, steps, eval_batches = (1, 1, 1) if dry else (config.epochs, steps, None)
    hist = History(info={"config": asdict(config), "device": str(device), "tasks": model.tasks,
                         "weighting": repr(weighting), "n_params": sum(p.numel() for p in model.parameters()),
                         **reduction_info()})
    bar = tqdm(total=epochs * steps, disable=not config.progress, leave=False, desc="train")
    start = time.perf_counter()
    first_losses = None                                    # [T] epoch 0's mean training losses
    for epoch in range(epochs):
        t0 = time.perf_counter()
        if hasattr(model, "start_epoch"):
            model.start_epoch(epoch, epochs)
        sums, weights, probe_records = torch.zeros(len(model.tasks)), [], []
        counts = torch.zeros(len(model.tasks))             # steps whose batch labels each task
        for s in range(steps):
            logs = step_rule.step(model, data, next_batch("train"), weighting, optimizer,
                                  StepInfo(epoch=epoch, step=epoch * steps + s, next_batch=next_batch,
                                           probes=tuple(probes), sync=sync, amp=config.amp,
                                           device_type=device.type, scaler=scaler))
            probe_records += logs.get("probes", [])
            sums += logs["losses"].cpu()
            counts += 1 if logs.get("present") is None else logs["present"].float().cpu()
            if "weights" in logs:
                weights.append(logs["weights"].float().cpu())
            bar.update(1)
        if dry:                                            # the one step's time (CUDA work included)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            step_s = time.perf_counter() - t0
        mean_losses = sums / steps if bool((counts == steps).all()) else sums / counts.clamp_min(1)
        first_losses = mean_losses if first_losses is None else first_losses
        check_divergence(mean_losses, first_losses, model.tasks, epoch)
        weighting.end_epoch(epoch, mean_losses)
        if scheduler:
            scheduler.step()
        rec = {"epoch": epoch, "train_loss": dict(zip(model.tasks, mean_losses.tolist())),
               "weights": dict(zip(model.tasks, torch.stack(weights).mean(0).tolist())) if weights else {},
               "time": time.perf_counter() - t0,
               "val": evaluate(model, data, "val", config.batch_size * 2, device, eval_batches),
               "test": evaluate(model, data, "test", config.batch_size * 2, device, eval_batches)}
        if probes:
            rec["probes"] = probe_records
        hist.epochs.append(rec)
    bar.close()
    hist.info["train_time"] = time.perf_counter() - start
    if weighting.engine_info():                           # the path the cost model chose (speed only)
        hist.info["engine"] = weighting.engine_info()
    if sync is not None:                                  # world size and bytes sent per step
        hist.info["distributed"] = sync.report()
    hist.final = select_final(hist.epochs, config.eval_protocol, config.eval_k, model.tasks, data)
    if dry:
        est = step_s * planned["epochs"] * planned["steps_per_epoch"]
        hist.info["dry_run"] = {"step_s": step_s, **planned, "estimate_s": est}
        log_dry_run({**hist.info["dry_run"], "dataset": data.name, "tasks": model.tasks, "device": str(device)})
    return hist
