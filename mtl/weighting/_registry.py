"""The weighting registry: register, look up, create, aggregate
(imported by the method modules, re-exported by the package)."""
from __future__ import annotations

from ..registry import MethodInfo, Registry

WEIGHTINGS = Registry("weighting method", info=MethodInfo)


def register(name: str, **meta):
    """Class decorator: register a weighting with its :class:`~mtl.registry.MethodInfo` fields
    (``label``, ``paper``, ``needs``, ``modes``, ``batches``, ``stateful``, ``aliases``); the class
    gets the declaration as ``info``, which :class:`GradientWeighting` dispatches on. ``label`` and
    ``needs`` are required: the engine's computation follows ``needs``, so it is never implied."""
    missing = [k for k in ("label", "needs") if k not in meta]
    if missing:
        raise TypeError(f"weighting {name!r} must declare {missing} at registration")

    def deco(cls):
        WEIGHTINGS.register(name, **meta)(cls)
        cls.info = WEIGHTINGS.info(name)
        return cls
    return deco


def names(pattern: str = "*") -> list[str]:
    """Registered method names matching the glob ``pattern``.

    >>> names("*grad")
    ['cagrad', 'fairgrad', 'pcgrad', 'sdmgrad', 'upgrad']
    """
    return WEIGHTINGS.names(pattern)


def info(name: str) -> MethodInfo:
    """The declaration of method ``name`` (or an alias, any case).

    >>> info("Nash-MTL").name, info("NashMTL").label, info("mgda").needs
    ('nashmtl', 'NashMTL', 'gramian')
    """
    return WEIGHTINGS.info(name)


def label(name: str) -> str:
    """How tables and figures print method ``name``.

    >>> label("ew"), label("dbmtl")
    ('Uniform', 'DB-MTL')
    """
    return WEIGHTINGS.label(name)


def create(name: str, **hparams):
    """Build method ``name`` (see ``names()``); an unknown hyper-parameter raises a TypeError listing the valid ones.

    >>> create("mgda", normalize="l2")
    MGDA(mode='rep', chunk_size=None, normalize='l2')
    """
    return WEIGHTINGS.create(name, **hparams)


def aggregate(name: str, jacobian, losses=None, **hparams):
    """The update direction [d] that method ``name`` produces on one step from a fresh state.

    ``jacobian`` is J [T, d] (row t: gradient of task t's loss w.r.t. the shared parameters),
    ``losses`` the T losses (default ones; only loss-based methods read them). Scale convention:
    the result is what the method writes into the shared parameters' ``.grad``; equal weighting
    (``ew``) gives the plain sum Σ_t g_t, and every other method keeps its paper's scale relative to
    that (MGDA: a convex combination; CAGrad: divided by 1+c²; Nash-MTL/FairGrad: clipped to
    ``max_norm``...). Three-batch methods use J for all three batches; bilevel methods return the
    lower-level direction with their initial task weights (their weights need a validation batch).
    """
    import torch

    J = torch.as_tensor(jacobian)
    if J.dim() != 2 or J.shape[0] < 1:
        raise ValueError(f"jacobian must be a matrix [T, d] with T ≥ 1, got shape {tuple(J.shape)}")
    if not J.is_floating_point():
        J = J.double()
    if losses is not None:
        losses = torch.as_tensor(losses, dtype=J.dtype, device=J.device).reshape(-1)
        if losses.numel() != J.shape[0]:
            raise ValueError(f"{losses.numel()} losses for a Jacobian of {J.shape[0]} tasks")
    for what, x in (("jacobian", J), ("losses", losses)):   # NaN/inf would come back as a NaN direction
        if x is not None and not torch.isfinite(x).all():
            rows = sorted({int(i) for i in (~torch.isfinite(x)).nonzero()[:, 0]})
            raise ValueError(f"{what} has non-finite values (NaN or inf) in task rows {rows}; "
                             "every entry must be finite")
    return create(name, **hparams).aggregate(J, losses)


# ------------------------------------------------ the data-parallel / mixed-precision table (README)
AMP_NOTES = {"losses": "✓ loss-scaled backward", "engine": "✓ loss-scaled rows, unscaled before aggregation",
             "custom": "✓ unscaled backward, gradients scaled after"}


def _crossing(info) -> str:
    """What crosses the ranks for one method and mode, from its declaration (see the module docstring)."""
    if not info.ddp_exact:
        return "refused: " + info.ddp_note
    if info.needs == "losses" or (info.needs == "custom" and not info.modes):
        return "losses [T] + averaged gradients"
    parts = []
    for mode in info.modes:
        if mode == "rep":
            parts.append("rep: Gramian T×T" if info.needs == "gramian" else
                         "rep: gathered rows at the representation")
        elif info.batches == 3 and info.needs == "custom":
            parts.append("param: J₂ᵀλ [d] and J₁v [T] of the extra batches")
        elif info.batches == 3:
            parts.append("param: per-task rows T×d of the two extra batches (or factors)")
        else:
            parts.append("param: per-task rows T×d (a linear layer's factors when smaller)")
    return "; ".join(parts)


def parallel_table() -> str:
    """The README's table of every registered method × (DDP exact, what crosses the ranks, AMP), rendered
    from the registry's declarations (``needs``, ``modes``, ``batches``, ``ddp_exact``, ``ddp_note``;
    see :mod:`mtl.distributed` and ``TrainConfig.amp``).

    >>> parallel_table().splitlines()[0]
    '| method | needs | modes | DDP exact | what crosses the ranks per step | AMP (bf16, fp16) |'
    """
    rows = ["| method | needs | modes | DDP exact | what crosses the ranks per step | AMP (bf16, fp16) |",
            "|---|---|---|---|---|---|"]
    for name in WEIGHTINGS.names():
        info = WEIGHTINGS.info(name)
        amp = AMP_NOTES.get(info.needs, AMP_NOTES["engine"])
        rows.append(f"| {info.label} (`{name}`) | {info.needs} | {', '.join(info.modes) or '–'} | "
                    f"{'✓' if info.ddp_exact else '✗'} | {_crossing(info)} | {amp} |")
    return "\n".join(rows)
