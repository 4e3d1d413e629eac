"""Every registry carries its metadata and builds through one checked ``create`` path: lookup by
name, label or alias in any case, clear errors, labels and papers on every entry, the curve-family
contract over ``names()``, and the book's tables reading labels from the registry."""
import inspect
import re

import pytest
import torch

import mtl
import mtl.curves as C
import mtl.data as D
import mtl.weighting as W
from mtl.studies import _paper as reference
from mtl.models import ARCHITECTURES, BACKBONES, create_model
from mtl.registry import NEEDS, Info, MethodInfo, Registry, UnknownNameError

REGISTRIES = {"weighting": W.WEIGHTINGS, "architecture": ARCHITECTURES, "backbone": BACKBONES,
              "curve": C.FAMILIES, "dataset": D.DATASETS}


# ----------------------------------------------------------------------------- the Registry itself
def test_lookup_by_name_label_or_alias_in_any_case():
    for spelling in ("nashmtl", "NashMTL", "Nash-MTL", "NASH-mtl"):
        assert W.info(spelling).name == "nashmtl" and spelling in W.WEIGHTINGS
    assert W.info("Uniform").name == "ew" and W.info("DB-MTL").name == "dbmtl"
    assert W.create("Nash-MTL").__class__ is W.WEIGHTINGS.get("nashmtl")
    with pytest.raises(UnknownNameError, match="valid names:.*nashmtl"):
        W.info("nash")


def test_names_filters_by_pattern_and_lists_canonical_names_only():
    assert W.names("*mtl") == ["alignedmtl", "consmtl", "dbmtl", "excessmtl", "imtl", "nashmtl"]
    assert "nash-mtl" not in W.names() and "uniform" not in W.names()


def test_register_rejects_duplicates_unknown_metadata_and_bad_declarations():
    r = Registry("thing", info=MethodInfo)
    r.register("a", label="A", aliases=("alpha",))(object)
    with pytest.raises(ValueError, match="'alpha' is registered twice"):
        r.register("b", label="B", aliases=("ALPHA",))(object)
    with pytest.raises(TypeError, match=r"unknown metadata \['colour'\]; valid: \['label', 'paper'"):
        r.register("c", label="C", colour="red")
    with pytest.raises(ValueError, match="needs must be one of"):
        r.register("d", label="D", needs="gram")
    with pytest.raises(ValueError, match="modes must be drawn from"):
        r.register("e", label="E", modes=("features",))
    with pytest.raises(TypeError, match="label"):
        Registry("thing").register("f")                               # a label is required
    with pytest.raises(TypeError, match=r"weighting 'g' must declare \['needs'\]"):
        W.register("g", label="G")                                    # the engine follows needs: never implied


def test_info_is_frozen():
    with pytest.raises(AttributeError):
        W.info("mgda").needs = "jacobian"


@pytest.mark.parametrize("kind", list(REGISTRIES))
def test_create_checks_keywords_against_the_factory_signature(kind):
    reg = REGISTRIES[kind]
    name = next(n for n in reg.names() if "**" not in str(inspect.signature(reg.get(n))))
    with pytest.raises(TypeError, match=rf"{kind}.* {name!r} has no keyword\(s\) \['not_a_keyword'\]; valid: "):
        reg.create(name, not_a_keyword=1)


def test_create_model_takes_both_keyword_sets_and_checks_them():
    from mtl import tasks as T

    task = [T.classification("left", 10)]
    m = create_model("mmoe", "lenet", task, architecture_kw={"num_experts": 3}, backbone_kw={"features": 12})
    assert len(m.encoder) == 3 and all(e.fc[1].out_features == 12 for e in m.encoder)
    with pytest.raises(TypeError, match=r"backbone 'lenet' has no keyword\(s\) \['width'\]; "
                                        r"valid: \['in_channels', 'features'\]"):
        create_model("hps", "lenet", task, backbone_kw={"width": 4})
    with pytest.raises(TypeError, match=r"architecture 'mmoe' has no keyword\(s\) \['experts'\]"):
        create_model("mmoe", "lenet", task, architecture_kw={"experts": 2})
    with pytest.raises(TypeError):
        create_model("hps", "lenet", task, features=12)               # backbone keywords go in backbone_kw


