"""Run records: stable ids, atomic writes, resume instead of redo."""
import json

import pytest

from mtl import runs


def test_run_id_stable_and_sensitive():
    a = {"name": "uniform-s0", "train": {"lr": 1e-3, "epochs": 2}, "dataset": "scenes"}
    b = {"dataset": "scenes", "train": {"epochs": 2, "lr": 1e-3}, "name": "uniform-s0"}
    assert runs.run_id(a) == runs.run_id(b)                   # key order does not matter
    assert runs.run_id(a).startswith("uniform-s0-")
    assert runs.run_id(a) != runs.run_id({**a, "train": {"lr": 1e-4, "epochs": 2}})
    assert runs.run_id({"name": "a b/c"}).startswith("a_b_c-")


def test_write_atomic_leaves_no_temporary(tmp_out):
    runs.write_json(tmp_out / "x" / "m.json", {"a": 1})
    assert json.loads((tmp_out / "x" / "m.json").read_text()) == {"a": 1}
    assert [p.name for p in (tmp_out / "x").iterdir()] == ["m.json"]


def test_write_atomic_keeps_old_file_on_failure(tmp_out):
    path = tmp_out / "m.json"
    runs.write_json(path, {"a": 1})

    class Bad:
        pass
    with pytest.raises(TypeError):
        runs.write_atomic(path, Bad())           # not a str: the write fails half way
    assert json.loads(path.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_out.iterdir()) == ["m.json"]


def test_run_or_load_resumes(tmp_out):
    calls = []

    def fn():
        calls.append(1)
        return {"metrics": {"t": {"acc": 0.5}}, "history": [{"epoch": 0, "val": {"t": {"acc": 0.4}}}]}
    params = {"name": "r", "x": 1}
    first = runs.run_or_load(tmp_out, params, fn)
    second = runs.run_or_load(tmp_out, params, fn)
    assert calls == [1] and second["resumed"] and not first["resumed"]
    assert second["metrics"] == first["metrics"] and second["history"] == first["history"]
    files = sorted(p.name for p in (tmp_out / runs.run_id(params)).iterdir())
    assert files == ["config.json", "history.csv", "history.json", "metrics.json"]


def test_interrupted_run_is_redone(tmp_out):
    params = {"name": "r"}
    d = tmp_out / runs.run_id(params)
    runs.write_json(d / "config.json", params)               # died before metrics.json
    rec = runs.run_or_load(tmp_out, params, lambda: {"metrics": {"ok": 1}})
    assert not rec["resumed"] and runs.is_complete(d)


def test_failed_run_writes_nothing(tmp_out):
    def boom():
        raise RuntimeError("diverged")
    with pytest.raises(RuntimeError):
        runs.run_or_load(tmp_out, {"name": "r"}, boom)
    assert [p.name for p in tmp_out.iterdir()] == [runs.LOCKS]           # only the (released) lock file
    assert not (tmp_out / runs.run_id({"name": "r"})).exists()


def test_edited_record_is_detected(tmp_out):
    params = {"name": "r", "x": 1}
    runs.run_or_load(tmp_out, params, lambda: {"metrics": {}})
    path = tmp_out / runs.run_id(params) / "metrics.json"
    data = json.loads(path.read_text())
    data["params"]["x"] = 2
    path.write_text(json.dumps(data))
    with pytest.raises(RuntimeError, match="other parameters"):
        runs.run_or_load(tmp_out, params, lambda: {"metrics": {}})
