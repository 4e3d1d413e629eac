"""One section, one name: ``book/sections/<s>.md`` (the page), ``book/sections/<s>.yaml`` (its profiles),
``mtl/studies/<s>.py`` (its module, with ``Params`` and ``setup``) and ``tests/test_studies_<s>.py``.

Section modules are the public modules of :mod:`mtl.studies`; a private one (``_extra_curves``, the
EXTRA runs several sections share) is a helper, not a section.
"""
import dataclasses
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import mtl.studies
from mtl import profiles
from mtl.reproduce import read_page, sections

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "book" / "sections"


def section_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(mtl.studies.__path__) if not m.name.startswith("_"))


MODULES = section_modules()


def test_every_section_module_has_a_page_a_profile_file_and_a_test_and_back():
    pages = {p.stem for p in PAGES.glob("*.md")}
    yamls = {p.stem for p in PAGES.glob("*.yaml")}
    tests = {p.stem.removeprefix("test_studies_") for p in (ROOT / "tests").glob("test_studies_*.py")}
    assert pages == set(MODULES), (f"pages without a module: {pages - set(MODULES)}; "
                                   f"modules without a page: {set(MODULES) - pages}")
    assert yamls == set(MODULES), (f"yaml without a module: {yamls - set(MODULES)}; "
                                   f"modules without a yaml: {set(MODULES) - yamls}")
    assert tests == set(MODULES), (f"tests without a module: {tests - set(MODULES)}; "
                                   f"modules without a test: {set(MODULES) - tests}")
    order = (PAGES / "ORDER").read_text().split()
    assert sorted(order) == MODULES and sections(ROOT / "book") == order   # book order lists every section once


@pytest.mark.parametrize("section,profile", [(s, p) for s in MODULES for p in profiles.defined(s)])
def test_each_profile_validates_against_its_params(section, profile, tmp_path):
    S = importlib.import_module(f"mtl.studies.{section}")
    assert dataclasses.is_dataclass(S.Params)
    P, out = S.setup(profile, str(tmp_path / "out"))
    assert P == profiles.load(section, profile)     # the yaml's mapping itself, `common` merged
    assert out == (tmp_path / "out").resolve() and out.is_dir()


@pytest.mark.parametrize("section", MODULES)
def test_page_opens_with_parameters_then_the_two_line_setup(section):
    nb = read_page(PAGES / f"{section}.md")
    assert nb.metadata["kernelspec"]["name"] == "python3" and "jupytext" not in nb.metadata
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert set(code[0].metadata["tags"]) == {"parameters", "hide-input"}
    assert re.findall(r"^(\w+) =", code[0].source, re.M) == ["profile", "out_dir", "progress"]
    first, second = code[1].source.splitlines()
    m = re.fullmatch(rf"from mtl\.studies import {section}(?: as (\w+))?", first)
    assert m, first
    assert second == f"P, OUT = {m.group(1) or section}.setup(profile, out_dir)"
    ids = [c.id for c in nb.cells]
    assert len(set(ids)) == len(ids) and ids == [c.id for c in read_page(PAGES / f"{section}.md").cells]  # stable


@pytest.fixture()
def sections_in(tmp_path, monkeypatch):
    """Point the profile files at ``tmp_path`` (one ``<section>.yaml`` written per call)."""
    monkeypatch.setattr(profiles, "sections_dir", lambda: tmp_path)

    def write(section: str, text: str) -> Path:
        path = tmp_path / f"{section}.yaml"
        path.write_text(text)
        return path
    return write


def test_an_unknown_key_names_the_file_the_key_and_the_valid_keys(sections_in, tmp_path):
    from mtl.studies import imbalance

    sections_in("imbalance", "smoke:\n  datasets: {}\n  dataset: {}\n")
    with pytest.raises(ValueError) as e:
        imbalance.setup("smoke", str(tmp_path / "out"))
    msg = str(e.value)
    assert "imbalance.yaml" in msg and "profile 'smoke'" in msg
    assert "unknown key(s) ['dataset']" in msg and "valid keys: ['datasets']" in msg


def test_a_missing_required_key_is_named_and_defaults_are_optional(sections_in, tmp_path):
    from mtl.studies import fronts

    sections_in("fronts", "common: {seeds: [0], n_train: 8, n_val: 4, n_test: 4, epochs: 1, n_grid: 2}\n"
                          "smoke: {}\ncpu: {n_sweep: 2}\n")
    with pytest.raises(ValueError, match=r"fronts\.yaml \(profile 'smoke'.*missing required key\(s\) \['n_sweep'\]"):
        fronts.setup("smoke", str(tmp_path / "out"))
    P, _ = fronts.setup("cpu", str(tmp_path / "out"))          # hv_ref, device, lr... have defaults
    assert "hv_ref" not in P and P["n_sweep"] == 2             # defaults are not written into the mapping


def test_a_relative_output_folder_is_taken_from_the_repository_root(tmp_path, monkeypatch):
    monkeypatch.setattr(profiles, "repo_root", lambda: tmp_path / "repo")
    monkeypatch.chdir(tmp_path)
    out = profiles.out_dir("imbalance", "smoke", "runs/x/smoke")
    assert out == (tmp_path / "repo" / "runs" / "x" / "smoke").resolve() and out.is_dir()
    assert profiles.out_dir("imbalance", "smoke", str(tmp_path / "abs")) == (tmp_path / "abs").resolve()