# ----------------------------------------------------------------------------- metadata on every entry
@pytest.mark.parametrize("kind", list(REGISTRIES))
def test_every_entry_has_a_label_and_distinct_labels(kind):
    reg = REGISTRIES[kind]
    infos = [reg.info(n) for n in reg.names()]
    assert infos and all(isinstance(i, Info) and i.label for i in infos)
    assert len({i.label for i in infos}) == len(infos)


@pytest.mark.parametrize("name", W.names())
def test_every_weighting_declares_its_metadata(name):
    info = W.info(name)
    assert isinstance(info, MethodInfo) and info.needs in NEEDS
    if name not in ("ew", "ls"):                                       # the two baselines have no paper
        assert info.paper, name
    if info.needs == "losses":
        assert info.modes == ()


def test_weighting_papers_link_where_the_docstring_does():
    for name in W.names():
        doc = W.WEIGHTINGS.get(name).__doc__ or ""
        links = re.findall(r"https?://[^\s)]+", doc)
        if links:
            assert links[0] in W.info(name).paper, (name, links[0])


# ----------------------------------------------------------------------------- curve families: contract over names()
@pytest.mark.parametrize("name", C.names())
def test_curve_family_contract(name):
    """Defaults build; the default point gives n finite coefficients summing to 1; ends hit the end points."""
    fam = C.create(name, 3)
    assert repr(fam) and fam.n_points == 3
    c = fam(fam.default_point()).detach().double()                   # [n]
    assert c.shape == (3,) and torch.isfinite(c).all()
    torch.testing.assert_close(c.sum(), torch.tensor(1.0, dtype=torch.float64), rtol=0, atol=1e-6)
    first = torch.eye(3, dtype=torch.float64)[0] if fam.point_dim == 3 else 0.0
    torch.testing.assert_close(fam(first).detach().double(), torch.eye(3, dtype=torch.float64)[0], rtol=0, atol=1e-7)


# ----------------------------------------------------------------------------- labels in the book
def test_reference_rows_resolve_to_registered_methods():
    """The papers' row labels, in either spelling (NashMTL / Nash-MTL), name registered methods."""
    tables = [reference.SEED004_TABLE2_NYUD_R18_ROWS, reference.SEED004_TABLE3_NYUD_R50_ROWS,
              reference.SEED004_TABLE2_DELTA["rows"], reference.SEED004_TABLE3_DELTA["rows"],
              reference.SEED002_TABLE2["rows"]]
    for rows in tables:
        for row in rows:
            name = reference.method_of(row)
            assert (name is None) == (row in reference.NOT_METHODS)
            assert name is None or W.info(row).name == name
    assert reference.method_of("Nash-MTL") == reference.method_of("NashMTL") == "nashmtl"


def test_mto_labels_are_the_registry_labels():
    from mtl.studies import mto

    assert mto.label("nashmtl") == "NashMTL" and mto.label("ew") == "Uniform"
    assert mto.label("autolambda") == "Auto-Lambda"
    assert all(mto.label(n) == W.label(n) for n in W.names())


def test_the_methods_page_lists_every_registered_entry(monkeypatch):
    """book/methods.md's code cell, run as the book build runs it, prints one table row per name."""
    import IPython.display
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "book" / "methods.md").read_text()
    cell = page.split("```{code-cell} ipython3", 1)[1].split("```", 1)[0]
    code = "\n".join(line for line in cell.splitlines() if not line.startswith(":"))   # minus MyST options
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda md: shown.append(md.data))
    exec(code, {})
    text = "\n".join(shown)
    for kind, reg in REGISTRIES.items():
        missing = [n for n in reg.names() if f"| `{n}` | {reg.label(n)} |" not in text]
        assert not missing, (kind, missing)


# ----------------------------------------------------------------------------- the package
def test_package_version_and_lazy_submodules():
    assert isinstance(mtl.__version__, str) and mtl.__version__.count(".") >= 1
    assert mtl.weighting is W and "weighting" in dir(mtl) and set(mtl.__all__) >= {"weighting", "models", "studies"}
    with pytest.raises(AttributeError, match="submodules: .*weighting"):
        mtl.no_such_module


def test_import_mtl_alone_imports_no_submodule():
    import subprocess
    import sys

    code = "import sys, mtl; print(sorted(m for m in sys.modules if m.startswith('mtl.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
