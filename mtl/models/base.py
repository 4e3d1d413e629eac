"""The model contract every architecture meets, so weightings and step rules never look inside."""
from __future__ import annotations

import torch
from torch import nn

from ..tasks import TaskInputs


def encode_per_task(encoder: nn.Module, x: TaskInputs) -> torch.Tensor:
    """cat_t encoder(x_t) [Σ_t B_t, ...]: one forward per task input (batch-norm statistics stay per
    domain, as LibMTL's multi-input trainer), one tensor for the engine ("rep" mode, separate heads);
    ``task_slices`` {task: (start, stop)} marks each task's rows."""
    parts = {t: encoder(xt) for t, xt in x.items()}
    z = torch.cat(list(parts.values()))                      # [Σ_t B_t, ...]
    stops = torch.tensor([len(p) for p in parts.values()]).cumsum(0).tolist()
    z.task_slices = {t: (b - len(p), b) for (t, p), b in zip(parts.items(), stops)}
    return z


class MultiTaskModel(nn.Module):
    """``forward(x) -> {task: prediction}`` split as ``decode(encode(x))``.

    ``encode`` returns the shared representation ``z`` (the tensor "rep" mode differentiates
    against); ``shared_parameters`` / ``task_parameters`` tell the gradient engine what is shared.

    ``rep_layout`` says what ``z`` is: ``"shared"`` — one tensor every task may read (HPS's
    [B, C, H, W]; the stacked expert outputs [E, B, C, H, W] of MMoE, CGC, PLE, DSelect-k);
    ``"per_task"`` — a stacked [T, B, ...] tensor whose slice ``z[t]`` (``tasks`` order) only task
    ``t`` reads (MTAN's attended features, Cross-stitch columns, LTB leaves). For ``"per_task"``
    the exact Jacobian of the losses w.r.t. ``z`` is block-diagonal; LibMTL and Nash-MTL instead
    compare the per-task blocks ∂L_t/∂z_t as vectors of one common space ("aligned" rep mode).
    """

    rep_layout: str = "shared"

    def __init__(self, encoder: nn.Module, heads: dict[str, nn.Module]):
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(heads)

    @property
    def tasks(self) -> list[str]:
        return list(self.heads.keys())

    def encode(self, x) -> torch.Tensor:
        """The shared representation; for multi-input batches (``x`` a :class:`mtl.tasks.TaskInputs`)
        the encoder runs on each task's input and the features are concatenated along the batch,
        [Σ_t B_t, ...], with ``z.task_slices`` telling :meth:`decode` which rows are whose."""
        if isinstance(x, TaskInputs):
            return encode_per_task(self.encoder, x)
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        slices = getattr(z, "task_slices", None)
        if slices is not None:                                # multi-input: each head reads its own rows
            return {t: self.heads[t](z[a:b]) for t, (a, b) in slices.items()}
        return {t: head(z) for t, head in self.heads.items()}

    def forward(self, x) -> dict[str, torch.Tensor]:
        return self.decode(self.encode(x))

    def shared_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.encoder.parameters() if p.requires_grad]

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return [p for p in self.heads[task].parameters() if p.requires_grad]

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """Parameters of the last shared layer with weights (Guo et al.'s AvgNorm and Fig. 8 use it)."""
        last = [m for m in self.encoder.modules() if any(True for _ in m.parameters(recurse=False))
                and isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d))]
        if not last:
            raise ValueError("the encoder has no convolution or linear layer")
        return [p for p in last[-1].parameters(recurse=False) if p.requires_grad]

    def regularization(self) -> torch.Tensor | None:
        """An extra loss term some architectures add (DSelect-k, LTB); ``None`` for most."""
        return None

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Called by the loop before each epoch (LTB anneals its Gumbel temperature); a no-op here."""


def last_weighted_layer(module: nn.Module) -> list[nn.Parameter]:
    """Trainable parameters of the last convolution or linear layer of ``module`` (registration order)."""
    layers = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d))]
    if not layers:
        raise ValueError(f"{type(module).__name__} has no convolution or linear layer")
    return [p for p in layers[-1].parameters(recurse=False) if p.requires_grad]


class PartitionedModel(MultiTaskModel):
    """A model whose parameters are partitioned by ownership, for architectures beyond HPS.

    ``task_modules(t)`` lists the modules only task ``t``'s loss reaches (its head, gates, attention
    or experts); every other trainable parameter is shared. ``last_shared_modules()`` names the
    modules whose last layer is "the last shared layer" (one per shared column or expert).
    """

    def task_modules(self, task: str) -> list[nn.Module]:
        return [self.heads[task]]

    def last_shared_modules(self) -> list[nn.Module]:
        return [self.encoder]

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        seen, out = set(), []
        for m in self.task_modules(task):
            for p in m.parameters():
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    def shared_parameters(self) -> list[nn.Parameter]:
        owned = {id(p) for t in self.tasks for p in self.task_parameters(t)}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in owned]

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return [p for m in self.last_shared_modules() for p in last_weighted_layer(m)]
