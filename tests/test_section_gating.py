"""The helpers the gradients, features, architectures and ConsMTL sections share (mtl.studies._gating)."""
import numpy as np
import pytest

from mtl.stats import Rule, combine, paired
from mtl.studies import _gating as G


def _rec(acc, epochs=5, rising=False):
    hist = [{"epoch": e, "val": {"a": {"acc": acc * ((e + 1) / epochs if rising else 1.0)}}} for e in range(epochs)]
    return {"metrics": {"a": {"acc": acc}}, "history": hist, "params": {"name": f"r{acc}"}}


def test_gate_and_scale_needed_name_what_fails():
    dirs, triv = {"a": {"acc": True}}, {"a": {"acc": 0.5}}
    ok = G.gate([_rec(0.9)], triv, dirs)
    assert ok.passed and G.scale_needed(ok, "gradients") is None
    bad = G.gate([_rec(0.9), _rec(0.55, rising=True)], triv, dirs)
    text = G.scale_needed(bad, "gradients")
    assert not bad.passed and "1/2 runs' validation curves still improve" in text and "more than the 5 epochs" in text
    assert "1/2 runs do not close" in text and "gpu profile trains scenes 40 epochs" in text


def test_trivial_table_marks_baselines_below_the_threshold():
    t = G.trivial_table({"a": {"acc": 0.2}, "d": {"rmse": 1.0}}, {"a": {"acc": 0.3}, "d": {"rmse": 0.5}},
                        {"a": {"acc": True}, "d": {"rmse": False}})
    assert t["gate threshold"].tolist() == pytest.approx([0.4, 0.75])
    assert t["single-task passes the gap test"].tolist() == [False, True]


def test_collapse_keeps_the_family_verdict_with_a_valid_p():
    r = Rule("superiority")
    win = paired([2.0, 2.1, 2.2], [1.0, 1.0, 1.0], r)
    null = paired([1.0, 1.2, 0.9], [1.0, 1.1, 1.0], r)
    any_ = G.collapse(combine([win, null], "any"), "family")
    assert any_.verdict == "supports" and any_.p == pytest.approx(min(1.0, 2 * win.p))
    all_ = G.collapse(combine([win, null], "all"), "family")
    assert all_.verdict == "inconclusive" and all_.text.startswith("family: ")


def test_inconclusive_records_always_carry_seeds_needed_and_reading_uses_the_records():
    v = G.verdict("C0", "inconclusive", paper="p", ours="o", evidence="e",
                  adequacy={"passed": True, "detail": "2/2 runs beat the trivial predictor; 2/2 plateaued"})
    assert "seeds_needed" in v and v["seeds_needed"] is None
    u = G.verdict("C1", "supports", paper="p", ours="o", evidence="e",
                  adequacy={"passed": False, "detail": "0/2 runs beat the trivial predictor; 0/2 plateaued"},
                  scale_needed="more epochs")
    text = G.reading([v, u])
    assert "**C0**: inconclusive; the scale gate passed (2/2 runs" in text
    assert "**C1**: untestable; the scale gate failed (0/2" in text and "for the record: supports" in text
    with pytest.raises(KeyError, match="no rule"):
        G.rules({"rules": {}}, "C9")
    assert np.isclose(G.rules({"rules": {"X": {"kind": "equivalence", "margin": 0.5}}}, "X")["X"].margin, 0.5)
