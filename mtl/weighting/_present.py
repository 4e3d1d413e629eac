"""Partial labels: one step of any weighting on the tasks a batch labels, the others left untouched.

When a batch labels only some tasks (``StepContext.present``, bool [T], from the batch's mask, see
:mod:`mtl.tasks`), the step is the method's step **on the present tasks alone**: the loop calls
``backward`` and ``after_step`` inside :func:`restricted`, which hands the method the T' present
losses, a context whose ``loss_fn`` / ``rep_loss_fn`` return those tasks' losses and whose
``task_names()`` lists only those tasks, and the method's per-task state cut to their rows. So an absent task
has no row in J (MGDA, Nash-MTL... aggregate over the present tasks only, never over a zero row),
no weight (0 in the logged weights) and no state update: afterwards its rows of every per-task
state (loss histories, EMAs of gradients, FAMO's logits and their Adam moments, UW's log-variances
and their gradient) are as they were, and the present rows hold the step's update.

This is done once, here, for every method: per-task state is found generically, as the tensors and
arrays reachable from the method's attributes (lists, tuples, dicts and inner optimisers' states
included, never a model) whose first dimension (and second, for a [T, T] matrix) has T entries.
State first made during a restricted step (a first step that lacks a task) gets zero rows for the
absent tasks (a fresh EMA, logit, moment), and a parameter sized then gets its initial fill.
The method's own parameters are stepped by the model's optimiser at full size, their absent rows
(and those rows of the optimiser's moments) put back after the step; an absent task's head gets
no gradient at all (``None``), which the optimiser skips. Not covered: a method that keeps a
per-task quantity in a plain Python list of numbers (none of the registered ones does).
"""
from __future__ import annotations

import dataclasses
from contextlib import contextmanager

import numpy as np
import torch
from torch.nn.parameter import UninitializedParameter

from .base import StepContext, Weighting


def _rows(x) -> int | None:
    """The first dimension of a tensor or array state entry (None for anything else or a scalar)."""
    if isinstance(x, UninitializedParameter):
        return None
    if isinstance(x, (torch.Tensor, np.ndarray)) and x.ndim >= 1:
        return int(x.shape[0])
    return None


def _walk(obj, path=()):
    """(path, value, setter) of every tensor / array reachable from ``obj``'s attributes."""
    items = vars(obj).items() if not isinstance(obj, (dict, list, tuple)) else \
        (obj.items() if isinstance(obj, dict) else enumerate(obj))
    for k, v in list(items):
        p = path + (k,)
        if isinstance(obj, tuple):
            setter = None
        elif isinstance(obj, (dict, list)):
            setter = (lambda o, key: lambda val: o.__setitem__(key, val))(obj, k)
        else:
            setter = (lambda o, key: lambda val: setattr(o, key, val))(obj, k)
        if isinstance(v, (torch.Tensor, np.ndarray)):
            yield p, v, setter
        elif isinstance(v, (dict, list, tuple)):
            yield from _walk(v, p)
        elif isinstance(v, Weighting):                       # a wrapped method (URL's base, ConsMTL's solver)
            yield from _walk(v, p)
        elif isinstance(v, torch.optim.Optimizer):
            yield from _walk({i: s for i, s in enumerate(v.state.values())}, p + ("state",))


def _cut(x, keep, T: int):
    """Rows ``keep`` of x (and columns, for a [T, T] matrix)."""
    idx = keep if isinstance(x, torch.Tensor) else keep.cpu().numpy()
    if isinstance(x, torch.Tensor):
        idx = idx.to(x.device)
    x = x[idx]
    return x[:, idx] if x.ndim >= 2 and x.shape[1] == T else x


def _put(full, part, keep, T: int):
    """``full`` with rows (and [T, T] columns) ``keep`` set to ``part``, in place."""
    if isinstance(full, torch.Tensor):
        idx = keep.to(full.device)
        if full.ndim >= 2 and full.shape[1] == T and part.shape[1] == len(keep):
            full[idx.view(-1, 1), idx] = part.to(full.dtype)
        else:
            full[idx] = part.to(full.dtype)
    else:
        idx = keep.cpu().numpy()
        if full.ndim >= 2 and full.shape[1] == T and part.shape[1] == len(keep):
            full[np.ix_(idx, idx)] = part
        else:
            full[idx] = part
    return full


def _pad(part, keep, T: int, old=None, fill=0.0):
    """A T-row version of ``part`` (T' rows): ``old``'s rows where given, else ``fill``."""
    if old is not None and old.shape[1:] == part.shape[1:]:
        full = old.detach().clone() if isinstance(old, torch.Tensor) else np.array(old, copy=True)
        return _put(full, part, keep, T)
    square = part.ndim >= 2 and part.shape[1] == len(keep) == part.shape[0]
    shape = (T, T, *part.shape[2:]) if square else (T, *part.shape[1:])
    if isinstance(part, torch.Tensor):
        full = torch.full(shape, fill, dtype=part.dtype, device=part.device)
    else:
        full = np.full(shape, fill, dtype=part.dtype)
    return _put(full, part, keep, T)


