"""The shared base of gradient weightings: Jacobian in, one direction out, ``.grad`` written once.

A subclass implements one small method and declares which at registration (``needs``, see
:class:`~mtl.registry.MethodInfo`): ``gram_weights(G, losses) -> w [T]`` ("gramian": the weights
depend on the Gram matrix G = JJᵀ only; the direction is wᵀJ), ``track(jac, losses, ctx) -> (d [d] |
None, w [T])`` ("factored": per-task gradient vectors kept as state — DB-MTL, MoCo, ExcessMTL —
updated in place from ``jac`` without forming J), else ``weights(J, losses) -> w [T]`` or
``direction(J, losses, ctx) -> (d [d], w [T] | None)`` ("jacobian"). ``backward`` picks the
computation from that declaration and the mode through one table, :data:`ENGINE`: in "param" mode
G and Σ_t w_t g_t from one :class:`~mtl.jacobian.FactoredJacobian` (J never formed, no second
backward: the update is made from the rows already computed, parameter by parameter), else J by
:func:`mtl.jacobian.jacobian`; the result is applied:

* ``mode="param"``: J is w.r.t. the shared parameters; d is added to their ``.grad``.
* ``mode="rep"``: J is w.r.t. the shared representation ``ctx.rep`` (flattened, one row per
  task, MGDA-UB style); d is pushed through the encoder with one backward.
* Task-specific parameters (heads, and the method's own parameters) get the plain gradient of
  Σ_t L_t, each head its own task's gradient, as in the Nash-MTL/FairGrad codebases.
* ``loss_weights = True`` (GradNorm, AvgNorm) instead backpropagates Σ_t w_t L_t through the whole
  network, because those papers define w as loss weights.

How the rows are made — a vmapped backward or a loop of T ordinary ones — is measured once per run
and changes speed only (:class:`RowPath`, ``TrainConfig.engine``); separate task heads are
crossed by one backward that also gives the heads' gradients (:func:`mtl.jacobian.head_split`).

Scale convention of ``aggregate``/``direction``: the vector written into the shared ``.grad``;
equal weighting gives the plain sum Σ_t g_t, and each method keeps its own paper's scale
relative to that (e.g. MGDA's convex combination, CAGrad's 1/(1+c²) rescaling, Nash-MTL's clip).
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from ..checks import check_choice, check_count
from ..jacobian import (HALF, DenseJacobian, FactoredJacobian, digest, full_precision, head_split, jacobian,
                        split_parameters, write_grads)
from ..registry import MODES, MethodInfo
from ._linalg import gram
from .base import StepContext, Weighting

# (declared needs, mode) -> the step ``backward`` takes: the only place the computation is chosen.
ENGINE = {
    ("gramian", "param"): "_backward_gram",          # G = JJᵀ and wᵀJ from the same factors, J never formed
    ("factored", "param"): "_backward_factored",     # J's layer factors feed ``track``; J never formed
    ("jacobian", "param"): "_backward_jacobian",     # J w.r.t. the shared parameters
    ("gramian", "rep"): "_backward_jacobian",        # J w.r.t. the shared representation, for every kind
    ("factored", "rep"): "_backward_jacobian",
    ("jacobian", "rep"): "_backward_jacobian",
}

ROW_PATHS = ("auto", "batched", "loop")   # how the per-task rows are made (see RowPath)


class _Overflow(Exception):
    """A loss-scaled backward overflowed: no aggregation; NaN gradients make the GradScaler skip the step."""


class RowPath:
    """The cost model: how the per-task rows (J, or its factors) are made, chosen once per run.

    "batched": one vmapped backward of the T rows (``is_grads_batched``); "loop": T ordinary backward
    passes; "auto" (the default): on the first step both are made twice, alternately, and timed
    (this process's CPU time, so that other jobs on a shared machine do not decide; on CUDA the
    device is synchronised first); "loop" is taken only when it is faster **and** its rows
    are bit-identical to the batched ones on that step (compared by digest, never both held at
    once); otherwise "batched" — a fixed rule, so the choice changes the speed of a run, never its
    numbers. (Factored rows are used wherever a layer allows them, on either path; "rep" mode is a
    different method, never chosen for speed.) ``report()`` is what the run records in ``info["engine"]``.
    """

    def __init__(self, path: str = "auto"):
        check_choice("engine", path, ROW_PATHS)
        self.path = path
        self.chosen: str | None = None if path == "auto" else path
        self.ms: dict = {}
        self.identical: bool | None = None

    def make(self, build, fingerprint=digest):
        """``build(loop: bool)`` on the chosen path (choosing it first if "auto")."""
        if self.chosen is None:
            self._choose(build, fingerprint)
        return build(self.chosen == "loop")

    def _choose(self, build, fingerprint) -> None:
        times, prints, cuda = {"batched": [], "loop": []}, set(), False
        for _ in range(2):
            for name in times:
                t0, c0 = time.perf_counter(), time.process_time()
                rows = build(name == "loop")
                cuda = _sync(rows) or cuda
                times[name].append((time.perf_counter() - t0, time.process_time() - c0))
                prints.add(fingerprint(rows))
                del rows
        k = 0 if cuda else 1                                    # wall clock on CUDA, CPU time on CPU
        self.ms = {name: round(min(t[k] for t in v) * 1000, 3) for name, v in times.items()}
        self.identical = len(prints) == 1
        self.chosen = "loop" if self.identical and self.ms["loop"] < self.ms["batched"] else "batched"

    def report(self) -> dict:
        if self.path != "auto":
            return {"path": self.chosen, "set": True}
        return {} if self.chosen is None else {"path": self.chosen, "ms": self.ms, "identical": self.identical}


def _sync(rows) -> bool:
    """Wait for the rows' device; whether it is a CUDA device."""
    dev = getattr(rows, "device", None)
    if dev is not None and torch.device(dev).type == "cuda":
        torch.cuda.synchronize(dev)
        return True
    return False


