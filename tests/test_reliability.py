"""Nothing silently wrong, nothing lost: eager config checks, divergence, record modes, locks between
real processes, corrupt records, unwritable folders, NaN inputs and the mtl-reproduce entry point."""
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mtl import runs
from mtl import weighting as W
from mtl.experiment import save_state, train_run
from mtl.train import DIVERGENCE_RATIO, DivergedError, TrainConfig, check_divergence

ROOT = Path(__file__).resolve().parent.parent
PROC_TIMEOUT = 120


def _env(**extra):
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", **extra}


# ----------------------------------------------------------------------------- 1. TrainConfig and spec checks


@pytest.mark.parametrize("field, value, valid", [
    ("eval_k", 0, "≥ 1"), ("eval_k", -2, "≥ 1"), ("lr_gamma", 0, "positive"), ("lr_gamma", -0.5, "positive"),
    ("lr_step", 0, "≥ 1"), ("lr_step", -3, "≥ 1"), ("lr", "0.001", "number"), ("lr", 0, "positive"),
    ("lr", float("nan"), "positive"), ("epochs", 1.0, "integer"), ("epochs", True, "integer"),
    ("batch_size", "8", "integer"), ("seed", "0", "integer"), ("seed", -1, "≥ 0"), ("seed", 0.0, "integer"),
    ("weight_decay", -1e-4, "non-negative"), ("weight_decay", "0", "number"), ("max_steps_per_epoch", 0, "≥ 1"),
    ("eval_protocol", "best", "one of"), ("progress", "yes", "True or False"), ("device", 0, "string"),
])
def test_train_config_rejects_each_bad_field_by_name(field, value, valid):
    with pytest.raises(ValueError) as e:
        TrainConfig(**{field: value})
    msg = str(e.value)                                       # the field, what is valid, the value
    assert msg.startswith(f"{field} must") and valid in msg and f"got {value!r}" in msg


def test_strict_checks():
    from mtl.checks import check_count, check_positive

    with pytest.raises(ValueError, match=r"k must be an integer ≥ 1, got True of type bool"):
        check_count("k", True)                               # bools are never counts
    with pytest.raises(ValueError, match=r"k must be an integer ≥ 1, got 2\.0 of type float"):
        check_count("k", 2.0, strict=True)
    assert check_count("k", 2.0) == 2 and check_count("k", np.int64(3), strict=True) == 3
    with pytest.raises(ValueError, match="lr must be a number .int or float., got '0.5' of type str"):
        check_positive("lr", "0.5", strict=True)
    with pytest.raises(ValueError, match="lr must be a number"):
        check_positive("lr", False, strict=True)
    assert check_positive("lr", 1, strict=True) == 1.0 and check_positive("lr", np.float32(0.5), strict=True) == 0.5


def test_train_config_accepts_ints_for_floats_and_optional_none():
    cfg = TrainConfig(lr=1, lr_gamma=1, weight_decay=0, lr_step=None, max_steps_per_epoch=None, seed=3)
    assert cfg.lr == 1 and cfg.lr_gamma == 1
    TrainConfig(lr_step=5, max_steps_per_epoch=2, eval_protocol="mean_last_k", eval_k=2)


def test_empty_task_list_is_rejected_before_anything_runs(tmp_out):
    with pytest.raises(ValueError, match=r"spec 'tasks' must be a non-empty list.*got \[\]"):
        train_run(tmp_out, {"dataset": "multimnist", "backbone": "lenet", "tasks": []})
    assert not any(tmp_out.iterdir())


# ----------------------------------------------------------------------------- 2. divergence


def test_divergence_rule():
    first = torch.tensor([2.0, 0.5])
    check_divergence(torch.tensor([2.0 * DIVERGENCE_RATIO, 0.4]), first, ["a", "b"], 3)   # at the limit: fine
    with pytest.raises(DivergedError, match=r"task 'b' has mean training loss 1e\+04 at epoch 3, above 10000 × "
                                            r"its epoch-0 mean 0\.5"):
        check_divergence(torch.tensor([1.0, 1e4]), first, ["a", "b"], 3)
    with pytest.raises(DivergedError, match="above 1e.12"):
        check_divergence(torch.tensor([7e35, 1.0]), torch.tensor([7e35, 1.0]), ["a", "b"], 0)
    assert issubclass(DivergedError, FloatingPointError)


