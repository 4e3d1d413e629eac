"""A tiny name -> factory registry shared by datasets, models and weightings (timm style)."""
from __future__ import annotations

import fnmatch
from typing import Any, Callable


class UnknownNameError(KeyError, ValueError):
    """An unknown registry name; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class Registry:
    """Maps lowercase names to factories; unknown names raise an error listing the valid ones."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable:
        def deco(fn):
            key = name.lower()
            if key in self._entries:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = fn
            return fn
        return deco

    def get(self, name: str) -> Callable[..., Any]:
        key = str(name).lower()
        if key not in self._entries:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}")
        return self._entries[key]

    def create(self, name: str, **kwargs) -> Any:
        return self.get(name)(**kwargs)

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        return str(name).lower() in self._entries