def _rows_digest(rows) -> str:
    return rows.digest() if isinstance(rows, FactoredJacobian) else digest([rows])


class GradientWeighting(Weighting):
    """Per-task gradients → one update direction, in a mode of the declaration's ``info.modes``."""

    info: MethodInfo = MethodInfo(name="gradient", label="GradientWeighting", needs="jacobian", modes=MODES)
    default_mode: str = "param"
    loss_weights: bool = False

    def __init__(self, mode: str | None = None, chunk_size: int | None = None):
        mode = self.default_mode if mode is None else mode
        if mode not in self.info.modes:
            raise ValueError(f"{type(self).__name__} supports mode in {self.info.modes}, got {mode!r}")
        self.mode = mode
        self.chunk_size = None if chunk_size is None else check_count("chunk_size", chunk_size)
        self._rows = RowPath()

    def configure(self, *, engine: str = "auto") -> None:
        """How the per-task rows are made (:class:`RowPath`); a fresh choice for the next run."""
        self._rows = RowPath(engine)

    def engine_info(self) -> dict:
        return self._rows.report()

    def _row_path(self) -> RowPath:
        if not hasattr(self, "_rows"):                    # a subclass that skipped __init__
            self._rows = RowPath()
        return self._rows

    @property
    def needs(self) -> str:
        """Always "rep": "rep" mode differentiates w.r.t. it; "param" mode starts the batched backward
        there when the task heads are separate (:func:`mtl.jacobian.head_gradients`)."""
        return "rep"

    # ------------------------------------------------------------------ what subclasses implement
    def gram_weights(self, G: np.ndarray, losses: torch.Tensor):
        """Task weights w [T] from G = JJᵀ (float64 [T, T]) alone; the direction is wᵀJ."""
        raise NotImplementedError(f"{type(self).__name__} must implement gram_weights(), weights() or direction()")

    def weights(self, J: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """Task weights w [T] for J [T, d]. Default: ``track``'s weights (a state step) or ``gram_weights(JJᵀ)``."""
        if self.info.needs == "factored":
            return self.track(DenseJacobian(J), losses)[1]
        return torch.as_tensor(self.gram_weights(gram(J), losses), dtype=J.dtype, device=J.device)

    def track(self, jac, losses: torch.Tensor, ctx: StepContext | None = None):
        """(d [d] or None, w [T]) from the step's Jacobian ``jac`` — a :class:`~mtl.jacobian.FactoredJacobian`
        in "param" mode, a :class:`~mtl.jacobian.DenseJacobian` otherwise — for methods whose state holds
        per-task gradient vectors: they update it with ``jac.accumulate_into`` / ``jac.blocks`` instead of
        forming J. d = None means d = Σ_t w_t g_t (made from ``jac``'s own rows)."""
        raise NotImplementedError

    def direction(self, J: torch.Tensor, losses: torch.Tensor, ctx: StepContext | None = None):
        """(d [d], w [T] or None). The default applies ``track`` or ``weights``: d = wᵀJ."""
        if self.info.needs == "factored":
            d, w = self.track(DenseJacobian(J), losses, ctx)
            return (w.to(J.dtype) @ J if d is None else d), w
        w = self.weights(J, losses).to(J.dtype)                          # [T]
        return w @ J, w

    def transform(self, losses: torch.Tensor) -> torch.Tensor:
        """Losses the gradients are taken of (identity; log L for DB-MTL, e^s L − s for IMTL-L)."""
        return losses

    def step_gram(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """The Gram matrix a Gram-only method uses in "param" mode: JJᵀ of this batch, without J (the
        global batch's under data parallelism, see :meth:`_prepared`)."""
        jac = FactoredJacobian(losses, self.jacobian_inputs(ctx.model), chunk_size=self.chunk_size, rep=ctx.rep)
        return self._prepared(jac, ctx).gram()                                                  # [T, T]

    def jacobian_inputs(self, model: torch.nn.Module) -> list[torch.Tensor]:
        """Parameters J is taken w.r.t. in "param" mode (all shared ones; AvgNorm: the last layer)."""
        return list(model.shared_parameters())

    # ------------------------------------------------------------------ public API
    def _aggregate(self, J: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            d, _ = self.direction(J, losses.detach().to(J.dtype))
        return d

    def backward(self, losses: torch.Tensor, ctx: StepContext) -> dict:
        """One step along the :data:`ENGINE` entry of the declared ``needs`` and the mode."""
        step = ENGINE.get((self.info.needs, self.mode))
        if step is None:
            raise TypeError(f"{type(self).__name__} declares needs={self.info.needs!r} in mode {self.mode!r}; the "
                            f"engine computes {sorted(ENGINE)} (a 'custom' method implements backward itself)")
        losses = self.transform(losses)                                  # [T]
        self._step_others = None
        shared = list(ctx.model.shared_parameters())
        try:
            return getattr(self, step)(losses, shared, ctx)
        except _Overflow:                                                # fp16: the scaler skips this step
            for p in shared + self._others(ctx.model, shared):
                p.grad = torch.full_like(p, float("nan"))
            return {}
        finally:
            self._step_others = None                                     # no parameter kept between steps

    def _inputs(self, model: torch.nn.Module, shared: list) -> list:
        """``jacobian_inputs``, without walking the model again when it is the default (``shared``)."""
        return shared if type(self).jacobian_inputs is GradientWeighting.jacobian_inputs else \
            self.jacobian_inputs(model)

    def _backward_factored(self, losses: torch.Tensor, shared: list, ctx: StepContext) -> dict:
        """``track`` on the factored J of the shared parameters (J never formed), then apply d or w."""
        inputs = self._inputs(ctx.model, shared)
        jac, heads = self._factored(losses, inputs, shared, ctx)
        with torch.no_grad():
            d, w = self.track(jac, losses.detach(), ctx)                 # [D] | None, [T]
        if d is None:
            return self._apply_combination(jac, w, losses, shared, ctx, heads)
        self._apply(d, losses, shared, ctx, heads)
        return {"weights": w.detach()}

    def _split(self, losses: torch.Tensor, inputs: list, shared: list, ctx: StepContext) -> tuple:
        """(rows at ``ctx.rep`` or None, the other parameters' ∇ Σ_t L_t or None) from one backward
        through separate heads (:func:`mtl.jacobian.head_split`): the heads are crossed once a step."""
        if ctx.rep is None:
            return None, None
        others = [] if self.loss_weights else self._others(ctx.model, shared)
        Dz, grads = head_split(losses, ctx.rep, inputs if self.mode == "param" else (), others)
        return Dz, (grads if others else None)

    def _factored(self, losses: torch.Tensor, inputs: list, shared: list, ctx: StepContext) -> tuple:
        """(J's factors w.r.t. ``inputs`` on the cost model's path, the heads' gradients or None)."""
        Dz, heads = self._split(losses, inputs, shared, ctx)
        rep = ctx.rep if Dz is not None else None
        jac = self._row_path().make(lambda loop: FactoredJacobian(losses, inputs, chunk_size=self.chunk_size, rep=rep,
                                                                  loop=loop, rep_rows=Dz), _rows_digest)
        return self._prepared(jac, ctx), heads

    @staticmethod
    def _prepared(jac, ctx: StepContext):
        """The per-task rows a method aggregates: in float64 when autocast made them in half precision,
        the global batch's under data parallelism (``ctx.sync``: mean_r J_r, one bucketed all-reduce),
        divided by the loss scale. Unchanged (the same object) in single-process float32 training."""
        jac = full_precision(jac)
        if ctx.sync is not None:
            jac = ctx.sync.jacobian(jac)
        if ctx.loss_scale == 1:
            return jac
        if not jac.finite():
            raise _Overflow
        return jac.scaled(1.0 / ctx.loss_scale)

    def _dense_rows(self, J: torch.Tensor, ctx: StepContext) -> tuple:
        """(J, the context ``direction`` sees) as :meth:`_prepared` for a formed J; in "rep" mode under data
        parallelism J's columns are the ranks' samples (J = [J_0 … J_R−1] / R) and the context's ``rep``
        the gathered global representation."""
        if J.dtype in HALF:
            J = J.double()
        if ctx.sync is not None and self.mode == "rep":
            R, z = ctx.sync.world, ctx.rep.detach()
            J = ctx.sync.gather_columns(J) / R                                        # [T, R·numel(rep)]
            zg = ctx.sync.gather_columns(z.reshape(1, -1), "rep").view(R * z.shape[0], *z.shape[1:])
            ctx = dataclasses.replace(ctx, rep=zg)
        elif ctx.sync is not None:
            J = ctx.sync.mean(J, "param_rows")                                        # [T, d]
        if ctx.loss_scale == 1:
            return J, ctx
        if not bool(torch.isfinite(J).all()):
            raise _Overflow
        return J / ctx.loss_scale, ctx

    def _gram_only(self) -> bool:
        """Whether the direction is wᵀJ with w from G alone (the default ``direction`` and ``weights``)."""
        return (self.info.needs == "gramian" and type(self).direction is GradientWeighting.direction
                and type(self).weights is GradientWeighting.weights)

    def _backward_rep_gram(self, J: torch.Tensor, losses: torch.Tensor, shared: list, ctx: StepContext,
                           heads: list | None) -> dict:
        """"rep" mode of a Gram-only method under data parallelism: the ranks' columns are disjoint, so the
        global G = Σ_r J_r J_rᵀ / R² is one T×T all-reduce; every rank then pushes its own columns of wᵀJ."""
        J = J.double() if J.dtype in HALF else J                                      # [T, numel(rep)]
        R, s = ctx.sync.world, ctx.loss_scale
        G = (ctx.sync.sum(J @ J.T, "rep_gram") / (R * R * s * s)).double().cpu().numpy()
        if s != 1 and not np.isfinite(G).all():
            raise _Overflow
        with torch.no_grad():
            w = torch.as_tensor(self.gram_weights((G + G.T) / 2, losses.detach()), dtype=J.dtype, device=J.device)
        if self.loss_weights:
            (w.detach().to(losses.dtype) * losses).sum().backward()
        else:
            self._apply((w @ J) / s, losses, shared, ctx, heads)   # R × this rank's columns of wᵀJ_global
        return {"weights": w.detach()}

    def _backward_jacobian(self, losses: torch.Tensor, shared: list, ctx: StepContext) -> dict:
        """J w.r.t. the representation ("rep") or the shared parameters, then ``direction``."""
        if self.mode == "rep":
            if ctx.rep is None:
                raise ValueError(f"{type(self).__name__}(mode='rep') needs ctx.rep; "
                                 "the loop keeps it when needs == 'rep'")
            inputs = [ctx.rep]                                                # J [T, numel(rep)]
        else:
            inputs = self._inputs(ctx.model, shared)
        Dz, heads = self._split(losses, inputs, shared, ctx)
        rep = ctx.rep if Dz is not None or self.mode == "rep" else None
        J = self._row_path().make(lambda loop: jacobian(losses, inputs, chunk_size=self.chunk_size, retain_graph=True,
                                                        rep=rep, loop=loop, rep_rows=Dz), _rows_digest)
        if self.mode == "rep" and ctx.sync is not None and self._gram_only():
            return self._backward_rep_gram(J, losses, shared, ctx, heads)
        J, seen = self._dense_rows(J, ctx)
        with torch.no_grad():
            d, w = self.direction(J, losses.detach(), seen)              # [D], [T] | None
        if self.loss_weights:
            (w.detach().to(losses.dtype) * losses).sum().backward()
        else:
            if self.mode == "rep" and ctx.sync is not None:              # R × this rank's columns of d
                d = ctx.sync.own_columns(d, ctx.rep.numel()) * ctx.sync.world
            self._apply(d, losses, shared, ctx, heads)
        return {} if w is None else {"weights": w.detach()}

    def _backward_gram(self, losses: torch.Tensor, shared: list, ctx: StepContext) -> dict:
        """G without J, weights, then the shared gradient Σ_t w_t g_t from the same rows (or factors) when
        J is this batch's w.r.t. every shared parameter; else (a method's own Gramian, as SDMGrad's of
        other batches, or its own inputs, as AvgNorm's last layer) by one weighted backward."""
        jac = heads = None
        if self._gram_is_of_the_update(shared, ctx):
            jac, heads = self._factored(losses, shared, shared, ctx)
            G = jac.gram()                                                           # [T, T]
        else:
            G = self.step_gram(losses, ctx)
        G = G.detach().double().cpu().numpy()
        with torch.no_grad():
            w = torch.as_tensor(self.gram_weights((G + G.T) / 2, losses.detach()), dtype=losses.dtype,
                                device=losses.device)                                    # [T]
        if jac is None:
            return self._apply_weights(w, losses, shared, ctx)
        return self._apply_combination(jac, w, losses, shared, ctx, heads)

    def _gram_is_of_the_update(self, shared: list, ctx: StepContext) -> bool:
        """Whether ``step_gram`` is JJᵀ of this batch w.r.t. exactly ``shared`` (the default hook, and
        ``jacobian_inputs`` giving the shared parameters), so its rows also give Σ_t w_t g_t."""
        if type(self).step_gram is not GradientWeighting.step_gram:
            return False
        if type(self).jacobian_inputs is GradientWeighting.jacobian_inputs:
            return True
        return [id(p) for p in self.jacobian_inputs(ctx.model)] == [id(p) for p in shared]

    def _apply_combination(self, jac: FactoredJacobian, w: torch.Tensor, losses: torch.Tensor, shared: list,
                           ctx: StepContext, heads: list | None = None) -> dict:
        """Shared ``.grad`` += Σ_t w_t g_t from ``jac``'s rows, one parameter at a time (no backward, no
        copy); with ``loss_weights`` the rest of the network gets ∇ Σ_t w_t L_t, else ∇ Σ_t L_t
        (``heads``, when the heads' backward already made it)."""
        w = w.detach().to(losses.dtype)                                               # [T]
        s = ctx.loss_scale
        write_grads(shared, jac.combined_grads(w * s if s != 1 else w, release=True), owned=True)
        if ctx.sync is not None:
            ctx.sync.mark_global(shared)                                              # from the global rows
        self._apply_others(losses, shared, ctx, retain_graph=False, w=w if self.loss_weights else None, grads=heads)
        return {"weights": w}

    def _apply_weights(self, w: torch.Tensor, losses: torch.Tensor, shared: list, ctx: StepContext) -> dict:
        """Shared ``.grad`` += Σ_t w_t g_t by one backward (the whole network if ``loss_weights``)."""
        w = w.detach().to(losses.dtype)
        if self.loss_weights:
            (w * losses).sum().backward()
            return {"weights": w}
        write_grads(shared, torch.autograd.grad((w * losses).sum(), shared, retain_graph=True, allow_unused=True),
                    owned=True)
        self._apply_others(losses, shared, ctx, retain_graph=False)
        return {"weights": w}

    def _others(self, model: torch.nn.Module, shared: list) -> list:
        """Task-specific and the method's own trainable parameters (listed once a step: walking a
        model's modules costs about a millisecond for a SegNet)."""
        if getattr(self, "_step_others", None) is None:
            self._step_others = split_parameters(model, shared) + [p for p in self.parameters() if p.requires_grad]
        return self._step_others

    def _apply_others(self, losses, shared, ctx, retain_graph: bool, w: torch.Tensor | None = None,
                      grads: list | None = None) -> None:
        """Task-specific and the method's own parameters get the plain gradient of Σ_t L_t (Σ_t w_t L_t
        with loss weights ``w``), or ``grads`` when the heads' backward already gave it."""
        others = self._others(ctx.model, shared)
        if grads is not None and w is None:
            write_grads(others, grads, owned=True)
        elif others:
            total = losses.sum() if w is None else (w * losses).sum()
            write_grads(others, torch.autograd.grad(total, others, retain_graph=retain_graph, allow_unused=True),
                        owned=True)

    def _apply(self, d: torch.Tensor, losses: torch.Tensor, shared: list, ctx: StepContext,
               heads: list | None = None) -> None:
        """Shared ``.grad`` += d (through the encoder in rep mode); the rest gets ∇ Σ_t L_t."""
        self._apply_others(losses, shared, ctx, retain_graph=True, grads=heads)
        if ctx.loss_scale != 1:
            d = d * ctx.loss_scale                                       # the .grad convention: s × the update
        if self.mode == "rep":
            dz = d.view_as(ctx.rep).to(ctx.rep.dtype)
            grads = torch.autograd.grad(ctx.rep, shared, grad_outputs=dz, allow_unused=True)
            write_grads(shared, grads, owned=True, keep=(d, dz))
        else:
            write_grads(shared, d)
            if ctx.sync is not None:
                ctx.sync.mark_global(shared)                             # d is the global update