def test_no_committed_run_would_trip_the_divergence_rule():
    """Every committed history against the rule: the largest last/first ratio is about 1.07, max/first 1.17."""
    from mtl.train import DIVERGENCE_ABSOLUTE

    worst, n = 0.0, 0
    for path in (ROOT / "runs").glob("**/history.json"):
        hist = json.loads(path.read_text())
        if not hist or "train_loss" not in hist[0]:
            continue
        n += 1
        first = torch.tensor(list(hist[0]["train_loss"].values()))
        for epoch, rec in enumerate(hist):
            check_divergence(torch.tensor(list(rec["train_loss"].values())), first, list(rec["train_loss"]), epoch)
            worst = max(worst, max(v / v0 for v, v0 in zip(rec["train_loss"].values(), first.tolist()) if v0 > 0))
            assert max(rec["train_loss"].values()) < DIVERGENCE_ABSOLUTE
    assert n > 500 and worst < 2


def test_fit_raises_when_the_loss_explodes_after_epoch_zero(tiny_mnist):
    """A step rule whose losses grow 1e5-fold after epoch 0: fit stops at epoch 1 naming the task."""
    from mtl.models import create_model
    from mtl.train import fit

    class Exploding:
        def step(self, model, data, batch, weighting, optimizer, ctx):
            return {"losses": torch.full((len(model.tasks),), 1.0 if ctx.epoch == 0 else 1e5)}
    model = create_model("hps", "lenet", tiny_mnist.tasks)
    with pytest.raises(DivergedError, match="task 'left' .* at epoch 1"):
        fit(model, tiny_mnist, W.create("ew"), TrainConfig(epochs=3, batch_size=32), step_rule=Exploding())


def test_diverged_run_is_not_recorded(tmp_out):
    spec = {"name": "div", "dataset": "multimnist", "dataset_kw": {"n_train": 64, "n_val": 16, "n_test": 16},
            "backbone": "lenet", "train": {"epochs": 3, "batch_size": 16, "lr": 1e6}}
    with pytest.raises(DivergedError, match="training diverged"):
        train_run(tmp_out, spec)
    run_dir = tmp_out / runs.run_id(spec)
    assert not (run_dir / "metrics.json").exists() and not run_dir.exists()


# ----------------------------------------------------------------------------- 3. file modes follow the umask


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_records_follow_the_umask(tmp_out, umask, mode):
    old = os.umask(umask)
    try:
        runs.write_json(tmp_out / "r" / "metrics.json", {"a": 1})
        save_state(tmp_out / "r" / "model.pt", {"w": torch.zeros(2)})
        runs.run_or_load(tmp_out, {"name": "m"}, lambda: {"metrics": {}})
    finally:
        os.umask(old)
    files = [tmp_out / "r" / "metrics.json", tmp_out / "r" / "model.pt",
             *(tmp_out / runs.run_id({"name": "m"})).iterdir()]
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {oct(mode)}


# ----------------------------------------------------------------------------- 4. locks between real processes


TRAIN_ONCE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from mtl import runs
    out, marker, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    while not go.exists():
        time.sleep(0.01)
    def train():
        with open(marker, "a") as f:
            f.write("trained\\n")
        time.sleep(1.0)                       # long enough for the other worker to arrive
        return {"metrics": {"t": {"acc": 0.5}}, "history": [{"epoch": 0}]}
    rec = runs.run_or_load(out, {"name": "tiny", "x": 1}, train)
    print("resumed" if rec["resumed"] else "trained", rec["metrics"]["t"]["acc"])
""")


def test_two_processes_train_a_run_once(tmp_out):
    marker, go = tmp_out / "marker", tmp_out / "go"
    procs = [subprocess.Popen([sys.executable, "-c", TRAIN_ONCE, str(tmp_out / "runs"), str(marker), str(go)],
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(0.5)
    go.touch()
    outs = [p.communicate(timeout=PROC_TIMEOUT) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert marker.read_text() == "trained\n"
    assert sorted(o[0].split()[0] for o in outs) == ["resumed", "trained"]
    assert {o[0].split()[1] for o in outs} == {"0.5"}


HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from mtl import runs
    lock = runs.file_lock(sys.argv[1])
    lock.acquire()
    print("locked", flush=True)
    time.sleep(120)
""")


def test_lock_of_a_killed_process_is_released(tmp_out):
    from filelock import Timeout

    target = tmp_out / "run-abc"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(target)], env=_env(), stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(Timeout):
            runs.file_lock(target).acquire(timeout=0.3)                 # really held
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=PROC_TIMEOUT)
        lock = runs.file_lock(target)
        lock.acquire(timeout=10)                                         # the OS released it
        lock.release()
    finally:
        holder.kill()
        holder.wait()


# ----------------------------------------------------------------------------- 5. corrupt run records


