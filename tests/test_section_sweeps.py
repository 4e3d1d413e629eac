"""Sections plan their stages as jobs and run each stage in one sweep (mtl.studies._common.run_groups):
the executor changes nothing in the records or verdicts, repeated runs of a stage run once, every
planned job pickles to a worker, and no section trains in a loop of its own."""
import ast
import pickle
from pathlib import Path

import pytest

from mtl import sweep
from mtl.studies import _common as study
from mtl.studies import _extra_curves as X
from mtl.studies import architectures as A
from mtl.studies import imbalance as S
from mtl.studies import plugplay as PP

STUDIES = Path(__file__).resolve().parents[1] / "mtl" / "studies"
SPEC = {"dataset": "multimnist", "dataset_kw": {"n_train": 64, "n_val": 32, "n_test": 32}, "backbone": "lenet",
        "train": {"epochs": 1, "batch_size": 32}}
CFG = {"seeds": [0, 1], "grid": {"left": [1], "right": [1, 2]}, "spec": SPEC}


def _records(result: dict) -> list[tuple]:
    """(run folder, params, metrics) of every run of a vanilla_imbalance result, in order."""
    recs = [r for t in result["stl"] for r in result["stl"][t]]
    recs += [r for m in ("Uniform", "Grid Search") for r in result["methods"][m]]
    return [(Path(r["run_dir"]).name, r["params"], r["metrics"]) for r in recs]


def test_serial_and_local_give_the_same_records_and_verdicts(tmp_path):
    serial = S.vanilla_imbalance(tmp_path / "serial", CFG, executor=sweep.Serial(threads=1))
    local = S.vanilla_imbalance(tmp_path / "local", CFG, executor=sweep.Local(workers=2, threads=1))
    assert _records(serial) == _records(local) and len(_records(serial)) == 2 * 2 + 2 + 2
    assert serial["grid"].drop(columns="run").equals(local["grid"].drop(columns="run"))
    assert serial["best_weights"] == local["best_weights"]
    assert S.c1_vanilla_imbalance(serial, "tiny") == S.c1_vanilla_imbalance(local, "tiny")
    again = S.vanilla_imbalance(tmp_path / "local", CFG, executor=sweep.Serial())    # finished runs are loaded
    assert all(r["resumed"] for m in ("Uniform", "Grid Search") for r in again["methods"][m])


def test_extra_stages_in_workers_match_serial(tmp_path):
    """Plug-and-play's two stages (end points, then EXTRA curves: jobs of a module-level function)."""
    P, _ = PP.setup("smoke", str(tmp_path / "o"))
    P = {**P, "bases": ["ls"], "alphas": [0.1, 0.5]}                 # α 0.5 at base ls repeats EXTRA-L's end points
    serial = PP.plug_and_play(tmp_path / "serial", P, executor=sweep.Serial(threads=1))
    local = PP.plug_and_play(tmp_path / "local", P, executor=sweep.Local(workers=2, threads=1))
    pick = lambda r: {k: [(Path(x["run_dir"]).name if "run_dir" in x else None, x["metrics"]) for x in v]  # noqa: E731
                      for k, v in {**r["methods"], **{f"α {a}": v for a, v in r["alphas"].items()}}.items()}
    assert pick(serial) == pick(local) and list(pick(serial)) == ["Single-task", "LS", "EXTRA-L", "α 0.1", "α 0.5"]
    assert PP.c13_plug_and_play(serial, "tiny") == PP.c13_plug_and_play(local, "tiny")
    assert PP.c15_alpha(serial, "tiny") == PP.c15_alpha(local, "tiny")


def test_a_stage_runs_a_repeated_run_once_and_regroups_records_by_key(tmp_path):
    a, b = ({**SPEC, "name": n, "train": {**SPEC["train"], "seed": 0}} for n in ("a", "b"))
    out = study.run_groups({"x": study.train_jobs(tmp_path, [a, b]), "y": study.train_jobs(tmp_path, [dict(a)])},
                           sweep.Serial(threads=1))
    assert [Path(r["run_dir"]).name.split("-")[0] for r in out["x"] + out["y"]] == ["a", "b", "a"]
    assert out["y"][0] == out["x"][0] and out["y"][0] is not out["x"][0]           # one run, its own copy
    assert not any(r["resumed"] for r in out["x"] + out["y"])                     # trained once, never reloaded


def test_every_planned_job_pickles_to_a_worker(tmp_path):
    spec = {**SPEC, "tasks": ["left", "right"]}
    jobs = [PP.extra_job(tmp_path, spec, "ls", 0, {"step": {"alpha": 0.5}}),
            X.curve_job(tmp_path, spec, [{"run_dir": "r0"}, {"run_dir": "r1"}], "c", 3, {"epochs": 1}, ts=[0, 1]),
            sweep.Job(A.train_or_error, str(tmp_path), (spec,)), *PP.extra_endpoints(tmp_path, spec, "ls", [0], {})]
    for j in jobs:
        back = pickle.loads(pickle.dumps(j))
        assert back.fn is j.fn and back.args == j.args and dict(back.kwargs) == dict(j.kwargs)


def test_a_cell_that_cannot_train_is_its_error_text(tmp_path):
    bad = {**SPEC, "name": "bad", "weighting": "no-such-weighting"}
    rec = A.train_or_error(tmp_path, bad)
    assert set(rec) == {"error"} and "no-such-weighting" in rec["error"]


#: functions whose call is one recorded run (or one run's training): a section hands them to a sweep
RUN_FUNCTIONS = {"train_run", "extra_run", "curve_run", "run_seed", "distance_record", "make_checkpoint",
                 "train_or_error", "fit"}
LOOPS = (ast.For, ast.While, ast.ListComp, ast.DictComp, ast.SetComp, ast.GeneratorExp)
IN_PROCESS = {"memory.py"}          # memory peaks: measured serially in process, on purpose


def _name(call: ast.Call) -> str | None:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


@pytest.mark.parametrize("path", sorted(p for p in STUDIES.glob("*.py") if p.name not in IN_PROCESS),
                         ids=lambda p: p.name)
def test_no_section_trains_in_a_loop_of_its_own(path):
    tree = ast.parse(path.read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert not [c.lineno for c in calls if _name(c) == "train_run"], "train runs go through sweep.train"
    looped = [(c.lineno, _name(c)) for loop in ast.walk(tree) if isinstance(loop, LOOPS)
              for c in ast.walk(loop) if isinstance(c, ast.Call) and _name(c) in RUN_FUNCTIONS]
    assert not looped, f"{path.name}: runs called one after another instead of a sweep: {looped}"
