"""The MTL imbalance companion: weightings, architectures, datasets and the book's studies.

Submodules load on first use (``import mtl`` itself imports nothing heavy):

>>> import mtl
>>> mtl.weighting.create("mgda")
MGDA(mode='rep', chunk_size=None, normalize='none')
"""
from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import PackageNotFoundError, version


def _version() -> str:
    """The installed distribution's version, else (a source checkout) pyproject.toml's."""
    try:
        return version("mtl-imbalance")
    except PackageNotFoundError:
        import tomllib
        from pathlib import Path

        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        return tomllib.loads(pyproject.read_text())["project"]["version"]


__version__ = _version()

#: every public submodule, found in the package folder (so a new module is listed without editing this file)
__all__ = ["__version__", *sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))]


def __getattr__(name: str):
    """Import submodule ``name`` on first access (PEP 562)."""
    if name in __all__ and name != "__version__":
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}; submodules: {', '.join(__all__[1:])}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
