"""RunSpec: typed run parameters whose ``params()`` are exactly what the committed run ids hash."""
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
    grad = RunSpec.from_dict({**base, "probes": {"every": 3}})
    assert grad.probes == ({"kind": "gradient", "every": 3},)
    assert grad.params()["probes"] == {"every": 3} and "probe" not in grad.params()
    rep = RunSpec.from_dict({**base, "probes": [{"kind": "representation", "every": 5}]})
    assert rep.params()["probe"] == {"rep_cos_every": 5} and "probes" not in rep.params()
    assert RunSpec.from_dict(rep.params()) == rep
    assert rep.params()["tasks"] == ["left"] and "save_model" not in rep.params()
    # defaults are part of the hashed parameters; optional fields only when given
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

    rec = train_run(tmp_path, {**tiny_mnist_spec, "name": "saved", "save_model": True})
    assert Path(rec["run_dir"]).name == RunSpec.from_dict({**tiny_mnist_spec, "name": "saved", "save_model": True}).run_id()
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
