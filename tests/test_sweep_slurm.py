"""The slurm executor on a real one-node Slurm (``.ci/slurm-up``: slurmctld + slurmd on localhost):
a job array gives the records a serial sweep gives, with its logs in ``<out_dir>/.slurm/``."""
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mtl import sweep

ROOT = Path(__file__).resolve().parents[1]
SPEC = {"dataset": "multimnist", "dataset_kw": {"n_train": 64, "n_val": 16, "n_test": 16}, "backbone": "lenet",
        "train": {"epochs": 1, "batch_size": 32}}


def _slurm_idle() -> bool:
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "idle" in out.stdout


@pytest.fixture(scope="module")
def slurm():
    pytest.importorskip("submitit")
    if not shutil.which("slurmctld") or not shutil.which("sbatch"):
        pytest.skip("slurmctld/sbatch not installed: run `bash .ci/slurm-up` (as root; installs Debian's "
                    "slurmctld, slurmd and munge and starts a one-node Slurm) to test on a real Slurm")
    if not _slurm_idle():
        if os.geteuid() != 0:
            pytest.skip("Slurm is installed but not running, and starting it (.ci/slurm-up) needs root")
        subprocess.run(["bash", str(ROOT / ".ci" / "slurm-up")], check=True, timeout=180)
    assert _slurm_idle(), "Slurm did not come up (see /var/log/slurm/)"


def _killed(out_dir):
    os.kill(os.getpid(), signal.SIGKILL)


def test_slurm_job_array_records_equal_serial_and_failures_are_named(tmp_path, slurm):
    import cloudpickle
    cloudpickle.register_pickle_by_value(sys.modules[__name__])          # this module's job, sent by value
    specs = [{**SPEC, "name": f"s{s}", "train": {**SPEC["train"], "seed": s}} for s in (0, 1)]
    serial = sweep.run([sweep.train(tmp_path / "serial", s) for s in specs], sweep.Serial(threads=1))
    ex = sweep.Slurm(cluster="slurm", partition="debug", workers=2, threads=1, time=10, mem_gb=1, poll_s=1)
    out = tmp_path / "slurm"
    bad = sweep.train(out, {**SPEC, "name": "bad", "dataset_kw": {"n_trian": 5}})
    with pytest.raises(sweep.SweepError, match=r"2 run\(s\) failed") as e:
        sweep.run([*(sweep.train(out, s) for s in specs), bad, sweep.Job(_killed, str(out), label="killed")], ex)
    errors = {job.label: o.error for job, o in e.value.failures}
    assert "n_trian" in errors["bad"]                                  # the run's own error
    assert "left the queue without a result" in errors["killed"]       # killed outside the run: not waited on
    logs = list((out / ".slurm").glob("*/*_log.out"))                  # <array id>_<task>_0_log.out
    assert len(logs) == 4                                              # one array task per job ...
    assert len({p.name.split("_")[0] for p in logs}) == 1              # ... of one job array
    records = sweep.run([sweep.train(out, s) for s in specs], sweep.Serial())
    assert all(r["resumed"] for r in records)                          # recorded by the array
    assert [r["metrics"] for r in records] == [r["metrics"] for r in serial]
    assert all(r["info"]["threads"] == 1 for r in records)
