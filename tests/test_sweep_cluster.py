"""Cluster executors on real local backends: a local Ray cluster (2 CPUs) and submitit's local
backend through the Slurm executor's code path give the records a serial sweep gives."""
import io
import sys

import pytest

from mtl import sweep

SPEC = {"dataset": "multimnist", "dataset_kw": {"n_train": 64, "n_val": 16, "n_test": 16}, "backbone": "lenet",
        "train": {"epochs": 1, "batch_size": 32}}


def _specs():
    return [{**SPEC, "name": f"s{s}", "weighting": w, "train": {**SPEC["train"], "seed": s}}
            for s in (0, 1) for w in ("ew", "rlw")]


def _fails(out_dir, message):
    raise ValueError(message)


def _env_value(out_dir, name):
    import os
    return {"metrics": os.environ.get(name)}


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    return sweep.run([sweep.train(tmp_path_factory.mktemp("serial"), s) for s in _specs()], sweep.Serial(threads=1))


def test_ray_local_cluster_records_equal_serial(tmp_path, serial, monkeypatch):
    pytest.importorskip("ray")
    import ray
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])   # this module's jobs, sent by value
    monkeypatch.setenv("MTL_PROBE", "from-driver")          # MTL_* variables reach the workers
    good = [sweep.train(tmp_path, s) for s in _specs()]
    probe = sweep.Job(_env_value, str(tmp_path), ("MTL_PROBE",))
    with pytest.raises(sweep.SweepError, match=r"1 run\(s\) failed(?s:.*)- bad in .*: ValueError: boom") as e:
        sweep.run([*good, sweep.Job(_fails, str(tmp_path), ("boom",), label="bad"), probe],
                  sweep.Ray(workers=2, threads=1))
    assert not ray.is_initialized()                          # the local cluster is shut down after the sweep
    assert len(e.value.failures) == 1
    records = sweep.run(good, sweep.Serial())                # recorded by the Ray workers
    assert all(r["resumed"] for r in records)
    assert [r["metrics"] for r in records] == [r["metrics"] for r in serial]
    assert all(r["info"]["threads"] == 1 for r in records)
    assert sweep.execute(probe).record == {"metrics": "from-driver"}


def test_slurm_executor_on_submitits_local_backend(tmp_path, serial):
    pytest.importorskip("submitit")
    import cloudpickle
    cloudpickle.register_pickle_by_value(sys.modules[__name__])      # this module's jobs, sent by value
    ex = sweep.Slurm(cluster="local", workers=2, threads=1, time=10, poll_s=0.2)
    good = [sweep.train(tmp_path, s) for s in _specs()[:2]]
    with pytest.raises(sweep.SweepError, match=r"1 run\(s\) failed(?s:.*)- bad in .*: ValueError: boom"):
        sweep.run([*good, sweep.Job(_fails, str(tmp_path), ("boom",), label="bad")], ex)
    logs = list((tmp_path / ".slurm").glob("*/*_log.out"))
    assert len(logs) == 3                                    # one array task per run, logs in <out_dir>/.slurm
    records = sweep.run(good, sweep.Serial())                # the good runs were recorded by the array
    assert all(r["resumed"] for r in records)
    assert [r["metrics"] for r in records] == [r["metrics"] for r in serial[:2]]
    assert all(r["info"]["threads"] == 1 for r in records)


def test_slurm_settings_from_a_config_file_and_keywords(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    cfg = tmp_path / "slurm.yaml"
    cfg.write_text("partition: gpu\ntime: 120\ngpus_per_run: 1\ncpus_per_run: 4\nmem_gb: 16\nworkers: 8\n"
                   "additional: {exclusive: true}\n")
    monkeypatch.setenv("MTL_SLURM_CONFIG", str(cfg))
    ex = sweep.from_env({"MTL_EXECUTOR": "slurm", "MTL_SLURM_CONFIG": str(cfg), "MTL_THREADS": "2"})
    assert (ex.partition, ex.time, ex.gpus_per_run, ex.cpus_per_run, ex.mem_gb, ex.workers, ex.threads) == \
        ("gpu", 120, 1, 4, 16.0, 8, 2)
    assert sweep.Slurm(time=5).time == 5                     # keywords override the file
    params = sweep.Slurm(cluster="slurm").executor(tmp_path)._executor.parameters  # what sbatch gets
    assert (params["partition"], params["time"], params["gpus_per_node"], params["cpus_per_task"], params["mem"],
            params["array_parallelism"], params["additional_parameters"]) == \
        ("gpu", 120, 1, 4, "16GB", 8, {"exclusive": True})
    cfg.write_text("partion: gpu\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['partion'\]; valid keys"):
        sweep.Slurm()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sweep.Slurm(config=tmp_path / "missing.yaml")
    monkeypatch.delenv("MTL_SLURM_CONFIG")
    with pytest.raises(ValueError, match="cluster must be"):
        sweep.Slurm(cluster="pbs")


def test_missing_cluster_dependency_is_an_import_error_with_a_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)            # as if not installed
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(ImportError, match=r"pip install 'mtl-imbalance\[cluster\]'"):
        sweep.create("ray")
    with pytest.raises(ImportError, match=r"pip install 'mtl-imbalance\[cluster\]'"):
        sweep.from_env({"MTL_EXECUTOR": "slurm"})


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal_and_never_under_ci():
    assert not sweep.show_progress(io.StringIO(), {})                  # a notebook's stderr: no TTY
    assert sweep.show_progress(_Terminal(), {})
    assert not sweep.show_progress(_Terminal(), {"CI": "true"})
    assert not sweep.show_progress(_Terminal(), {"TQDM_DISABLE": "1"})
    out = _Terminal()
    bar = sweep.Progress(3, stream=out, environ={})
    bar.running(2)
    bar.finished(sweep.Outcome({}))
    bar.finished(sweep.Outcome(None, "ValueError: x"))
    bar.close()
    assert "2/3" in out.getvalue() and "done=1 running=0 failed=1" in out.getvalue()


@pytest.fixture
def ray_cluster():
    """An existing Ray cluster (2 CPUs) held by another process; its GCS address. The process ends
    (and its cluster with it) when its standard input closes."""
    pytest.importorskip("ray")
    import subprocess
    code = ("import sys, ray; ctx = ray.init(address='local', num_cpus=2, include_dashboard=False); "
            "print(ctx.address_info['gcs_address'], flush=True); sys.stdin.read(); ray.shutdown()")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        yield holder.stdout.readline().strip()
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


def test_ray_joins_an_existing_cluster(tmp_path, serial, ray_cluster):
    import ray
    ex = sweep.from_env({"MTL_EXECUTOR": "ray", "MTL_THREADS": "1", "MTL_RAY_ADDRESS": ray_cluster})
    assert ex.address == ray_cluster
    records = sweep.run([sweep.train(tmp_path, s) for s in _specs()[:2]], ex)
    assert [r["metrics"] for r in records] == [r["metrics"] for r in serial[:2]]
    assert not ray.is_initialized()                          # disconnected; the cluster goes on
    ray.init(address=ray_cluster, log_to_driver=False)       # a Ray this process is connected to ...
    try:
        records = sweep.run([sweep.train(tmp_path / "b", s) for s in _specs()[2:]], sweep.Ray(threads=1))
        assert [r["metrics"] for r in records] == [r["metrics"] for r in serial[2:]]
        assert ray.is_initialized()                          # ... is used as it is, and left connected
    finally:
        ray.shutdown()
