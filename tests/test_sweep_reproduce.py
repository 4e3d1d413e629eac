"""A section reproduced on every executor gives the records and claims.json a serial reproduction gives,
and two sweeps started at once on one runs folder train each run once."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mtl.reproduce import execute_section, executor_env

ROOT = Path(__file__).resolve().parent.parent
SECTION = "imbalance"


def _records(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text())["metrics"] for p in sorted(out.rglob("metrics.json"))}


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    root = tmp_path_factory.mktemp("serial")
    rec = execute_section(SECTION, "smoke", root, ROOT / "book", timeout=600, env=executor_env("serial", threads=1))
    assert rec["status"] == "ok", rec
    return root / SECTION / "smoke"


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_section_on_an_executor_equals_the_serial_reproduction(serial, executor, tmp_path):
    if executor == "ray":
        pytest.importorskip("ray", reason="the ray executor needs the cluster extra")
    rec = execute_section(SECTION, "smoke", tmp_path, ROOT / "book", timeout=600,
                          env=executor_env(executor, workers=2, threads=1))
    assert rec["status"] == "ok", rec
    out = tmp_path / SECTION / "smoke"
    assert (out / "claims.json").read_bytes() == (serial / "claims.json").read_bytes()
    mine, theirs = _records(out), _records(serial)
    assert mine.keys() == theirs.keys() and mine == theirs


SWEEP = textwrap.dedent("""
    import json, sys
    from mtl import sweep
    spec = {"dataset": "multimnist", "dataset_kw": {"n_train": 64, "n_val": 16, "n_test": 16}, "backbone": "lenet",
            "train": {"epochs": 1, "batch_size": 32}}
    jobs = [sweep.train(sys.argv[1], {**spec, "name": f"s{s}", "train": {**spec["train"], "seed": s}})
            for s in range(4)]
    recs = sweep.run(jobs, sweep.Local(workers=2, threads=1))
    print(json.dumps([[r["run_dir"], r["resumed"]] for r in recs]))
""")


def test_two_sweeps_at_once_train_each_run_once(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", SWEEP, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT) for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=600)[0].strip().splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    trained = [d for out in outs for d, resumed in out if not resumed]
    assert sorted(trained) == sorted({d for d, _ in outs[0]})      # every run trained once, by one of the sweeps
    assert len({d for out in outs for d, _ in out}) == 4
