"""RunSpec: typed run parameters; ``params()`` is the canonical form every committed run id hashes."""
import json
from pathlib import Path

import pytest

from mtl.diagnostics import GradientProbe, RepresentationProbe
from mtl.experiment import RunSpec, load_model, train_run
from mtl.runs import run_id

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted(ROOT.glob("runs/**/config.json"))


def _is_run_spec(cfg: dict) -> bool:
    try:
        RunSpec.from_dict(cfg)
        return True
    except ValueError:
        return False


def test_every_committed_config_hashes_to_its_folder():
    assert len(CONFIGS) > 800, "the committed runs are expected under runs/"
    specs = 0
    for path in CONFIGS:
        cfg = json.loads(path.read_text())
        if _is_run_spec(cfg):
            spec = RunSpec.from_dict(cfg)
            assert spec.params() == cfg, path
            assert spec.run_id() == path.parent.name, path
            specs += 1
        else:                       # curve, timing and memory records: plain parameters
            assert run_id(cfg) == path.parent.name, path
    assert specs > 700


def test_every_committed_run_rebuilds_the_weighting_it_ran():
    """A changed default would silently re-mean an old id (ids drop defaults): every recorded weighting,
    rebuilt from its config by today's code, has the arguments it ran with (its recorded repr)."""
    import re

    from mtl import weighting as W
    checked = 0
    for path in CONFIGS:
        cfg = json.loads(path.read_text())
        metrics = path.with_name("metrics.json")
        if not (_is_run_spec(cfg) and metrics.exists()):
            continue
        spec = RunSpec.from_dict(cfg)
        cls = W.WEIGHTINGS.get(spec.weighting)
        ran = json.loads(metrics.read_text())["info"].get("weighting")
        if ran is None or getattr(cls, "run_arguments", ()):   # teachers are loaded models, not reprs
            continue
        def unresolved(text):                                 # the mode is resolved against the model
            return re.sub(r"mode=('\w+'|None), ", "", text)
        assert unresolved(repr(W.create(spec.weighting, **spec.weighting_kw))) == unresolved(ran), path
        checked += 1
    assert checked > 700


def test_from_dict_rejects_unknown_and_missing_keys():
    with pytest.raises(ValueError, match=r"unknown spec keys \['epochs'\].*valid keys"):
        RunSpec.from_dict({"dataset": "scenes", "backbone": "segnet", "epochs": 3})
    with pytest.raises(ValueError, match="spec needs 'backbone'"):
        RunSpec.from_dict({"dataset": "scenes"})
    with pytest.raises(ValueError, match="probe kind must be one of"):
        RunSpec.from_dict({"dataset": "scenes", "backbone": "segnet", "probes": [{"kind": "hessian"}]})
    with pytest.raises(ValueError, match="rep_cos_every"):
        RunSpec.from_dict({"dataset": "scenes", "backbone": "segnet", "probe": {"every": 2}})


def test_params_round_trip_and_recorded_probe_forms():
    base = {"dataset": "multimnist", "backbone": "lenet", "name": "x", "tasks": ["left"]}
    grad = RunSpec.from_dict({**base, "probes": {"every": 3}})              # the form recorded before canonical ids
    assert grad.probes == ({"kind": "gradient", "every": 3},)
    assert grad.params()["probes"] == [{"kind": "gradient", "every": 3}]
    rep = RunSpec.from_dict({**base, "probe": {"rep_cos_every": 5}})
    assert rep.params()["probes"] == [{"kind": "representation", "every": 5}]
    assert RunSpec.from_dict(rep.params()) == rep
    assert rep.params()["tasks"] == ["left"] and "save_model" not in rep.params()
    # architecture and weighting are always recorded; optional fields only when they say something
    assert set(RunSpec.from_dict(base).params()) == {"architecture", "backbone", "backbone_kw", "dataset", "dataset_kw",
                                                    "name", "tasks", "train", "weighting", "weighting_kw"}


