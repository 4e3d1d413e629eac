"""``mtl-reproduce --dry-run``: sections execute with one step per training run in a temporary runs
folder; runs and estimated costs are counted per section, failures named; runs/ is never written."""
import json
import os
import shutil
from pathlib import Path

import pytest

from mtl import reproduce, sweep
from mtl.experiment import train_run
from mtl.train import TrainConfig, fit

ROOT = Path(__file__).resolve().parent.parent
SPEC = {"dataset": "multimnist", "dataset_kw": {"n_train": 96, "n_val": 16, "n_test": 16}, "backbone": "lenet",
        "train": {"epochs": 3, "batch_size": 16}}
def test_fit_in_dry_mode_takes_one_step_and_records_its_time(monkeypatch, tmp_path):
    from mtl.experiment import RunSpec
    spec = RunSpec.from_dict(SPEC)
    data = spec.build_data()
    monkeypatch.setenv("MTL_DRY_RUN", "1")
    monkeypatch.setenv("MTL_DRY_RUN_LOG", str(tmp_path / "log.jsonl"))
    hist = fit(spec.build_model(data), data, spec.build_weighting(), TrainConfig(**SPEC["train"]))
    assert len(hist.epochs) == 1
    dry = hist.info["dry_run"]
    assert (dry["epochs"], dry["steps_per_epoch"]) == (3, 96 // 16)
    assert dry["estimate_s"] == pytest.approx(dry["step_s"] * 3 * 6)
    assert json.loads((tmp_path / "log.jsonl").read_text())["estimate_s"] == dry["estimate_s"]
    with pytest.raises(RuntimeError, match="inside runs/"):               # never recorded among real runs
        train_run(ROOT / "runs" / "dry-run-guard", SPEC)
    assert not (ROOT / "runs" / "dry-run-guard").exists()


def test_dry_run_counts_runs_estimates_cost_and_names_failures(tmp_path, write_page):
    book = tmp_path / "book"
    specs = [{**SPEC, "name": f"s{s}", "train": {**SPEC["train"], "seed": s}} for s in (0, 1)]
    write_page(book, "good", "from mtl import sweep\nfrom mtl.profiles import out_dir as od\n"
                        f"OUT = od('good', profile, out_dir)\nR = sweep.run([sweep.train(OUT, s) for s in {specs!r}])\n"
                        "assert all(len(r['history']) == 1 for r in R)")
    write_page(book, "bad", "from mtl.experiment import train_run\n"
                       f"train_run(out_dir, {{**{SPEC!r}, 'weighting': 'rlw', 'weighting_kw': {{'temprature': 2}}}})")
    before = sorted(p.name for p in (ROOT / "runs").iterdir())
    env = reproduce.executor_env("local", workers=2, threads=1)
    records = reproduce.dry_run(["good", "bad"], "smoke", book, timeout=300, env=env)
    good, bad = records
    assert good["status"] == "ok" and good["runs"] == 2
    assert 0 < good["step_s"] and good["estimate_s"] == pytest.approx(good["step_s"] * 3 * 6)
    assert bad["status"] != "ok" and "temprature" in bad["status"]
    failed_nb = Path(bad["notebook"]).with_suffix(".failed.ipynb")
    assert failed_nb.exists() and not failed_nb.is_relative_to(ROOT)     # kept for a look: a section failed
    assert sorted(p.name for p in (ROOT / "runs").iterdir()) == before   # nothing under the real runs/
    table = reproduce.dry_run_table(records)
    assert "good" in table and "FAILED" in table and "total" in table
    shutil.rmtree(failed_nb.parents[3])                                 # the kept temporary folder


def test_a_real_section_dry_runs_at_smoke():
    records = reproduce.dry_run(["imbalance"], "smoke", timeout=300, env={"MTL_EXECUTOR": "serial"})
    assert records[0]["status"] == "ok", records[0]
    assert records[0]["runs"] > 0 and records[0]["estimate_s"] >= records[0]["step_s"] > 0


@pytest.mark.parametrize("argv, message", [
    (["--executor", "serial", "--workers", "2"], "takes no --workers"),
    (["--executor", "local", "--address", "auto"], "takes no --address"),
    (["--executor", "slurm", "--slurm-config", "/no/such.yaml"], "does not exist"),
    (["--executor", "local", "--threads", "0"], "expected a positive integer"),
    (["--executor", "dask"], "invalid choice"),
    (["--executor", "local", "--gpus-per-run", "1"], "takes no --gpus-per-run"),
    (["--executor", "ray", "--gpus-per-run", "-1"], "expected a number ≥ 0"),
])
def test_reproduce_refuses_bad_executor_settings(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        reproduce.main([*argv, "--no-book", "--sections", "imbalance"])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_executor_env_reaches_sweeps_through_the_environment():
    env = reproduce.executor_env("ray", workers=2, threads=1, address="auto", gpus_per_run=0.5)
    assert env == {"MTL_EXECUTOR": "ray", "MTL_WORKERS": "2", "MTL_THREADS": "1", "MTL_RAY_ADDRESS": "auto",
                   "MTL_GPUS_PER_RUN": "0.5"}
    pytest.importorskip("ray")
    ex = sweep.from_env(env)
    assert (ex.name, ex.workers, ex.threads, ex.address, ex.gpus_per_run) == ("ray", 2, 1, "auto", 0.5)
    local = sweep.from_env(reproduce.executor_env())                   # mtl-reproduce's default
    assert isinstance(local, sweep.Local) and local.threads == 1 and local.workers >= 1


def test_slurm_config_values_are_not_overridden_by_unset_flags(tmp_path):
    pytest.importorskip("submitit")
    cfg = tmp_path / "slurm.yaml"
    cfg.write_text("threads: 8\ngpus_per_run: 1\nworkers: 16\n")
    env = reproduce.executor_env("slurm", slurm_config=cfg)
    assert env == {"MTL_EXECUTOR": "slurm", "MTL_SLURM_CONFIG": str(cfg.resolve())}
    ex = sweep.from_env(env)
    assert (ex.threads, ex.cpus_per_run, ex.gpus_per_run, ex.workers) == (8, 8, 1, 16)
    ex = sweep.from_env(reproduce.executor_env("slurm", threads=2, slurm_config=cfg))   # a flag overrides the file
    assert (ex.threads, ex.cpus_per_run) == (2, 2)


def test_reproduce_hands_the_executor_to_the_kernels(monkeypatch, tmp_path):
    seen = []

    def execute(section, profile, runs_root, book, timeout):           # where the kernel would start
        seen.append({k: os.environ.get(k) for k in ("MTL_EXECUTOR", "MTL_WORKERS", "MTL_THREADS")})
        return {"section": section, "profile": profile, "status": "ok", "duration_s": 0.0,
                "notebook": str(ROOT / "runs" / section / profile / f"{section}.ipynb")}
    monkeypatch.setattr(reproduce, "execute_section", execute)
    monkeypatch.setattr(reproduce, "write_json", lambda path, data: None)   # no summary in the checkout
    monkeypatch.delenv("MTL_EXECUTOR", raising=False)
    assert reproduce.main(["--no-book", "--sections", "imbalance", "--workers", "3", "--threads", "2"]) == 0
    assert seen == [{"MTL_EXECUTOR": "local", "MTL_WORKERS": "3", "MTL_THREADS": "2"}]
    assert "MTL_EXECUTOR" not in os.environ                             # restored afterwards
