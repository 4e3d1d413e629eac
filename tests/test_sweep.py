"""mtl.sweep: jobs run on an executor give the records a serial loop gives; failures are reported, not fatal."""
import pytest

from mtl import sweep
from mtl.experiment import train_run

SPEC = {"dataset": "multimnist", "dataset_kw": {"n_train": 64, "n_val": 16, "n_test": 16}, "backbone": "lenet",
        "train": {"epochs": 1, "batch_size": 32}}


def _specs():
    return [{**SPEC, "name": f"s{s}", "weighting": w, "train": {**SPEC["train"], "seed": s}}
            for s in (0, 1) for w in ("ew", "rlw")]


def test_serial_and_local_records_are_identical(tmp_path):
    serial = sweep.run([sweep.train(tmp_path / "a", s) for s in _specs()], sweep.Serial(threads=1))
    local = sweep.run([sweep.train(tmp_path / "b", s) for s in _specs()], sweep.Local(workers=2, threads=1))
    assert [r["metrics"] for r in serial] == [r["metrics"] for r in local]
    assert [r["params"] for r in serial] == [r["params"] for r in local]
    assert all(r["info"]["threads"] == 1 for r in serial + local)
    again = sweep.run([sweep.train(tmp_path / "b", s) for s in _specs()], sweep.Serial())
    assert all(r["resumed"] for r in again)                               # finished runs are loaded


def _fails(out_dir, message):
    raise ValueError(message)


def test_a_failed_job_is_reported_and_the_others_run(tmp_path):
    jobs = [sweep.Job(_fails, str(tmp_path), ("boom",), label="bad"), sweep.train(tmp_path, _specs()[0])]
    with pytest.raises(sweep.SweepError, match=r"(?s)1 run\(s\) failed.*- bad in .*: ValueError: boom") as e:
        sweep.run(jobs, sweep.Serial())
    assert len(e.value.failures) == 1
    assert train_run(tmp_path, _specs()[0])["resumed"]                     # the good job was recorded


def test_executor_from_environment():
    assert isinstance(sweep.from_env({}), sweep.Serial)
    ex = sweep.from_env({"MTL_EXECUTOR": "local", "MTL_WORKERS": "3", "MTL_THREADS": "2"})
    assert isinstance(ex, sweep.Local) and ex.workers == 3 and ex.threads == 2
    with pytest.raises(ValueError, match=r"unknown executor 'slurmm'; valid"):
        sweep.from_env({"MTL_EXECUTOR": "slurmm"})
    with pytest.raises(ValueError, match="workers"):
        sweep.Local(workers=0)


def test_a_script_without_a_main_guard_gets_a_hint(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "sweep_script.py"
    script.write_text("from mtl import sweep\n"
                      "def job(out_dir):\n    return {'ok': 1}\n"
                      "try:\n    sweep.run([sweep.Job(job, '.')], sweep.Local(workers=1))\n"
                      "except sweep.SweepError as e:\n    print('HINT' if '__main__' in str(e) else str(e))\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert "HINT" in out.stdout, out.stdout + out.stderr[-2000:]