def test_builds_data_model_weighting_and_probes(tiny_mnist_spec):
    spec = RunSpec.from_dict({**tiny_mnist_spec, "weighting": "cagrad", "weighting_kw": {"c": 0.3},
                              "probes": [{"kind": "gradient", "every": 2}, {"kind": "representation", "every": 4}]})
    bundle = spec.build_data()
    assert [t.name for t in bundle.tasks] == ["left", "right"]
    model = spec.build_model(bundle)
    assert model.tasks == ["left", "right"]
    assert "c=0.3" in repr(spec.build_weighting())
    grad, rep = spec.build_probes(bundle)
    assert isinstance(grad, GradientProbe) and grad.every == 2
    assert isinstance(rep, RepresentationProbe) and rep.every == 4


def test_train_run_saves_a_model_that_load_model_rebuilds(tiny_mnist_spec, tmp_path):
    import torch

    spec = {**tiny_mnist_spec, "name": "saved", "save_model": True}
    rec = train_run(tmp_path, spec)
    assert Path(rec["run_dir"]).name == RunSpec.from_dict(spec).run_id()
    model = load_model(rec["run_dir"])
    state = torch.load(Path(rec["run_dir"]) / "model.pt", weights_only=True)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert not model.training and model.run_dir.endswith(Path(rec["run_dir"]).name)
    again = train_run(tmp_path, {**tiny_mnist_spec, "name": "saved", "save_model": True})
    assert again["resumed"] and again["metrics"] == rec["metrics"]


@pytest.fixture
def tiny_mnist_spec():
    return {"dataset": "multimnist", "dataset_kw": {"n_train": 64, "n_val": 16, "n_test": 16}, "backbone": "lenet",
            "train": {"epochs": 1, "batch_size": 32}}


def test_settings_that_do_not_change_a_result_do_not_change_the_id():
    base = {"dataset": "multimnist", "backbone": "lenet", "name": "x", "weighting": "cagrad",
            "train": {"epochs": 3, "lr": 0.001}}
    same = [
        {**base, "train": {"epochs": 3.0, "lr": 0.001}},                                   # 3.0 is 3
        {**base, "train": {"epochs": 3, "lr": 0.001, "progress": True}},                   # presentation only
        {**base, "train": {"epochs": 3, "lr": 0.001, "device": "auto"}},                   # the default device
        {**base, "train": {"epochs": 3, "lr": 0.001, "device": "cpu" if not _cuda() else "cuda"}},
        {**base, "train": {"epochs": 3, "lr": 0.001, "batch_size": 8, "seed": 0}},         # explicit defaults
        {**base, "weighting_kw": {"c": 0.5}},                                              # CAGrad's default c
        {**base, "architecture": "hps", "save_model": False, "corruption": {}},
        {**base, "probes": []},
    ]
    ids = {RunSpec.from_dict(s).run_id() for s in same}
    assert ids == {RunSpec.from_dict(base).run_id()}
    different = [{**base, "train": {"epochs": 4, "lr": 0.001}}, {**base, "weighting_kw": {"c": 0.4}},
                 {**base, "train": {"epochs": 3, "lr": 0.001, "max_steps_per_epoch": 2}}, {**base, "name": "y"}]
    assert len({RunSpec.from_dict(s).run_id() for s in different} | ids) == len(different) + 1


def test_canonical_params_are_a_fixed_point():
    spec = RunSpec.from_dict({"dataset": "scenes", "backbone": "segnet", "backbone_kw": {"width": 12.0},
                              "train": {"epochs": 2, "batch_size": 8}, "probes": {"every": 50}})
    p = spec.params()
    assert p["backbone_kw"] == {"width": 12} and p["train"] == {"epochs": 2} and p["probes"] == [{"kind": "gradient"}]
    assert RunSpec.from_dict(p).params() == p


def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()
