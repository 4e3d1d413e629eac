"""scripts/plateau_false_fail.py: the planning simulation of the gate's plateau test."""
import importlib.util
import json
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "plateau_false_fail.py"
spec = importlib.util.spec_from_file_location("plateau_false_fail", SCRIPT)
pff = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pff)


def test_false_fail_is_zero_without_noise_and_grows_with_it():
    assert pff.false_fail(0.0, 40, 50) == 0.0                   # a flat end never sets a new best by 5 %
    low, high = pff.false_fail(0.02, 40, 2000), pff.false_fail(0.08, 40, 2000)
    assert low < high and high > 0.01


def test_relative_noise_reads_histories(tmp_path):
    rng = np.random.default_rng(0)
    v = np.concatenate([np.linspace(0, 1, 20), 1 + rng.normal(0, 0.05, 10)])   # gain ≈ 1, SD 0.05 at the end
    run = tmp_path / "r-1"
    run.mkdir()
    (run / "history.json").write_text(json.dumps([{"val": {"t": {"acc": float(x)}}} for x in v]))
    (rel,) = pff.relative_noise(tmp_path)
    assert 0.02 < rel < 0.1
