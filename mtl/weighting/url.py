"""URL: distilling single-task networks into the multi-task one through light adapters.

Li, Liu & Bilen, "Universal representations: a unified look at multiple task and domain
learning", IJCV 2023 (arXiv 2204.02744): its distillation objective with the feature term only

    min_{θ, A}  Σ_t L_t(θ)  +  λ Σ_t λ_t ‖ n(A_t φ_θ(x)) − n(φ*_t(x)) ‖²,     n(f) = f / ‖f‖₂ (per pixel)

φ_θ is the shared multi-task feature, φ*_t the frozen single-task network of task t, A_t a 1×1
convolution (no bias) learned jointly with θ; ‖·‖² sums over channels and is averaged over batch
and pixels, as in the authors' dense-prediction code (VICO-UoE/UniversalRepresentations,
DensePred/nyu_url.py, which uses λ_t = 1 for segmentation and depth, 2 for normals).
Differences from that code: λ_t defaults to 1 for every task; the adapters are optimised by the
training loop's optimiser with the model (theirs: a separate Adam, lr 1e-2, weight decay 5e-4);
the prediction-distillation term is left out (the authors' dense-prediction script uses none).

The adapter protocol (here and in :func:`mtl.diagnostics.feature_distance`): per task one 1×1 convolution
from the multi-task feature to the single-task feature, both L2-normalised over channels, the
squared distance summed over channels and averaged over images and pixels (range [0, 4]).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import create, register
from .base import StepContext, Weighting


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode (BatchNorm statistics fixed) and no gradients: a teacher never changes."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def out_channels(module: nn.Module) -> int:
    """Channels of the feature ``module`` outputs: those of its last convolution or linear layer."""
    layers = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    if not layers:
        raise ValueError(f"{type(module).__name__} has no convolution or linear layer to read channels from")
    last = layers[-1]
    return last.out_features if isinstance(last, nn.Linear) else last.out_channels


# ----------------------------------------------------------------------------- the adapter protocol
def adapter(channels: int, teacher_channels: int | None = None) -> nn.Conv2d:
    """URL's adapter: a 1×1 convolution without bias, Xavier-normal initialised (authors' code)."""
    conv = nn.Conv2d(channels, teacher_channels or channels, 1, bias=False)
    nn.init.xavier_normal_(conv.weight)
    return conv


def distill_distance(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean over images and pixels of ‖n(s) − n(t)‖² (channel-normalised; URL's ℓ^f), a scalar."""
    if student.dim() == 2:                                        # [B, C] vector features -> [B, C, 1, 1]
        student, teacher = student[..., None, None], teacher[..., None, None]
    if student.shape[2:] != teacher.shape[2:]:
        student = F.interpolate(student, teacher.shape[2:], mode="bilinear", align_corners=False)
    s = F.normalize(student, p=2, dim=1, eps=1e-12)               # [B, C, H, W]
    t = F.normalize(teacher.detach(), p=2, dim=1, eps=1e-12)      # [B, C, H, W]
    return (s - t).pow(2).sum(1).mean()


# ----------------------------------------------------------------------------- URL as a weighting wrapper
@register("url", label="URL", needs="custom", stateful=True, ddp_exact=False,
          ddp_note="not verified: the distillation term with frozen teachers is untested across ranks",
          paper="Li, Liu & Bilen, IJCV 2023 (feature distillation)")
