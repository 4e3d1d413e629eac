"""Every section page (``book/sections/<s>.md``) at the ``smoke`` profile: papermill into a temporary
folder (never into the committed runs/), nbval on those outputs, and a book build of them with
warnings as errors."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mtl.paths import status_file
from mtl.reproduce import execute_section, sections, write_toc
from mtl.runs import write_json

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = sections(ROOT / "book")


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory):
    """Executed smoke notebooks: <tmp>/runs/<section>/smoke/<section>.ipynb."""
    runs_root = tmp_path_factory.mktemp("smoke") / "runs"
    results = {s: execute_section(s, "smoke", runs_root, ROOT / "book", timeout=600) for s in SECTIONS}
    write_json(status_file(runs_root, "smoke"), list(results.values()))   # what mtl-reproduce records
    return runs_root, results


@pytest.mark.parametrize("section", SECTIONS)
def test_section_runs_at_smoke(smoke_runs, section):
    runs_root, results = smoke_runs
    assert results[section]["status"] == "ok", results[section]
    out = runs_root / section / "smoke"
    assert (out / f"{section}.ipynb").exists()
    assert (out / "claims.json").exists(), "every section writes its verdicts"


def test_nbval_lax_on_smoke_outputs(smoke_runs):
    runs_root, _ = smoke_runs
    notebooks = sorted(str(p) for p in runs_root.glob("*/smoke/*.ipynb") if not p.name.startswith("."))
    assert notebooks
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
           "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"), *notebooks]
    proc = subprocess.run(cmd, cwd=runs_root, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_book_builds_from_smoke_outputs(smoke_runs, tmp_path):
    runs_root, _ = smoke_runs
    book = tmp_path / "book"
    shutil.copytree(ROOT / "book", book, symlinks=True, ignore=shutil.ignore_patterns("_build", "runs"))
    (book / "_config.yml").unlink()
    shutil.copy(ROOT / "_config.yml", book / "_config.yml")
    (book / "runs").symlink_to(runs_root, target_is_directory=True)
    write_toc(book, book / "runs", "smoke")
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jb), "build", "--all", "-W", "--keep-going", str(book)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    html = book / "_build" / "html"
    for s in SECTIONS:
        page = (html / "runs" / s / "smoke" / f"{s}.html").read_text()
        assert "Verdict" in page and ("supports" in page or "contradicts" in page or "inconclusive" in page)
    assert "C1" in (html / "claims.html").read_text()
    status = (html / "status.html").read_text()                 # the execution-status page, from the records
    assert "Profile <code" in status and "<table" in status
    assert all(re.search(rf"<td>(<p>)?{s}(</p>)?</td>", status) for s in SECTIONS), "a table row per section"
