"""Exact data parallelism over ``torch.distributed`` for every weighting the engine computes.

Plain DDP all-reduces the *combined* gradient, which is right for a fixed sum of losses but wrong
for the gradient weightings: MGDA, PCGrad, CAGrad, Nash-MTL... must see the per-task gradients of
the whole batch, and the Gram matrix of an average is not the average of the ranks' Gram matrices
(the cross-rank terms J_r J_sᵀ are missing). :class:`DataParallel` is the one place that knows
what crosses the ranks; the loop and the engine call it at fixed points, never per method:

* **losses**: every rank sees the global task losses [T] (their mean over ranks — each rank holds
  an equal shard of the global batch, and a task loss is a batch mean) with the gradient of its own
  shard (:meth:`global_losses`), so a loss weighting's weights and a stateful method's state (DWA,
  FAMO, UW, GradNorm) are identical on every rank; the loop then averages the gradients.
* **param mode**: every rank gets the global per-task rows J = mean_r J_r of the shared parameters
  (:meth:`jacobian`: a linear layer's factors D, X gathered when smaller than its rows, else its rows
  and the other parameters' rows averaged by a bucketed all-reduce), hence its Gramian and the
  combination Σ_t w_t g_t exactly; those parameters are then marked as already global and left out
  of the gradient average.
* **rep mode**: the representation rows of a rank are columns of the global J (J = [J_0 ... J_R-1] / R,
  the samples are disjoint), so a Gram-only method needs only G = Σ_r J_r J_rᵀ / R² (a T×T
  all-reduce, :meth:`sum`) and other methods the gathered columns (:meth:`gather_columns`).
* **random methods** draw from torch's global generator, seeded alike on every rank by
  :func:`mtl.train.fit` and used only on global quantities (J, G, T), so every rank draws the same.
* **extra batches** (three-batch methods) come from the same global stream on every rank, each
  rank taking its shard (:meth:`shard`).

Every collective counts its bytes (:meth:`report`: per step, by kind). With one process nothing
here is used and training is unchanged.
"""
from __future__ import annotations

import os
from collections import defaultdict
from typing import Sequence

import torch
import torch.distributed as dist

from .jacobian import DenseJacobian, FactoredJacobian, relabel

