"""A name -> factory registry whose entries carry their metadata (timm style), shared by datasets,
models, curve families and weightings.

Each entry is registered with an :class:`Info` (frozen: label, paper, aliases; weightings add
:class:`MethodInfo`'s fields), found by its name, label or an alias in any case, and built by
:meth:`Registry.create`, which checks keyword names against the factory's signature.

>>> r = Registry("colour")
>>> @r.register("red", label="Red", aliases=("rouge",))
... def red(shade: int = 1):
...     return ("red", shade)
>>> r.create("ROUGE", shade=2), r.label("red"), r.names()
(('red', 2), 'Red', ['red'])
>>> r.create("red", hue=3)
Traceback (most recent call last):
...
TypeError: colour 'red' has no keyword(s) ['hue']; valid: ['shade']
"""
from __future__ import annotations

import fnmatch
import inspect
from dataclasses import dataclass, fields
from typing import Any, Callable

__all__ = ["Info", "MethodInfo", "Registry", "UnknownNameError", "NEEDS", "MODES"]

# What a weighting computes its step from (see MethodInfo.needs).
NEEDS = ("losses", "gramian", "factored", "jacobian", "custom")
MODES = ("param", "rep")


class UnknownNameError(KeyError, ValueError):
    """An unknown registry name; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


@dataclass(frozen=True)
class Info:
    """What a registry entry is: ``name`` (lowercase key), ``label`` (as tables and figures print
    it), ``paper`` (citation and link; "" when there is none) and ``aliases`` (other spellings)."""

    name: str
    label: str
    paper: str = ""
    aliases: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.label:
            raise ValueError(f"{self.name!r} needs a label")
        object.__setattr__(self, "aliases", tuple(self.aliases))


@dataclass(frozen=True)
class MethodInfo(Info):
    """A weighting's declaration, which :class:`~mtl.weighting.GradientWeighting` dispatches on.

    ``needs``: what the step is computed from — "losses" (a loss weighting: one backward of
    Σ_t w_t L_t), "gramian" (weights from G = JJᵀ only), "factored" (per-task gradient state updated
    from a :class:`~mtl.jacobian.FactoredJacobian` by ``track``), "jacobian" (J itself) or "custom"
    (the method writes its own ``backward``: bilevel, three-batch, wrappers). ``modes``: the
    gradient modes the paper defines ("param", "rep"; empty for non-gradient methods).
    ``batches``: mini-batches drawn per step. ``stateful``: whether state carries across steps
    (``reset`` forgets it). ``ddp_exact``: whether data-parallel training (:mod:`mtl.distributed`)
    takes exactly the step one process takes on the whole batch (tested for every method that
    declares it); ``ddp_note`` says why not, and ``fit(distributed=True)`` refuses such a method
    unless ``allow_inexact=True``.
    """

    needs: str = "custom"
    modes: tuple[str, ...] = ()
    batches: int = 1
    stateful: bool = False
    ddp_exact: bool = True
    ddp_note: str = ""

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "modes", tuple(self.modes))
        if self.needs not in NEEDS:
            raise ValueError(f"{self.name!r}: needs must be one of {NEEDS}, got {self.needs!r}")
        if not set(self.modes) <= set(MODES):
            raise ValueError(f"{self.name!r}: modes must be drawn from {MODES}, got {self.modes!r}")
        if not self.ddp_exact and not self.ddp_note:
            raise ValueError(f"{self.name!r}: ddp_exact=False needs a ddp_note saying why")
        if not (isinstance(self.batches, int) and self.batches >= 1):
            raise ValueError(f"{self.name!r}: batches must be an integer ≥ 1, got {self.batches!r}")


def keyword_names(factory: Callable) -> list[str]:
    """The keyword arguments ``factory`` accepts by name (``*args``/``**kwargs`` excluded)."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [n for n, p in inspect.signature(factory).parameters.items() if p.kind in kinds and n != "self"]


class Registry:
    """Maps lowercase names to factories and their :class:`Info`; an entry is found by its name,
    label or an alias in any case; unknown names raise an error listing the valid ones."""

    def __init__(self, kind: str, info: type[Info] = Info):
        self.kind, self.info_type = kind, info
        self._entries: dict[str, tuple[Callable[..., Any], Info]] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, **meta) -> Callable:
        """Decorator: register the factory under ``name`` with the metadata ``meta`` (the fields of
        this registry's :class:`Info` type; an unknown field raises a TypeError)."""
        key = name.lower()
        valid = [f.name for f in fields(self.info_type) if f.name != "name"]
        unknown = sorted(set(meta) - set(valid))
        if unknown:
            raise TypeError(f"{self.kind} {key!r}: unknown metadata {unknown}; valid: {valid}")
        info = self.info_type(name=key, **meta)

        others = {k.lower() for k in (info.label, *info.aliases)} - {key}

        def deco(fn):
            for k in (key, *others):
                if k in self._entries or k in self._aliases:
                    raise ValueError(f"{self.kind} {k!r} is registered twice")
            self._entries[key] = (fn, info)
            self._aliases.update({k: key for k in others})
            return fn
        return deco

    def resolve(self, name: str) -> str:
        """The registered name of ``name``, its label or one of its aliases (any case)."""
        key = str(name).lower()
        key = self._aliases.get(key, key)
        if key not in self._entries:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}")
        return key

    def get(self, name: str) -> Callable[..., Any]:
        return self._entries[self.resolve(name)][0]

    def info(self, name: str) -> Info:
        return self._entries[self.resolve(name)][1]

    def label(self, name: str) -> str:
        return self.info(name).label

    def check(self, name: str, kwargs) -> None:
        """Raise a TypeError listing the valid keywords if entry ``name``'s factory does not take all of
        ``kwargs`` (a factory with ``**kwargs`` takes any)."""
        factory = self.get(name)
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(factory).parameters.values()):
            return
        valid = keyword_names(factory)
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            raise TypeError(f"{self.kind} {self.resolve(name)!r} has no keyword(s) {unknown}; valid: {valid or 'none'}")

    def create(self, name: str, **kwargs) -> Any:
        """Build entry ``name``; a keyword its factory does not take raises a TypeError listing the valid ones."""
        self.check(name, kwargs)
        return self.get(name)(**kwargs)

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern.lower()))

    def __contains__(self, name: str) -> bool:
        key = str(name).lower()
        return key in self._entries or key in self._aliases

    def __iter__(self):
        return iter(self.names())
