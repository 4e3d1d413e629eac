"""The execution-status page (book/status.md from runs/reproduce-<profile>.json) and the provenance
line under each section's first figure (``mtl.report.provenance_line``)."""
import hashlib
import json
import re
from pathlib import Path

import pytest

from mtl import reproduce
from mtl.report import NOT_RECORDED, SPEC_HASHES, STATUS_COLUMNS, provenance_line, status_markdown, status_rows
from mtl.runs import copy_record, write_json

ROOT = Path(__file__).resolve().parent.parent
PAGE_BODY = """\
import json, os
os.makedirs(f"{out_dir}/r-2", exist_ok=True)
rec = {"params": {}, "metrics": {}, "info": {"threads": 1, "torch": "9.9"}}
json.dump(rec, open(f"{out_dir}/r-2/metrics.json", "w"))
"""


def _run(out: Path, rid: str, threads=2, torch="2.14.1") -> None:
    write_json(out / rid / "metrics.json", {"params": {"name": rid}, "metrics": {}, "info": {"threads": threads,
                                                                                          "torch": torch}})


def test_the_committed_record_renders_with_dashes_for_what_it_lacks():
    records = json.loads((ROOT / "runs" / "reproduce-cpu.json").read_text())
    order = reproduce.sections(ROOT / "book")
    rows = status_rows(records, order)
    assert [r[0] for r in rows] == [s for s in order if s in {r["section"] for r in records}]
    by = {r[0]: dict(zip(STATUS_COLUMNS, r)) for r in rows}
    for rec in records:
        row = by[rec["section"]]
        assert row["status"] == "ok" and row["first execution"].endswith(" s")
        for col, key in (("runs", "runs"), ("threads", "threads"), ("torch", "torch"), ("runs made at", "runs_commit")):
            assert (row[col] == NOT_RECORDED) == (rec.get(key) in (None, {})), (rec["section"], col)   # {}: no run says
    page = status_markdown(ROOT / "runs", order)
    assert "## Profile `cpu`" in page and page.count("\n| ") == len(records) + 1


def test_the_page_is_in_the_toc_and_reads_the_records():
    assert "      - file: status\n" in (ROOT / "book" / "_toc.yml").read_text()
    text = (ROOT / "book" / "status.md").read_text()
    assert 'report.status_markdown("runs", reproduce.sections())' in text


def test_status_shows_new_fields_failures_and_no_record(tmp_path):
    assert "No reproduction is recorded" in status_markdown(tmp_path)
    write_json(tmp_path / "reproduce-gpu.json", [
        {"section": "b", "profile": "gpu", "status": "ValueError: bad | worse\nmore", "duration_s": 3.21},
        {"section": "a", "profile": "gpu", "status": "ok", "duration_s": 120.0, "first_duration_s": 4000.4,
         "runs": 12, "trained": 0, "threads": {"1": 2, "2": 10}, "torch": {"2.14.1": 12},
         "commit": "abcdef012345+dirty", "runs_commit": "0123456789ab"}])
    page = status_markdown(tmp_path, ["a", "b"])
    lines = [line for line in page.splitlines() if line.startswith("| ")]
    assert lines[1] == ("| a | ok | 120 s | 4000 s | 12 | 0 | — | 1 (2 runs), 2 (10 runs) | 2.14.1 | 0123456789ab | "
                        "abcdef012345+dirty |")
    assert lines[2].startswith("| b | FAILED: ValueError: bad \\| worse | 3.2 s | — | — |")


def test_reproduce_records_runs_threads_torch_and_the_commit(tmp_path, monkeypatch, write_page):
    book = tmp_path / "book"
    write_page(book, "s", PAGE_BODY)
    out = tmp_path / "runs" / "s" / "smoke"
    _run(out, "r-1")
    rec = reproduce.execute_section("s", "smoke", tmp_path / "runs", book, timeout=300)
    assert rec["status"] == "ok", rec
    assert (rec["runs"], rec["trained"]) == (2, 1)                 # r-1 was there, the page made r-2
    assert rec["threads"] == {"1": 1, "2": 1} and rec["torch"] == {"2.14.1": 1, "9.9": 1}
    assert re.fullmatch(r"[0-9a-f]{12}(\+dirty)?", rec["commit"])
    assert reproduce.git_commit(tmp_path) is None                   # no checkout there


