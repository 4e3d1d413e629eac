"""Write a section notebook template from a list of ("md"|"code"|"params", source) cells.

Used by ``tools/make_<section>.py`` scripts so the committed ``.ipynb`` templates stay reviewable
as plain Python; run ``python tools/make_<section>.py`` after editing one.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def write(path: str | Path, cells: list[tuple[str, str]], title: str) -> None:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    out = []
    for kind, src in cells:
        src = src.strip("\n")
        if kind == "md":
            out.append(new_markdown_cell(src))
        elif kind == "params":
            out.append(new_code_cell(src, metadata={"tags": ["parameters", "hide-input"]}))
        elif kind == "hidden":
            out.append(new_code_cell(src, metadata={"tags": ["hide-input"]}))
        else:
            out.append(new_code_cell(src))
    nb.cells = out
    nbformat.validate(nb)
    path = Path(__file__).resolve().parent.parent / path
    path.write_text(nbformat.writes(nb))
    print(f"wrote {path} ({len(out)} cells)", file=sys.stderr)