BUCKET_BYTES = 1 << 24      # all-reduce buffers of at most 16 MiB (a bounded temporary, few collectives)


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (or another launcher setting ``WORLD_SIZE``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 or dist.is_initialized()


def init(device: torch.device | None = None) -> "DataParallel":
    """The process group of this ``torchrun`` process (made if needed: NCCL on CUDA, gloo on CPU)."""
    if not dist.is_available():
        raise RuntimeError("distributed=True needs torch.distributed, which this torch build lacks")
    if not dist.is_initialized():
        if "RANK" not in os.environ:
            raise RuntimeError("distributed=True needs a process group: start with torchrun --nproc-per-node N "
                               "(it sets RANK, WORLD_SIZE, MASTER_ADDR), or call torch.distributed."
                               "init_process_group first")
        backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
        dist.init_process_group(backend)
    return DataParallel()


class DataParallel:
    """The collectives of exact data parallelism on one process group (see the module docstring)."""

    def __init__(self, group=None):
        if not dist.is_initialized():
            raise RuntimeError("DataParallel needs an initialised process group (torch.distributed.init_process_group)")
        self.group = group
        self.world = dist.get_world_size(group)
        self.rank = dist.get_rank(group)
        self.bytes: dict = defaultdict(int)          # kind -> bytes sent by this rank
        self.steps = 0
        self._global: set = set()                    # ids of parameters whose .grad is global this step

    # ------------------------------------------------------------------ the batch
    def shard(self, batch):
        """This rank's contiguous part of a global batch (every tensor split along dim 0); the global
        batch must divide into equal shards, so that the mean of the ranks' batch means is the batch mean."""
        if isinstance(batch, dict):
            return {k: self.shard(v) for k, v in batch.items()}
        if isinstance(batch, (list, tuple)):
            return type(batch)(self.shard(v) for v in batch)
        if not isinstance(batch, torch.Tensor) or batch.dim() == 0:
            return batch
        n = batch.shape[0]
        if n % self.world:
            raise ValueError(f"a global batch of {n} samples does not split into {self.world} equal shards; "
                             f"use a training split of at least batch_size × {self.world} samples")
        k = n // self.world
        return batch[self.rank * k:(self.rank + 1) * k]

    # ------------------------------------------------------------------ collectives
    def _count(self, kind: str, tensors: Sequence[torch.Tensor], factor: float = 1.0) -> None:
        self.bytes[kind] += int(factor * sum(t.numel() * t.element_size() for t in tensors))

    def sum_(self, tensors: Sequence[torch.Tensor], kind: str = "grads") -> None:
        """In place: each tensor ← its sum over ranks; flattened into buckets of at most ``BUCKET_BYTES``
        per dtype (one collective per bucket). Each rank sends about 2(R−1)/R of the bytes (ring)."""
        groups: dict = defaultdict(list)
        for t in tensors:
            groups[(t.dtype, t.device)].append(t)
        for ts in groups.values():
            bucket, size = [], 0
            for t in ts + [None]:
                if t is not None and (not bucket or size + t.numel() * t.element_size() <= BUCKET_BYTES):
                    bucket.append(t)
                    size += t.numel() * t.element_size()
                    continue
                if bucket:
                    flat = torch.cat([b.reshape(-1) for b in bucket]) if len(bucket) > 1 else bucket[0].reshape(-1)
                    dist.all_reduce(flat, group=self.group)
                    if len(bucket) > 1 or flat.data_ptr() != bucket[0].data_ptr():
                        for b, piece in zip(bucket, flat.split([b.numel() for b in bucket])):
                            b.copy_(piece.view_as(b))
                    self._count(kind, bucket, 2 * (self.world - 1) / self.world)
                bucket, size = ([t], t.numel() * t.element_size()) if t is not None else ([], 0)

    def mean_(self, tensors: Sequence[torch.Tensor], kind: str = "grads") -> None:
        """In place: each tensor ← its mean over ranks."""
        self.sum_(tensors, kind)
        for t in tensors:
            t.div_(self.world)

    def mean(self, t: torch.Tensor, kind: str) -> torch.Tensor:
        """A new tensor: ``t``'s mean over ranks."""
        out = t.detach().clone().contiguous()
        self.mean_([out], kind)
        return out

    def sum(self, t: torch.Tensor, kind: str) -> torch.Tensor:
        """A new tensor: ``t``'s sum over ranks."""
        out = t.detach().clone().contiguous()
        self.sum_([out], kind)
        return out

    def gather_columns(self, J: torch.Tensor, kind: str = "rep_rows") -> torch.Tensor:
        """[T, n] per rank → [T, R·n], rank r's columns at r·n (the global batch's sample order)."""
        J = J.detach().contiguous()
        parts = [torch.empty_like(J) for _ in range(self.world)]
        dist.all_gather(parts, J, group=self.group)
        self._count(kind, [J], self.world - 1)
        return torch.cat(parts, dim=1)

    def own_columns(self, d: torch.Tensor, n: int) -> torch.Tensor:
        """This rank's slice [n] of a global vector [R·n] (inverse of :meth:`gather_columns`)."""
        return d[self.rank * n:(self.rank + 1) * n]

    # ------------------------------------------------------------------ what the loop and the engine call
    def global_losses(self, losses: torch.Tensor) -> torch.Tensor:
        """Losses [T] whose values are the global batch's (the mean over ranks) and whose gradient is this
        rank's shard's (:func:`mtl.jacobian.relabel`)."""
        return relabel(losses, self.mean(losses, "losses"))                   # [T]

    def jacobian(self, jac):
        """The global per-task rows of the shared parameters, J = mean_r J_r, from ``jac`` (this rank's
        shard's :class:`~mtl.jacobian.FactoredJacobian` or :class:`~mtl.jacobian.DenseJacobian`), in the same
        form. A linear layer's rows are D_tᵀX with D [T, n, out] and X [n, in] per sample, so the global rows
        are those of the gathered factors (D of every rank, divided by R, and X); each layer sends whichever
        is smaller — its factors (all-gather, (R−1)·n(T·out + in) numbers received) or its rows (all-reduce,
        2(R−1)/R·T·out·(in+1)) — and the other parameters send their rows (bucketed all-reduce)."""
        if isinstance(jac, DenseJacobian):
            J = jac.J.detach().clone().contiguous()                               # [T, d]
            self.mean_([J], "param_rows")
            return DenseJacobian(J, jac.params, jac.unreached)
        R, layers, rest, bias_of, send = self.world, {}, dict(jac.rest), {}, []
        for key, (D, X, w, b) in jac.layers.items():
            if D is None:
                layers[key] = (None, X, w, b)
                continue
            T, n, o = D.shape
            if (R - 1) * n * (T * o + X.shape[1]) < 2 * (R - 1) / R * T * o * (X.shape[1] + 1):
                send.append((key, D.contiguous(), X.contiguous(), w, b))         # gathered below
            else:                                                                # this layer's rows, dense
                rest[id(w)] = torch.bmm(D.transpose(1, 2), X.expand(T, *X.shape))   # [T, out, in]
                if b is not None:
                    rest[id(b)] = D.sum(1)                                       # [T, out]
        rest = {k: None if g is None else g.clone() for k, g in rest.items()}
        self.mean_([g for g in rest.values() if g is not None], "param_rows")
        for (key, D, X, w, b), (Ds, Xs) in zip(send, self._gather([(D, X) for _, D, X, *_ in send])):
            layers[key] = (torch.cat(Ds, 1) / R, torch.cat(Xs, 0), w, b)         # [T, R·n, out], [R·n, in]
            if b is not None:
                bias_of[id(b)] = key
        out = FactoredJacobian.__new__(FactoredJacobian)
        out.__dict__.update(jac.__dict__)
        out.layers, out.rest, out._bias_of = layers, rest, bias_of
        return out

    def _gather(self, pairs: list) -> list:
        """All-gather of (D, X) factor pairs in one collective per dtype: per pair (the R ranks' D, their X)."""
        if not pairs:
            return []
        flat = [t for pair in pairs for t in pair]
        out = [None] * len(flat)
        for dtype in {t.dtype for t in flat}:
            idx = [i for i, t in enumerate(flat) if t.dtype == dtype]
            buf = torch.cat([flat[i].reshape(-1) for i in idx])
            parts = [torch.empty_like(buf) for _ in range(self.world)]
            dist.all_gather(parts, buf, group=self.group)
            self._count("factors", [buf], self.world - 1)
            sizes = [flat[i].numel() for i in idx]
            per_rank = [p.split(sizes) for p in parts]
            for j, i in enumerate(idx):
                out[i] = [r[j].view_as(flat[i]) for r in per_rank]
        return [(out[2 * k], out[2 * k + 1]) for k in range(len(pairs))]

    def mark_global(self, params: Sequence[torch.Tensor]) -> None:
        """These parameters' ``.grad`` already holds the global update this step (left out of :meth:`reduce_grads`)."""
        self._global.update(id(p) for p in params)

    def reduce_grads(self, params: Sequence[torch.Tensor]) -> None:
        """Average ``.grad`` over ranks for every parameter not marked global (bucketed); ends the step."""
        todo = [p.grad for p in params if p.grad is not None and id(p) not in self._global]
        if todo:
            self.mean_(todo, "grads")
        self._global.clear()
        self.steps += 1

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers on every rank (the same start, whatever each rank initialised)."""
        with torch.no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, 0, group=self.group)

    def report(self) -> dict:
        """What a run records: world size and the bytes this rank sent per step, by kind."""
        steps = max(self.steps, 1)
        return {"world_size": self.world, "steps": self.steps,
                "bytes_per_step": {k: round(v / steps) for k, v in sorted(self.bytes.items())},
                "total_bytes_per_step": round(sum(self.bytes.values()) / steps)}

