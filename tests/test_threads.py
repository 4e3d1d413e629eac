"""Thread counts: a spec can pin them (exact reproduction), and a section says when its runs mix counts."""
import json

import torch

from mtl import claims
from mtl.experiment import RunSpec, train_run
from mtl.report import verdict_markdown

SPEC = {"dataset": "multimnist", "dataset_kw": {"n_train": 64, "n_val": 16, "n_test": 16}, "backbone": "lenet",
        "train": {"epochs": 1, "batch_size": 32}}


def test_pinned_threads_are_used_recorded_and_not_part_of_the_id(tmp_path):
    before = torch.get_num_threads()
    a = train_run(tmp_path / "a", {**SPEC, "name": "r", "threads": 1})
    b = train_run(tmp_path / "b", {**SPEC, "name": "r", "threads": 2})
    assert torch.get_num_threads() == before                          # restored after the run
    assert a["info"]["threads"] == 1 and b["info"]["threads"] == 2
    assert RunSpec.from_dict({**SPEC, "threads": 1}).run_id() == RunSpec.from_dict(SPEC).run_id()
    c = train_run(tmp_path / "c", {**SPEC, "name": "r", "threads": 1})
    assert c["metrics"] == a["metrics"]                              # same pinned count: bit-identical


def test_a_section_mixing_thread_counts_says_so_once(tmp_path):
    train_run(tmp_path, {**SPEC, "name": "one", "threads": 1})
    verdicts = [claims.verdict("C0", "inconclusive", paper="p", ours="o", evidence="e")]
    claims.write_claims(tmp_path, verdicts)
    assert "threads" not in json.loads((tmp_path / "claims.json").read_text())[0]   # one count: nothing to say
    train_run(tmp_path, {**SPEC, "name": "two", "threads": 2})
    claims.write_claims(tmp_path, verdicts)
    rec = json.loads((tmp_path / "claims.json").read_text())[0]
    assert rec["threads"]["counts"] == {"1": 1, "2": 1} and "different torch thread counts" in rec["threads"]["note"]
    assert verdict_markdown(verdicts, tmp_path).count("Note on reproducibility") == 1


def test_the_current_count_is_compared_with_the_recorded_one(tmp_path, monkeypatch):
    train_run(tmp_path, {**SPEC, "name": "one", "threads": 1})
    verdicts = [claims.verdict("C0", "supports", paper="p", ours="o", evidence="e")]
    monkeypatch.setenv("MTL_THREADS", "1")
    assert "Note" not in verdict_markdown(verdicts, tmp_path)
    monkeypatch.setenv("MTL_THREADS", "3")
    assert "this process trains with 3" in verdict_markdown(verdicts, tmp_path)
