"""The library's shape: no import cycle, no import hidden in a function, and nothing below
``mtl/studies/`` names a section's claim or a seed paper by its number."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "mtl"
MODULES = {".".join(p.relative_to(ROOT).with_suffix("").parts[:-1] if p.name == "__init__.py"
                    else p.relative_to(ROOT).with_suffix("").parts): p for p in sorted(PKG.rglob("*.py"))}
CLAIM_ID = re.compile(r"\b(C1[0-9]|C[1-9]|F[12])\b")
SEED_NUMBER = re.compile(r"\bseeds? 00[0-4]\b|\bSEED00[0-4]", re.IGNORECASE)


def _imports(name: str, path: Path, tree: ast.AST | None = None) -> list[tuple[str, ast.AST]]:
    """(imported mtl module, node) for every import in ``tree`` (default: all of ``path``), relative ones resolved."""
    tree, out = tree or ast.parse(path.read_text()), []
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                out.append((sub if sub in MODULES else mod, node))
        elif isinstance(node, ast.Import):
            out += [(alias.name, node) for alias in node.names]
    return [(m, n) for m, n in out if m in MODULES and m != name]


def _graph() -> dict[str, set[str]]:
    return {m: {t for t, _ in _imports(m, p)} for m, p in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_in_mtl():
    assert _cycles(_graph()) == []


def test_no_mtl_import_inside_a_function():
    hidden = []
    for name, path in MODULES.items():
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = ast.Module(body=fn.body, type_ignores=[])
                hidden += [f"{path.relative_to(ROOT)}:{node.lineno} imports {t}"
                           for t, node in _imports(name, path, body)]
    assert not hidden, "\n".join(sorted(set(hidden)))


@pytest.mark.parametrize("name", [m for m in MODULES if not m.startswith("mtl.studies")])
def test_library_modules_name_no_claim_and_no_seed(name):
    text = MODULES[name].read_text()
    found = [m.group(0) for m in CLAIM_ID.finditer(text)] + [m.group(0) for m in SEED_NUMBER.finditer(text)]
    assert not found, f"{MODULES[name].relative_to(ROOT)} names {sorted(set(found))}: that belongs in mtl/studies/"


ARGPARSE_ALLOWED = {"mtl.reproduce", "mtl.cli"}      # the console entry points; the library takes arguments


def test_argparse_only_in_the_console_entry_points():
    users = {name for name, path in MODULES.items()
             for node in ast.walk(ast.parse(path.read_text()))
             if (isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names))
             or (isinstance(node, ast.ImportFrom) and node.module == "argparse")}
    assert users <= ARGPARSE_ALLOWED, f"argparse outside the entry points: {sorted(users - ARGPARSE_ALLOWED)}"
    assert ARGPARSE_ALLOWED <= users