def _record(tmp_out, calls):
    def fn():
        calls.append(1)
        return {"metrics": {"t": {"acc": 0.5}}, "history": [{"epoch": 0, "train_loss": {"t": 1.0}}]}
    return runs.run_or_load(tmp_out, {"name": "r", "x": 1}, fn)


@pytest.mark.parametrize("name, text", [("metrics.json", '{"params": {"name": "r", "x"'),   # truncated
                                        ("metrics.json", "null"),
                                        ("metrics.json", '{"params": {"name": "r", "x": 1}}'),  # no metrics
                                        ("history.json", "[{"), ("history.json", "{}")])
def test_corrupt_record_is_moved_aside_and_rerun(tmp_out, name, text):
    calls = []
    run_dir = Path(_record(tmp_out, calls)["run_dir"])
    (run_dir / name).write_text(text)
    with pytest.warns(RuntimeWarning, match=rf"corrupt run record {run_dir / name}: .*moved to .*\.corrupt") as w:
        rec = _record(tmp_out, calls)
    assert len(w) == 1 and "\n" not in str(w[0].message)
    assert calls == [1, 1] and not rec["resumed"] and rec["metrics"] == {"t": {"acc": 0.5}}
    moved = list((tmp_out / runs.CORRUPT).iterdir())
    assert len(moved) == 1 and moved[0].name.startswith(run_dir.name + "-")
    assert (moved[0] / name).read_text() == text                      # the evidence is kept
    assert runs.load_run(run_dir)["metrics"] == {"t": {"acc": 0.5}}


def test_load_run_names_the_corrupt_file(tmp_out):
    _record(tmp_out, [])
    run_dir = tmp_out / runs.run_id({"name": "r", "x": 1})
    (run_dir / "metrics.json").write_text("[1, 2]")
    with pytest.raises(runs.CorruptRecordError, match=rf"{run_dir / 'metrics.json'}: expected an object"):
        runs.load_run(run_dir)


def test_stale_temporaries_of_dead_processes_are_removed(tmp_out):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_dir = tmp_out / runs.run_id({"name": "r", "x": 1})
    run_dir.mkdir(parents=True)
    stale = run_dir / f".metrics.json.{dead.pid}.abc123.tmp"
    live = run_dir / f".metrics.json.{os.getpid()}.def456.tmp"
    stale.write_text("x" * 1000)
    live.write_text("y")
    _record(tmp_out, [])
    assert not stale.exists() and live.exists()


# ----------------------------------------------------------------------------- 6. unwritable out_dir fails first


def test_unwritable_out_dir_fails_before_training(tmp_out):
    (tmp_out / "file").write_text("not a folder")
    calls = []
    with pytest.raises(PermissionError, match=rf"runs folder {tmp_out / 'file' / 'runs'} is not writable"):
        runs.run_or_load(tmp_out / "file" / "runs", {"name": "r"}, lambda: calls.append(1) or {"metrics": {}})
    assert calls == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_dir_fails_before_training(tmp_out):
    out = tmp_out / "ro"
    out.mkdir()
    out.chmod(0o555)
    calls = []
    try:
        with pytest.raises(PermissionError, match=f"runs folder {out} is not writable"):
            runs.run_or_load(out, {"name": "r"}, lambda: calls.append(1) or {"metrics": {}})
    finally:
        out.chmod(0o755)
    assert calls == []


# ----------------------------------------------------------------------------- 8. NaN in aggregate, mtl-reproduce


