"""URL: distilling single-task networks into the multi-task one through light adapters, and the
feature-distance diagnostic of seed 004 §V-F(1) / Fig. 6 that shares its adapter protocol.

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

The adapter protocol (both here and in :func:`feature_distance`): per task one 1×1 convolution
from the multi-task feature to the single-task feature, both L2-normalised over channels, the
squared distance summed over channels and averaged over images and pixels (range [0, 4]).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .paths import portable  # noqa: F401  (distill.portable: used by the features section)
from .weighting import Weighting, create, register
from .weighting.base import StepContext


# ----------------------------------------------------------------------------- single-task networks on disk
def _resolve(path) -> Path:
    from .paths import repo_root

    p = Path(path)
    return p if p.is_absolute() else repo_root() / p


def load_model(run_dir) -> nn.Module:
    """The trained model of a run saved with spec ``save_model: true`` (rebuilt from its config.json)."""
    from .experiment import load_data
    from .models import create_model

    run_dir = _resolve(run_dir)
    weights = run_dir / "model.pt"
    if not weights.exists():
        raise FileNotFoundError(f"{weights} does not exist: train the run with spec key save_model: true")
    spec = json.loads((run_dir / "config.json").read_text())
    bundle = load_data(spec["dataset"], **spec.get("dataset_kw", {}))
    bundle = bundle.select(spec.get("tasks") or [t.name for t in bundle.tasks])
    model = create_model(spec.get("architecture", "hps"), spec["backbone"], bundle.tasks,
                         architecture_kw=spec.get("architecture_kw"), backbone_kw=spec.get("backbone_kw"))
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval()


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
@register("url", label="URL", needs="custom", stateful=True, paper="Li, Liu & Bilen, IJCV 2023 (feature distillation)")
class URL(Weighting):
    """URL (Li, Liu & Bilen, IJCV 2023, feature distillation): a base weighting plus λ Σ_t λ_t ℓ^f(A_t φ, φ*_t).

    :param teachers: task -> a run folder saved with ``save_model: true`` (relative to the
        repository root or absolute), or a trained single-task model; frozen on load.
    :param base: the weighting of the task losses (``ew``: the paper's uniform weights).
    :param lam: λ, the distillation weight (1, the authors' value for segmentation and depth).
    :param task_lams: per-task λ_t (default 1 each).
    The adapters A_t are :meth:`parameters`, optimised with the model; ``distill_log`` keeps the
    mean distillation distance per task for each epoch.
    """

    needs = "rep"

    def __init__(self, teachers: Mapping[str, object] | None = None, base: str = "ew",
                 base_kw: dict | None = None, lam: float = 1.0, task_lams: Mapping[str, float] | None = None):
        if not teachers:
            raise ValueError("url needs teachers: task -> single-task run folder (saved with save_model: true) or model")
        if not float(lam) >= 0:
            raise ValueError(f"lam must be non-negative, got {lam}")
        self.teacher_runs = {t: (portable(v) if isinstance(v, (str, Path)) else type(v).__name__) for t, v in teachers.items()}
        self._teachers = {t: freeze(load_model(v) if isinstance(v, (str, Path)) else v) for t, v in teachers.items()}
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
        tasks = ctx.model.tasks
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

    def aggregate(self, J: torch.Tensor, losses: torch.Tensor | None = None) -> torch.Tensor:
        """The base method's direction (the distillation term has no Jacobian w.r.t. the task losses)."""
        return self._base.aggregate(J, losses)

    def __repr__(self) -> str:
        return (f"URL(teachers={self.teacher_runs}, base={self.base!r}, base_kw={self.base_kw}, lam={self.lam}, "
                f"task_lams={self.task_lams})")


# ----------------------------------------------------------------------------- the feature-distance diagnostic
@torch.no_grad()
def features(model: nn.Module, data, split: str, batch_size: int = 32, device="cpu") -> torch.Tensor:
    """``model.encode(x)`` over a whole split, eval mode, on the CPU: [N, C, H, W]."""
    was = model.training
    model.eval().to(device)
    out = [model.encode(x.to(device)).cpu() for x, _ in data.loader(split, batch_size)]
    model.train(was)
    return torch.cat(out)


def pixels(f: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] (or [N, C]) -> [N·H·W, C]: one row per pixel, the vectors a 1×1 adapter maps."""
    return f.movedim(1, -1).reshape(-1, f.shape[1]) if f.dim() > 2 else f


def fit_adapter(zs: torch.Tensor, ft: torch.Tensor, steps: int = 200, lr: float = 1e-2, batch: int = 4096,
                seed: int = 0) -> nn.Conv2d:
    """A URL adapter mapping frozen features ``zs`` [N, C, H, W] onto ``ft`` [N, C', H, W] by ℓ^f.

    A 1×1 convolution is a linear map per pixel, so it is fitted on pixel vectors: started at the
    least-squares map onto the normalised teacher vectors, then refined by Adam on ℓ^f over
    random batches of ``batch`` pixels (an unbiased estimate of the full objective).
    """
    if zs.shape[2:] != ft.shape[2:]:
        zs = F.interpolate(zs, ft.shape[2:], mode="bilinear", align_corners=False)
    X, Y = pixels(zs).double(), F.normalize(pixels(ft), dim=1).double()        # [P, C], [P, C']
    Wls = torch.linalg.lstsq(X, Y).solution.T.float()                          # [C', C]
    Wt = nn.Parameter(Wls.clone())
    X, Y = X.float(), Y.float()
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam([Wt], lr=lr)
    for _ in range(steps):
        idx = torch.randint(len(X), (min(batch, len(X)),), generator=g)
        loss = (F.normalize(X[idx] @ Wt.T, dim=1) - Y[idx]).pow(2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    a = adapter(zs.shape[1], ft.shape[1])
    with torch.no_grad():
        a.weight.copy_(Wt.detach()[:, :, None, None])                         # [C', C, 1, 1]
    return a.eval()


def feature_distance(model: nn.Module, teachers: Mapping[str, nn.Module], data, fit_split: str = "train",
                     eval_split: str = "test", steps: int = 200, lr: float = 1e-2, seed: int = 0) -> dict[str, float]:
    """Seed 004 Fig. 6: per task, ℓ^f between a multi-task model's shared feature and its single-task network's.

    Protocol (the URL adapter's, post hoc): both networks frozen; per task a fresh 1×1 adapter is
    fitted on ``fit_split`` features, then the distance is measured on ``eval_split``. Fitting
    the adapter for every method alike (URL included) makes the numbers comparable; the paper
    instead updates the adapter while the multi-task model trains.
    """
    zs_fit, zs_eval = features(model, data, fit_split), features(model, data, eval_split)
    out = {}
    for t, teacher in teachers.items():
        ft_fit, ft_eval = features(teacher, data, fit_split), features(teacher, data, eval_split)
        a = fit_adapter(zs_fit, ft_fit, steps, lr, seed=seed)
        with torch.no_grad():
            out[t] = float(distill_distance(a(zs_eval), ft_eval))
    return out