class URL(Weighting):
    """URL (Li, Liu & Bilen, IJCV 2023, feature distillation): a base weighting plus λ Σ_t λ_t ℓ^f(A_t φ, φ*_t).

    :param teachers: task -> a trained single-task model (frozen here). In a run spec the teachers
        are run folders saved with ``save_model: true``; :meth:`mtl.experiment.RunSpec.build_weighting`
        loads them (``run_arguments`` below declares which keyword names recorded runs).
    :param base: the weighting of the task losses (``ew``: the paper's uniform weights).
    :param lam: λ, the distillation weight (1, the authors' value for segmentation and depth).
    :param task_lams: per-task λ_t (default 1 each).
    The adapters A_t are :meth:`parameters`, optimised with the model; ``distill_log`` keeps the
    mean distillation distance per task for each epoch.
    """

    needs = "rep"
    run_arguments = ("teachers",)        # keyword arguments that name recorded runs (task -> run folder)

    def __init__(self, teachers: Mapping[str, object] | None = None, base: str = "ew",
                 base_kw: dict | None = None, lam: float = 1.0, task_lams: Mapping[str, float] | None = None):
        if not teachers:
            raise ValueError("url needs teachers: task -> trained single-task model (in a run spec: a run folder "
                             "saved with save_model: true)")
        if not float(lam) >= 0:
            raise ValueError(f"lam must be non-negative, got {lam}")
        bad = sorted(t for t, v in teachers.items() if not isinstance(v, nn.Module))
        if bad:
            raise TypeError(f"url teachers must be nn.Module objects, got {[type(teachers[t]).__name__ for t in bad]} "
                            f"for {bad}; load run folders with mtl.experiment.load_model (RunSpec does it)")
        self.teacher_runs = {t: getattr(v, "run_dir", type(v).__name__) for t, v in teachers.items()}
        self._teachers = {t: freeze(v) for t, v in teachers.items()}
        self.base, self.base_kw, self.lam = base, dict(base_kw or {}), float(lam)
        self.task_lams = {t: float((task_lams or {}).get(t, 1.0)) for t in self._teachers}
        unknown = sorted(set(task_lams or {}) - set(self._teachers))
        if unknown:
            raise ValueError(f"task_lams names tasks {unknown} without a teacher; teachers: {sorted(self._teachers)}")
        self._base = create(base, **self.base_kw)
        self.reset()

    def reset(self) -> None:
        self._base.reset()
        self._adapters = nn.ModuleDict({t: adapter(out_channels(m.encoder)) for t, m in self._teachers.items()})
        self.distill_log, self._sums, self._n = [], None, 0

    def parameters(self) -> list[torch.Tensor]:
        return list(self._adapters.parameters()) + list(self._base.parameters())

    def teacher(self, task: str) -> nn.Module:
        return self._teachers[task]

    def adapter(self, task: str) -> nn.Module:
        return self._adapters[task]

    def distances(self, z: torch.Tensor, x, tasks: Sequence[str]) -> torch.Tensor:
        """ℓ^f per task [T] between the adapted shared feature z and each frozen teacher's feature."""
        out = []
        for t in tasks:
            if t not in self._teachers:
                raise ValueError(f"url has no teacher for task {t!r}; teachers: {sorted(self._teachers)}")
            teacher, a = self._teachers[t].to(z.device), self._adapters[t].to(z.device)
            with torch.no_grad():
                f = teacher.encode(x)                              # [B, C, H, W]
            out.append(distill_distance(a(z), f))
        return torch.stack(out)                                    # [T]

    def backward(self, losses: torch.Tensor, ctx: StepContext) -> dict:
        if ctx.rep is None:
            raise ValueError("url needs ctx.rep (the shared feature); the loop keeps it because url.needs == 'rep'")
        tasks = ctx.task_names()
        d = self.distances(ctx.rep, ctx.batch[0], tasks)           # [T]
        lams = torch.tensor([self.task_lams[t] for t in tasks], dtype=d.dtype, device=d.device)
        (self.lam * (lams * d).sum()).backward(retain_graph=True)  # encoder + adapters; the base adds the rest
        self._sums = d.detach().cpu() if self._sums is None else self._sums + d.detach().cpu()
        self._n += 1
        return {**self._base.backward(losses, ctx), "distill": d.detach()}

    def after_step(self, ctx: StepContext) -> None:
        self._base.after_step(ctx)

    def end_epoch(self, epoch: int, mean_losses: torch.Tensor) -> None:
        if self._n:
            self.distill_log.append((self._sums / self._n).tolist())
        self._sums, self._n = None, 0
        self._base.end_epoch(epoch, mean_losses)

    def _aggregate(self, J: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """The base method's direction (the distillation term has no Jacobian w.r.t. the task losses)."""
        return self._base._aggregate(J, losses)

    def __repr__(self) -> str:
        return (f"URL(teachers={self.teacher_runs}, base={self.base!r}, base_kw={self.base_kw}, lam={self.lam}, "
                f"task_lams={self.task_lams})")
