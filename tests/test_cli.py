"""The ``mtl`` command line: train (the records of train_run), list (the registries), show, reproduce."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mtl.weighting as W
from mtl import cli, reproduce
from mtl.experiment import RunSpec, train_run
from mtl.models import ARCHITECTURES

ROOT = Path(__file__).resolve().parent.parent
SPEC = {"dataset": "multimnist", "dataset_kw": {"n_train": 48, "n_val": 16, "n_test": 16}, "backbone": "lenet",
        "weighting": "cagrad", "weighting_kw": {"c": 0.4}, "train": {"epochs": 1, "batch_size": 16}, "name": "cli"}


def _spec_file(tmp_path, spec=SPEC, text=None) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text if text is not None else json.dumps(spec))     # JSON is YAML
    return path


def _error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


def test_train_records_what_train_run_records_and_show_prints_it(tmp_path, capsys, one_thread):
    assert cli.main(["train", str(_spec_file(tmp_path)), "--out", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr()
    expected = train_run(tmp_path / "lib", SPEC)                        # the library's record of the same spec
    run_dir = tmp_path / "cli" / RunSpec.from_dict(SPEC).run_id()
    assert f"trained: {run_dir}" in out.err
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(p.name for p in Path(expected["run_dir"]).iterdir())
    for name in ("config.json", "history.json"):
        got, want = (json.loads((d / name).read_text()) for d in (run_dir, Path(expected["run_dir"])))
        if name == "history.json":
            for g, w in zip(got, want):
                g.pop("time"), w.pop("time")
        assert got == want, name
    assert json.loads((run_dir / "metrics.json").read_text())["metrics"] == expected["metrics"]
    # the printed table holds every test metric and every config leaf
    acc = expected["metrics"]["left"]["acc"]
    assert f"left   acc     {acc:.4g}" in out.out and "weighting_kw.c      0.4" in out.out
    # a second call loads the finished run; show prints the same tables
    cli.main(["train", str(_spec_file(tmp_path)), "--out", str(tmp_path / "cli"), "--threads", "1"])
    again = capsys.readouterr()
    assert "loaded (already finished)" in again.err
    cli.main(["show", str(run_dir)])
    assert capsys.readouterr().out == again.out == out.out


def test_train_errors_name_what_is_wrong_and_what_is_valid(tmp_path, capsys):
    err = _error(capsys, ["train", str(_spec_file(tmp_path, {**SPEC, "epochs": 3}))])
    assert "unknown spec keys ['epochs']" in err and "valid keys" in err and "train" in err
    err = _error(capsys, ["train", str(_spec_file(tmp_path, {**SPEC, "weighting": "nosuch"}))])
    assert "unknown weighting method 'nosuch'" in err and "cagrad" in err
    err = _error(capsys, ["train", str(_spec_file(tmp_path, {**SPEC, "weighting_kw": {"alpha": 1}}))])
    assert "no keyword(s) ['alpha']" in err and "valid: " in err
    err = _error(capsys, ["train", str(_spec_file(tmp_path, {**SPEC, "train": {"epoch": 2}}))])
    assert "spec 'train' has no key(s) ['epoch']" in err and "'epochs'" in err
    err = _error(capsys, ["train", str(_spec_file(tmp_path, text="- a\n- b\n"))])
    assert "must hold a mapping of RunSpec keys" in err
    err = _error(capsys, ["train", str(tmp_path / "absent.yaml")])
    assert "absent.yaml does not exist" in err
    assert not (tmp_path / "mine").exists()


def test_list_prints_every_registered_entry_with_label_and_paper(capsys):
    cli.main(["list", "methods"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["name", "label", "needs", "modes", "paper"]
    assert len(lines) == 1 + len(W.names())
    for n, line in zip(W.names(), lines[1:]):
        i = W.info(n)
        assert line.startswith(n + " ") and f" {i.label} " in line and line.endswith(i.paper or "—"), line
    cli.main(["list", "architectures"])
    out = capsys.readouterr().out
    assert all(ARCHITECTURES.label(n) in out for n in ARCHITECTURES.names())
    cli.main(["list", "methods", "--match", "*grad"])
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == W.names("*grad")
    for kind in ("backbones", "datasets", "curves"):
        assert cli.main(["list", kind]) == 0
    err = _error(capsys, ["list", "losses"])
    assert "unknown registry 'losses'; valid: methods, architectures, backbones, datasets, curves" in err


def test_show_errors_on_a_missing_or_unfinished_run_dir(tmp_path, capsys):
    err = _error(capsys, ["show", str(tmp_path / "nope")])
    assert "no run folder" in err and "metrics.json" in err
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    assert "an unfinished run" in _error(capsys, ["show", str(tmp_path / "half")])


def test_reproduce_is_mtl_reproduce(capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(reproduce, "main", lambda argv=None: calls.append(argv) or 7)
    assert cli.main(["reproduce", "--profile", "smoke", "--dry-run"]) == 7
    assert calls == [["--profile", "smoke", "--dry-run"]]
    monkeypatch.undo()
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "--profile", "nosuch"])
    assert "invalid choice: 'nosuch'" in capsys.readouterr().err


def test_the_console_command_runs_in_a_subprocess(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
    out = subprocess.run([sys.executable, "-m", "mtl.cli", "list", "methods"], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1].startswith(W.names()[0])
    bad = subprocess.run([sys.executable, "-m", "mtl.cli", "show", "nope"], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=300)
    assert bad.returncode == 2 and "no run folder nope" in bad.stderr
    import tomllib
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["mtl"] == "mtl.cli:main" and scripts["mtl-reproduce"] == "mtl.reproduce:main"


def test_the_progress_bar_shows_on_a_terminal_only(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "train_run", lambda out, spec: seen.append((out, spec)) or {})

    class Terminal:
        def isatty(self):
            return True
    monkeypatch.setattr(sys, "stderr", Terminal())
    for env, shown in (({}, True), ({"CI": "true"}, False), ({"TQDM_DISABLE": "1"}, False)):
        for k in ("CI", "TQDM_DISABLE"):
            monkeypatch.delenv(k, raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        cli.train(str(_spec_file(tmp_path)), str(tmp_path / "out"))
        out, spec = seen[-1]
        assert spec.train["progress"] is shown and spec.run_id() == RunSpec.from_dict(SPEC).run_id(), env
    cli.train(str(_spec_file(tmp_path)), None, threads=3, tensorboard=True, progress=False)
    out, spec = seen[-1]
    assert out.name == "mine" and (spec.threads, spec.tensorboard, spec.train["progress"]) == (3, True, False)