class Restriction:
    """One step of ``weighting`` restricted to the present tasks (see the module docstring); made by
    :func:`restricted`. ``losses`` / ``ctx`` are what ``backward`` and ``after_step`` get;
    :meth:`full_parameters` gives the method's own parameters their full size around the
    optimiser's step; :meth:`full_logs` puts the logged weights back to [T]."""

    def __init__(self, weighting, losses: torch.Tensor, ctx: StepContext):
        self.weighting, self.losses, self.ctx, self.keep = weighting, losses, ctx, None
        if ctx.present is None:
            return
        T = self.T = losses.numel()
        present = torch.as_tensor(ctx.present).reshape(-1).bool()
        if present.numel() != T:
            raise ValueError(f"ctx.present has {present.numel()} entries for {T} task losses")
        keep = self.keep = present.nonzero().view(-1)                          # [T']
        if keep.numel() == 0:
            raise ValueError("no task is labelled in this batch: such a step has nothing to train")
        tasks = [t for t, p in zip(ctx.model.tasks, present.tolist()) if p]
        base_loss, base_rep, base_shard = ctx.loss_fn, ctx.rep_loss_fn, ctx.shard_loss_fn

        def rep_loss_fn(b):
            L, z = base_rep(b)
            return L[keep.to(L.device)], z

        self.ctx = dataclasses.replace(ctx, tasks=tasks, present=None,
                                       loss_fn=lambda b: base_loss(b)[keep.to(losses.device)],
                                       shard_loss_fn=lambda b: base_shard(b)[keep.to(losses.device)],
                                       rep_loss_fn=None if base_rep is None else rep_loss_fn)
        self.losses = losses[keep.to(losses.device)]                            # [T']
        self._unset = {k for k, v in vars(weighting).items() if v is None}   # state not made yet
        self._saved = self._cut()

    def _cut(self) -> dict:
        """Cut every T-row state entry to rows ``keep``; {path: (object, full value, lazy)}."""
        saved, seen = {}, set()
        for path, v, setter in list(_walk(self.weighting)):
            if isinstance(v, UninitializedParameter):
                saved[path] = (v, None, True)
                continue
            if _rows(v) != self.T or id(v) in seen:
                continue
            seen.add(id(v))
            if isinstance(v, torch.Tensor):                  # in place: optimisers keep their reference
                full = v.data
                v.data = _cut(full, self.keep, self.T)
                saved[path] = (v, full, False)
            elif setter is not None:
                saved[path] = (None, v, False)
                setter(_cut(v, self.keep, self.T))
        return saved

    def _full(self, v, path) -> None:
        """Give tensor ``v`` (T' rows) back its T rows: the step's rows, the others as before."""
        obj, full, lazy = self._saved.get(path, (None, None, False))
        if obj is v and full is not None:
            v.data = _put(full, v.data, self.keep, self.T)
        else:                                                # made or replaced during the step
            fill = float(v.detach().reshape(-1)[0]) if lazy and v.numel() else 0.0
            v.data = _pad(v.data, self.keep, self.T, old=None if lazy else full, fill=fill)
        if v.grad is not None and _rows(v.grad) == len(self.keep):
            v.grad = _pad(v.grad, self.keep, self.T)

    @contextmanager
    def full_parameters(self, optimizer=None):
        """The method's own parameters (UW's log-variances, GradNorm's weights) at full size T inside,
        absent rows with a zero gradient, so that the model's ``optimizer`` steps them; their absent
        rows, and those rows of the optimiser's state for them (Adam's moments), are put back after
        the step, so they do not move; then cut again."""
        if self.keep is None:
            yield
            return
        params = {id(p) for p in self.weighting.parameters()}
        found = [(path, v) for path, v, _ in _walk(self.weighting) if id(v) in params and _rows(v) == len(self.keep)]
        for path, v in found:
            self._full(v, path)
        absent = torch.ones(self.T, dtype=torch.bool)
        absent[self.keep.cpu()] = False
        held = []                                            # (tensor, its absent rows before the step)
        for _, v in found:
            state = optimizer.state.get(v, {}) if optimizer is not None else {}
            for t in [v.data, *state.values()]:
                if isinstance(t, torch.Tensor) and t.ndim >= 1 and t.shape[0] == self.T:
                    held.append((t, t[absent.to(t.device)].clone()))
        try:
            yield
        finally:
            for t, rows in held:
                t[absent.to(t.device)] = rows
            for path, v in found:
                self._saved[path] = (v, v.data, False)
                v.data = _cut(v.data, self.keep, self.T)

    def close(self) -> None:
        """Write the step's rows back into the full state (absent rows as they were)."""
        if self.keep is None:
            return
        state = vars(self.weighting)
        made = [k for k in self._unset if k in state and state[k] is not None]
        if made:                                  # the method's first step: its state is made at full size later
            for k in made:
                if not any(id(v) in {id(p) for p in self.weighting.parameters()} for _, v, _ in _walk({k: state[k]})):
                    state[k] = None
        n, done = len(self.keep), set()
        for path, v, setter in list(_walk(self.weighting)):
            if _rows(v) != n or id(v) in done:
                continue
            done.add(id(v))
            if isinstance(v, torch.Tensor):
                self._full(v, path)
            elif setter is not None:
                setter(_pad(v, self.keep, self.T, old=self._saved.get(path, (None, None, False))[1]))

    def full_logs(self, logs: dict) -> dict:
        """``logs`` with ``weights`` [T'] put back to [T] (0 for the absent tasks)."""
        if self.keep is None or "weights" not in logs or logs["weights"].numel() == self.T:
            return logs
        w = logs["weights"].detach()
        return {**logs, "weights": _pad(w, self.keep.to(w.device), self.T)}


@contextmanager
def restricted(weighting, losses: torch.Tensor, ctx: StepContext):
    """A :class:`Restriction` of ``weighting``'s step to the tasks ``ctx.present`` marks (a pass-through,
    touching nothing, when it is None: every task labelled); the state is merged back on exit."""
    r = Restriction(weighting, losses, ctx)
    try:
        yield r
    finally:
        r.close()
