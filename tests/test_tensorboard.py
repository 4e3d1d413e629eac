"""The optional TensorBoard sink: events read back equal history.json; off by default; not in the run id."""
import json
import sys

import pytest

from mtl import tensorboard as TB
from mtl.experiment import RunSpec, train_run

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

SPEC = {"dataset": "multimnist", "dataset_kw": {"n_train": 48, "n_val": 16, "n_test": 16}, "backbone": "lenet",
        "weighting": "mgda", "train": {"epochs": 2, "batch_size": 16}, "name": "tb",
        "probes": [{"kind": "gradient", "every": 2}]}


def _read(folder) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_events_read_back_equal_the_json_history(tmp_path, one_thread):
    rec = train_run(tmp_path, {**SPEC, "tensorboard": True})
    run_dir = tmp_path / rec["run_dir"].split("/")[-1]
    history = json.loads((run_dir / "history.json").read_text())
    events = _read(run_dir / TB.EVENTS_DIR)
    # every epoch value and every probe record, at its step, as float32 (what an event stores)
    h = history[-1]
    assert events["train_loss/left"][-1] == (1, pytest.approx(h["train_loss"]["left"], rel=1e-6))
    assert events["weights/right"][-1] == (1, pytest.approx(h["weights"]["right"], rel=1e-6))
    assert events["test/left/acc"][-1] == (1, pytest.approx(h["test"]["left"]["acc"], rel=1e-6))
    assert events["val/right/acc"][0] == (0, pytest.approx(history[0]["val"]["right"]["acc"], rel=1e-6))
    probes = [p for r in history for p in r["probes"]]
    assert len(probes) >= 2
    assert [s for s, _ in events["probes/gradients/grad_norm/left"]] == [p["step"] for p in probes]
    assert events["probes/gradients/cos/left/right"][0][1] == pytest.approx(probes[0]["cos"][0][1], rel=1e-5)
    expected = TB.scalars(history)
    assert set(events) == set(expected)
    for tag, points in expected.items():
        assert [s for s, _ in events[tag]] == [s for s, _ in points], tag
        assert [v for _, v in events[tag]] == pytest.approx([v for _, v in points], rel=1e-5, abs=1e-30), tag


def test_off_by_default_and_never_in_the_run_id(tmp_path, one_thread):
    assert RunSpec.from_dict(SPEC).tensorboard is None
    on = RunSpec.from_dict({**SPEC, "tensorboard": True})
    assert on.run_id() == RunSpec.from_dict(SPEC).run_id() and "tensorboard" not in on.params()
    rec = train_run(tmp_path, SPEC)
    run_dir = tmp_path / rec["run_dir"].split("/")[-1]
    assert not (run_dir / TB.EVENTS_DIR).exists()
    # the same run asked again with events: loaded (not retrained), its events written from history.json
    again = train_run(tmp_path, {**SPEC, "tensorboard": True})
    assert again["resumed"] and (run_dir / TB.EVENTS_DIR).is_dir()
    assert _read(run_dir / TB.EVENTS_DIR)["train_loss/left"][0][1] == pytest.approx(
        rec["history"][0]["train_loss"]["left"], rel=1e-6)
    assert not list(run_dir.glob(".*.tmp"))
    with pytest.raises(ValueError, match="'tensorboard' must be true or false"):
        RunSpec.from_dict({**SPEC, "tensorboard": "yes"})


def test_a_missing_tensorboard_package_is_an_install_hint(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)     # import fails as when it is absent
    with pytest.raises(ImportError, match=r'pip install -e "\.\[tensorboard\]"'):
        TB.summary_writer()
    with pytest.raises(ImportError, match="tensorboard"):                 # before any training
        train_run(tmp_path, {**SPEC, "tensorboard": True})
    assert not any(tmp_path.iterdir())