@pytest.mark.parametrize("method", ["ew", "mgda", "pcgrad", "cagrad", "imtl", "dwa"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_aggregate_rejects_non_finite_inputs(method, bad):
    J = torch.randn(3, 5, dtype=torch.float64)
    J[1, 2] = bad
    with pytest.raises(ValueError, match=r"jacobian has non-finite values .* task rows \[1\]"):
        W.aggregate(method, J)
    with pytest.raises(ValueError, match=r"losses has non-finite values .* task rows \[2\]"):
        W.aggregate(method, torch.randn(3, 5), losses=[1.0, 2.0, bad])


@pytest.fixture()
def fake_book(tmp_path, monkeypatch):
    from mtl import reproduce

    (tmp_path / "book" / "sections").mkdir(parents=True)
    for s in ("a", "b", "c"):
        (tmp_path / "book" / "sections" / f"{s}.md").write_text(f"# {s}\n")
    monkeypatch.setattr(reproduce, "repo_root", lambda: tmp_path)
    return tmp_path


@pytest.mark.parametrize("argv, message", [(["--sections"], "--sections needs at least one section"),
                                           (["--timeout", "-5"], "expected a positive integer, got -5"),
                                           (["--timeout", "0"], "expected a positive integer, got 0"),
                                           (["--timeout", "x"], "expected a positive integer, got 'x'")])
def test_reproduce_argument_errors(fake_book, capsys, argv, message):
    from mtl import reproduce

    with pytest.raises(SystemExit) as e:
        reproduce.main(argv + ["--no-book"])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_reproduce_interrupt_is_one_line_and_130(fake_book, capsys, monkeypatch):
    from mtl import reproduce

    def execute(section, profile, runs_root, book, timeout):
        if section == "b":
            raise KeyboardInterrupt
        return {"section": section, "profile": profile, "status": "ok", "duration_s": 1.0,
                "notebook": str(runs_root / section / profile / f"{section}.ipynb")}
    monkeypatch.setattr(reproduce, "execute_section", execute)
    assert reproduce.main(["--no-book"]) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["[mtl-reproduce] interrupted: 1 of 3 sections finished; rerun the same "
                                        "command to resume (finished runs are loaded, not retrained)"]
    summary = json.loads((fake_book / "runs" / "reproduce-cpu.json").read_text())
    assert [r["section"] for r in summary] == ["a"]                   # what finished is recorded


def test_reproduce_sigterm_stops_like_an_interrupt(fake_book, capsys, monkeypatch):
    """A background job ignores SIGINT; ``kill`` (SIGTERM) records what finished, returns 130, and the
    previous SIGTERM handler is back afterwards."""
    import os
    import signal
    import time

    from mtl import reproduce

    def execute(section, profile, runs_root, book, timeout):
        if section == "b":
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)                                             # the handler raises before this ends
            raise AssertionError("SIGTERM did not stop the section")
        return {"section": section, "profile": profile, "status": "ok", "duration_s": 1.0,
                "notebook": str(runs_root / section / profile / f"{section}.ipynb")}
    monkeypatch.setattr(reproduce, "execute_section", execute)
    before = signal.getsignal(signal.SIGTERM)
    assert reproduce.main(["--no-book"]) == 130
    assert signal.getsignal(signal.SIGTERM) is before
    assert "interrupted: 1 of 3 sections finished" in capsys.readouterr().err
    summary = json.loads((fake_book / "runs" / "reproduce-cpu.json").read_text())
    assert [r["section"] for r in summary] == ["a"]


def test_smoke_and_paper_outputs_are_git_ignored():
    paths = ["runs/imbalance/smoke/x.ipynb", "runs/imbalance/paper/r-1/metrics.json", "runs/x/cpu/.locks/a.lock",
             "runs/x/cpu/.corrupt/r-1/metrics.json"]
    out = subprocess.run(["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.stdout.split() == paths
    kept = subprocess.run(["git", "check-ignore", "runs/imbalance/cpu/x.ipynb"], cwd=ROOT, capture_output=True)
    assert kept.returncode == 1


def test_a_run_recorded_by_another_section_is_copied_not_retrained(tmp_path, monkeypatch):
    """``<runs>/<section>/<profile>``: a finished record with the same parameters in a sibling section's
    folder of the same profile is copied (identical files), never trained again; other profiles and
    folders outside the runs root are not searched."""
    from mtl import experiment
    from mtl.paths import sibling_run_dirs
    monkeypatch.setenv("MTL_RUNS", str(tmp_path / "runs"))
    spec = {"name": "tiny", "dataset": "multimnist", "dataset_kw": {"n_train": 32, "n_val": 16, "n_test": 16},
            "backbone": "lenet", "train": {"epochs": 1, "batch_size": 16}}
    first = train_run(tmp_path / "runs" / "a" / "cpu", spec)
    assert sibling_run_dirs(tmp_path / "runs" / "b" / "cpu") == [tmp_path / "runs" / "a" / "cpu"]
    assert sibling_run_dirs(tmp_path / "elsewhere" / "b" / "cpu") == []
    def refuse(*a):
        raise LookupError("trained a run recorded elsewhere")
    monkeypatch.setattr(experiment, "_train", refuse)
    copied = train_run(tmp_path / "runs" / "b" / "cpu", spec)
    assert copied["copied_from"] == first["run_dir"] and copied["metrics"] == first["metrics"]
    src, dst = Path(first["run_dir"]), Path(copied["run_dir"])
    assert dst.parent == tmp_path / "runs" / "b" / "cpu"
    assert sorted(p.name for p in dst.iterdir()) == sorted(p.name for p in src.iterdir())
    assert all((dst / f.name).read_bytes() == f.read_bytes() for f in src.iterdir())
    with pytest.raises(LookupError, match="trained a run recorded elsewhere"):
        train_run(tmp_path / "runs" / "b" / "smoke", spec)            # another profile: not a sibling