def test_runs_commit_is_the_last_execution_that_trained(tmp_path, monkeypatch):
    (tmp_path / "book" / "sections").mkdir(parents=True)
    (tmp_path / "book" / "sections" / "a.md").write_text("# a\n")
    monkeypatch.setattr(reproduce, "repo_root", lambda: tmp_path)
    state = {"trained": 3, "commit": "111111111111"}

    def execute(section, profile, runs_root, book, timeout):
        return {"section": section, "profile": profile, "status": "ok", "duration_s": 1.0, "runs": 3,
                "notebook": str(runs_root / section / profile / f"{section}.ipynb"), **state}
    monkeypatch.setattr(reproduce, "execute_section", execute)
    summary = tmp_path / "runs" / "reproduce-cpu.json"

    def record():
        assert reproduce.main(["--no-book"]) == 0
        return json.loads(summary.read_text())[0]
    assert record()["runs_commit"] == "111111111111"
    state.update(trained=0, commit="222222222222")                  # loads everything: the runs are older
    r = record()
    assert (r["runs_commit"], r["commit"]) == ("111111111111", "222222222222")
    state.update(trained=1, commit="333333333333")
    assert record()["runs_commit"] == "333333333333"
    write_json(summary, [{"section": "a", "profile": "cpu", "status": "ok", "duration_s": 1.0}])   # an old record
    state.update(trained=0)
    assert "runs_commit" not in record()                            # unknown stays unknown (shown as —)


def test_provenance_line_writes_the_spec_hashes_file(tmp_path):
    out = tmp_path / "runs" / "sec" / "cpu"
    for rid in ("b-0123456789", "a-9876543210", "stage/c-aaaaaaaaaa"):
        _run(out, rid)
    _run(out / ".corrupt", "x-1111111111")                          # moved aside: not a run behind a figure
    (out / "unfinished-2222222222").mkdir()
    line = provenance_line(out)
    text = (out / SPEC_HASHES).read_text()
    assert text == "a-9876543210\nb-0123456789\nstage/c-aaaaaaaaaa\n"
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    assert line.startswith("*Provenance:* profile `cpu`, 3 runs; spec hashes in `") and f"SHA-1 `{digest}`" in line
    assert line.split("`")[3].endswith("runs/sec/cpu/spec_hashes.txt")
    mtime = (out / SPEC_HASHES).stat().st_mtime_ns
    assert provenance_line(out) == line and (out / SPEC_HASHES).stat().st_mtime_ns == mtime   # unchanged: not rewritten
    _run(out, "d-5555555555")
    assert ", 4 runs;" in provenance_line(out) and "d-5555555555\n" in (out / SPEC_HASHES).read_text()


@pytest.mark.parametrize("section", ["imbalance", "fronts"])
def test_provenance_of_a_committed_section_counts_its_records(section, tmp_path):
    import shutil

    src = ROOT / "runs" / section / "cpu"
    copy = tmp_path / section / "cpu"                               # never write into the committed runs/
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("*.ipynb", "*.png", "history.*"))
    n = len([f for f in src.rglob("metrics.json") if ".corrupt" not in f.parts])
    assert f"profile `cpu`, {n} runs;" in provenance_line(copy)
    assert len((copy / SPEC_HASHES).read_text().splitlines()) == n


def test_a_run_copied_from_another_section_counts_as_copied_not_trained(tmp_path, monkeypatch):
    """``provenance``: a new record byte-identical to a sibling section's same run is a copy; one with
    the same id but its own bytes (trained again: its own train time) counts as trained."""
    runs = tmp_path / "runs"
    monkeypatch.setenv("MTL_RUNS", str(runs))
    _run(runs / "a" / "cpu", "shared")
    _run(runs / "a" / "cpu", "other", threads=1)
    out = runs / "b" / "cpu"
    before = set()
    copy_record(runs / "a" / "cpu" / "shared", out / "shared")
    _run(out, "other")                                             # same id, different bytes: trained here
    _run(out, "own")
    rec = reproduce.provenance(out, before)
    assert (rec["runs"], rec["trained"], rec["copied"]) == (3, 2, 1)
    assert reproduce.provenance(out, set(out.rglob("metrics.json")))["copied"] == 0   # nothing new: nothing copied
