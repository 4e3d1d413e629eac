"""Claim records: the scale gate turns any rule's answer on untrained runs into ``untestable``."""
import pytest

from mtl import claims
from mtl.stats import Rule


def test_a_failed_gate_makes_any_verdict_untestable_and_keeps_the_rule_answer():
    for v in ("supports", "contradicts", "inconclusive"):
        rec = claims.verdict("C1", v, paper="p", ours="o", evidence="rule said so",
                             adequacy={"passed": False, "detail": "depth rmse 1.5 > 0.75 × 1.0"},
                             scale_needed="about 30 epochs")
        assert rec["verdict"] == "untestable" and rec["rule_verdict"] == v
        assert "scale gate (depth rmse" in rec["evidence"] and "about 30 epochs" in rec["evidence"]
        assert rec["adequacy"] == {"passed": False, "detail": "depth rmse 1.5 > 0.75 × 1.0"}


def test_a_passed_gate_keeps_the_verdict_and_records_rule_and_seeds():
    rec = claims.verdict("C2", "inconclusive", paper="p", ours="o", evidence="e", rule=Rule("superiority", floor=0.5),
                         adequacy={"passed": True, "detail": "6/6 runs beat the trivial predictor"}, seeds_needed=9)
    assert rec["verdict"] == "inconclusive" and "rule_verdict" not in rec
    assert rec["rule"]["kind"] == "superiority" and rec["seeds_needed"] == 9


def test_combine_and_unknown_verdicts():
    assert claims.combine("supports", "supports") == "supports"
    assert claims.combine("supports", "untestable") == "untestable"
    assert claims.combine("untestable", "contradicts") == "contradicts"
    assert claims.combine("supports", "inconclusive") == "inconclusive"
    with pytest.raises(ValueError, match="unknown verdict 'maybe'"):
        claims.combine("maybe")
    with pytest.raises(ValueError, match="valid:.*untestable"):
        claims.verdict("C3", "probably", paper="p", ours="o", evidence="e")


def test_seeds_needed_text_says_a_number_or_why_there_is_none():
    """The claims page's *seeds needed*: the claim's number when it has one; otherwise, for an
    inconclusive claim, that no number decides it at the observed effect, with each undecided part's."""
    from mtl.claims import seeds_needed_text
    assert seeds_needed_text({"verdict": "inconclusive", "seeds_needed": 13}) == "13"
    rec = {"verdict": "inconclusive", "parts": [
        {"part": "a", "verdict": "inconclusive", "seeds_needed": None},
        {"part": "b", "verdict": "inconclusive", "seeds_needed": 9},
        {"part": "c", "verdict": "supports", "seeds_needed": None}]}
    text = seeds_needed_text(rec)
    assert text.startswith("none at the observed effect") and "a: none; b: 9" in text and "c:" not in text
    assert seeds_needed_text({"verdict": "inconclusive"}).startswith("none at the observed effect")
    for v in ("supports", "contradicts", "untestable"):
        assert seeds_needed_text({"verdict": v, "seeds_needed": 5}) == ""
