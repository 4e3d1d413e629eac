"""The contract between the training loop and every weighting method."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..registry import MethodInfo


@dataclass
class StepContext:
    """What a weighting may use during one optimisation step; the loop fills it for every method alike.

    ``rep`` is the shared representation with its graph (for "rep" mode), ``loss_fn(batch)`` runs a
    forward pass and returns the task losses [T] (``rep_loss_fn(batch)``, when set, returns them with
    that batch's shared representation), ``next_batch(split)`` draws another batch of a
    split (bilevel methods ask for "val"; three-batch methods ask for "train"). ``probes`` are
    diagnostics the step calls after the backward and before the optimizer step (see
    :mod:`mtl.diagnostics`); empty unless asked for.

    ``present`` (bool [T] over ``model.tasks``, or None: all) marks the tasks the batch labels (partial
    labels, see :mod:`mtl.tasks`); the loop then runs the step on those tasks alone
    (:mod:`mtl.weighting._present`), so a method never sees it set: it sees ``tasks``, the names of
    the losses it gets (``task_names()``), instead.

    Data parallelism and mixed precision (:func:`mtl.train.weighted_step` sets them): ``sync`` is the
    :class:`mtl.distributed.DataParallel` of the run (None: one process); the losses a method gets and
    ``loss_fn``'s then have the global batch's values and this rank's gradients, ``shard_loss_fn`` gives
    this rank's own losses (for functional passes). ``loss_scale`` s: the losses' gradients (so J) are
    s-scaled (fp16); the engine unscales J before aggregating and writes s × the update.

    Outside :func:`mtl.train.fit` (another training loop) only ``model`` is required, with ``rep``
    for "rep" mode; a method that calls a ``loss_fn`` or ``next_batch`` left out (FAMO, bilevel
    and three-batch methods) raises an error saying which one to pass.
    """

    model: torch.nn.Module
    batch: tuple = ()
    rep: torch.Tensor | None = None
    loss_fn: Callable[[tuple], torch.Tensor] | None = None
    next_batch: Callable[[str], tuple] | None = None
    epoch: int = 0
    step: int = 0
    extras: dict = field(default_factory=dict)
    probes: tuple = ()
    rep_loss_fn: Callable[[tuple], tuple] | None = None
    present: torch.Tensor | None = None
    tasks: list[str] | None = None
    sync: object | None = None
    loss_scale: float = 1.0
    shard_loss_fn: Callable[[tuple], torch.Tensor] | None = None

    def task_names(self) -> list[str]:
        """The tasks the step's losses are of, in order: ``model.tasks``, or the present ones of a
        partial batch (inside :func:`mtl.weighting._present.restricted`)."""
        return list(self.model.tasks) if self.tasks is None else list(self.tasks)

    def __post_init__(self):
        for name, what in (("loss_fn", "batch -> task losses [T]"), ("next_batch", 'split ("train" | "val") -> batch')):
            if getattr(self, name) is None:
                setattr(self, name, _not_given(name, what))
        if self.shard_loss_fn is None:
            self.shard_loss_fn = self.loss_fn


def _not_given(name: str, what: str) -> Callable:
    def missing(*args):
        raise ValueError(f"this weighting calls StepContext.{name} ({what}), which was not given: pass "
                         f"StepContext(..., {name}=...) (mtl.train.fit always does)")
    return missing


class Weighting:
    """Turns per-task losses into gradients on every trainable parameter of the model.

    ``needs`` tells the loop whether it must keep the shared representation ("rep") for this
    method; nothing else about a method is visible to the loop. (What a method computes its step
    from is its registry declaration ``info.needs``, set by :func:`mtl.weighting.register`.)
    """

    needs: str = "losses"
    info: MethodInfo = MethodInfo(name="weighting", label="Weighting", needs="custom")

    def parameters(self) -> list[torch.Tensor]:
        """Learnable parameters of the method itself (e.g. UW's log-variances), optimised with the model."""
        return []

    def reset(self) -> None:
        """Forget all state (a fresh run)."""

    def backward(self, losses: torch.Tensor, ctx: StepContext) -> dict:
        """Accumulate ``.grad`` for the step; returns logs (at least ``weights`` [T] when defined)."""
        raise NotImplementedError

    def configure(self, *, engine: str = "auto") -> None:
        """Execution settings from the loop (``TrainConfig.engine``: how per-task gradient rows are
        made, see :class:`mtl.weighting.gradient.RowPath`); they change speed, never a result."""

    def engine_info(self) -> dict:
        """What the run records in ``info["engine"]`` about how the steps were computed ({}: nothing)."""
        return {}

    def after_step(self, ctx: StepContext) -> None:
        """Called after ``optimizer.step()`` (FAMO updates its logits here)."""

    def end_epoch(self, epoch: int, mean_losses: torch.Tensor) -> None:
        """Called once per epoch with the epoch's mean training losses [T] (DWA, GradNorm...)."""

    def aggregate(self, J: torch.Tensor, losses: torch.Tensor | None = None) -> torch.Tensor:
        """The update direction [d] for a given Jacobian J [T, d] (see :func:`mtl.weighting.aggregate`)
        from the method's current state, computed on a deep copy: ``self`` is left unchanged."""
        if J.dim() != 2:
            raise ValueError(f"J must be a matrix [T, d], got shape {tuple(J.shape)}")
        if losses is None:
            losses = torch.ones(J.shape[0], dtype=J.dtype, device=J.device)
        return copy.deepcopy(self)._aggregate(J, losses)

    def _aggregate(self, J: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """``aggregate``'s direction; runs on a copy, so it may step or reset the state."""
        raise NotImplementedError(f"{type(self).__name__} does not define a direction from a Jacobian alone")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class LossWeighting(Weighting):
    """A method that only reweights losses: ``backward`` differentiates Σ_t w_t L_t once."""

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def backward(self, losses: torch.Tensor, ctx: StepContext) -> dict:
        w = self.weights(losses)                      # [T]
        (w * losses).sum().backward()
        return {"weights": w.detach()}

    def _aggregate(self, J: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """Σ_t w_t g_t: the shared-parameter gradient that ``backward`` of Σ_t w_t L_t produces."""
        return self.weights(losses.detach()).detach().to(J.dtype) @ J    # [d]
