"""Section "Trade-off fronts" (mtl.studies.fronts): hypervolume table, order correlations and the F1/F2 verdicts."""
import numpy as np
import torch
import pytest

from mtl import stats as ST
from mtl.fronts import hypervolume
from mtl.studies import fronts as F


def _history(acc=(0.2, 0.6, 0.85, 0.86, 0.86, 0.86)) -> list:
    return [{"epoch": e, "val": {"left": {"acc": a}, "right": {"acc": a}}} for e, a in enumerate(acc)]


def _results(sign: float = 1.0, extra_shift: float = 0.0, seeds=(0, 1, 2), control_bend: float = 0.0,
             history=True) -> dict:
    """Synthetic seeds: EXTRA's losses linear in t (``sign``: +1 ordered, −1 reversed); the α = 0
    control on the same end points, its interior pulled towards the middle by ``control_bend``."""
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 6)
    out = {}
    for s in seeds:
        l1 = 1 + sign * t + 0.01 * rng.random(6)
        l2 = 2 - sign * t + 0.01 * rng.random(6)
        bend = np.sin(np.pi * t) * control_bend                      # 0 at the shared end points
        c1, c2 = l1 + (1.5 - l1) * bend, l2 + (1.5 - l2) * bend       # interior pulled to the middle: flatter
        extra = np.stack([0.2 + 0.3 * t, 0.5 - 0.3 * t], 1) - extra_shift
        pamal = np.stack([0.25 + 0.3 * t, 0.55 - 0.3 * t], 1) + 0.001 * s
        ls = np.array([[0.3, 0.3], [0.4, 0.25]])
        out[s] = {"extra": {"points": t.tolist(), "losses": np.stack([l1, l2], 1).tolist(), "errors": extra.tolist()},
                  F.CONTROL: {"points": t.tolist(), "losses": np.stack([c1, c2], 1).tolist(), "errors": extra.tolist()},
                  "pamal": {"points": [[a, 1 - a] for a in t], "losses": pamal.tolist(), "errors": pamal.tolist()},
                  "ls": {"points": [[0.5, 0.5], [0.3, 0.7]], "losses": ls.tolist(), "errors": ls.tolist()}}
        if history:
            out[s]["history"] = {k: _history() for k in ("end0", "end1", "extra", F.CONTROL, "pamal", "ls0", "ls1")}
    return out


RULES = {"F1_order": {"kind": "correlation", "direction": "greater", "floor": 0.5},
         "F1_ro": {"kind": "superiority", "direction": "greater", "floor": 0.1},
         "F2_hv": {"kind": "non-inferiority", "direction": "greater", "margin": 0.01}}
PASS = {"passed": True, "detail": "synthetic runs, well above trivial"}
FAIL = {"passed": False, "detail": "no validation history"}
RS = {k: ST.Rule.from_dict(v) for k, v in RULES.items()}
BOUND = lambda n: 0.05 + 3 * np.sqrt(0.05 * 0.95 / n)             # noqa: E731  5 % + 3 Monte Carlo SE


def test_the_preregistered_rules_are_these():
    """The profile's rules are the ones the tests simulate (a changed rule must change them too)."""
    P, _ = F.setup("cpu", "/tmp/unused-fronts-out")
    assert P["rules"] == RULES


def test_order_strength_is_one_for_a_linear_profile_and_grows_with_a_sharper_trade_off():
    t = np.linspace(0, 1, 11)[None]
    assert F.order_strength(t, t, -t) == pytest.approx([1.0])
    step = (t > 0.5).astype(float)                                  # all of the order at the midpoint
    assert F.order_strength(t, step, -step)[0] > 1.2
    flat = np.where((t > 0) & (t < 1), 0.5, t)                      # ends ordered, interior flat
    assert F.order_strength(t, flat, -flat)[0] < 0.5
    assert np.isnan(F.order_strength(t, -t, t)[0])                  # end points not ordered: undefined


def test_f1_decides_each_way():
    # ordered curve, the control's interior bent flat (R_o made the order): supports
    assert F.f1_decide(F.f1_inputs(_results(+1, control_bend=0.8)), RS).verdict == "supports"
    # ordered curve but the control is as ordered (no effect of R_o): inconclusive, part (b) says so
    c = F.f1_decide(F.f1_inputs(_results(+1)), RS)
    assert c.verdict == "inconclusive" and [d.verdict for d in c.parts][:2] == ["supports", "supports"]
    # the control more ordered than EXTRA: contradicts (part b)
    inp = F.f1_inputs(_results(+1, control_bend=0.8))
    swapped = {**inp, "l1": inp["c1"], "l2": inp["c2"], "c1": inp["l1"], "c2": inp["l2"]}
    c = F.f1_decide(swapped, RS)
    assert c.verdict == "contradicts" and c.parts[2].verdict == "contradicts"
    # the order reversed along t: contradicts (parts a), the order strength undefined
    c = F.f1_decide(F.f1_inputs(_results(-1)), RS)
    assert c.verdict == "contradicts" and "not ordered" in c.parts[2].text


def test_f1_record_follows_the_rule_and_the_gate():
    v = F.f1_order_aware(_results(+1, control_bend=0.8), RULES, PASS)
    assert v["verdict"] == "supports" and [p["part"] for p in v["parts"]] == list(F.F1_PARTS)
    assert "α = 0" in v["evidence"] and "order strength" in v["ours"]
    un = F.f1_order_aware(_results(+1, control_bend=0.8), RULES, FAIL, scale_needed="more epochs")
    assert un["verdict"] == "untestable" and un["rule_verdict"] == "supports" and un["scale_needed"] == "more epochs"
    r = _results(+1)
    del r[1][F.CONTROL]
    with pytest.raises(ValueError, match="no α = 0 control"):
        F.f1_order_aware(r, RULES, PASS)


def _null_seeds(rng, n_seeds: int, ordered: bool) -> dict:
    """Synthetic inputs with no R_o effect: the curve and its control drawn alike around shared end points
    (``ordered``: ends and interiors ordered along t with random shapes, else losses unrelated to t)."""
    t = np.tile(np.linspace(0, 1, 11), (n_seeds, 1))
    if not ordered:
        return {"t": t, **{k: rng.normal(size=t.shape) for k in ("l1", "l2", "c1", "c2")}}
    ends = rng.normal(0, 0.05, (n_seeds, 4)) + [0.3, 0.7, 0.7, 0.3]     # L1(0), L1(1), L2(0), L2(1)

    def curve():    # a random shape per seed and task: a symmetric bulge and an antisymmetric twist (moves q)
        bend = (rng.normal(0, 0.15, (n_seeds, 2, 1)) * np.sin(np.pi * t)[:, None]
                + rng.normal(0, 0.1, (n_seeds, 2, 1)) * np.sin(2 * np.pi * t)[:, None])
        noise = rng.normal(0, 0.02, (n_seeds, 2, t.shape[1]))
        l1 = ends[:, [0]] + (ends[:, [1]] - ends[:, [0]]) * t + bend[:, 0] + noise[:, 0]
        l2 = ends[:, [2]] + (ends[:, [3]] - ends[:, [2]]) * t + bend[:, 1] + noise[:, 1]
        l1[:, [0, -1]], l2[:, [0, -1]] = ends[:, [0, 1]], ends[:, [2, 3]]              # shared end points
        return l1, l2
    (l1, l2), (c1, c2) = curve(), curve()
    return {"t": t, "l1": l1, "l2": l2, "c1": c1, "c2": c2}


@pytest.mark.parametrize("ordered", [False, True])
@pytest.mark.parametrize("n_seeds", [3, 5])
def test_f1_null_simulation(ordered, n_seeds):
    """No R_o effect (400 draws): false supports and false contradicts each ≤ 5 % + 3 MC SE — with losses
    unrelated to t, and with ordered curves whose control is drawn like EXTRA (the order by construction)."""
    rng = np.random.default_rng(6 + n_seeds + 10 * ordered)
    v = np.array([F.f1_decide(_null_seeds(rng, n_seeds, ordered), RS).verdict for _ in range(400)])
    assert np.mean(v == "supports") <= BOUND(400) and np.mean(v == "contradicts") <= BOUND(400)


@pytest.mark.parametrize("floor", [0.0, 0.1])
def test_f1_part_b_null_simulation(floor):
    """Part (b) alone under its null (the control drawn like EXTRA; the order strength's spread over seeds
    well above the floor, and with no floor at all, so the t interval itself is tested): false supports /
    contradicts ≤ 5 % + 3 MC SE."""
    rng = np.random.default_rng(11)
    rule = ST.Rule("superiority", floor=floor)
    v, spread = [], []
    for _ in range(400):
        d = _null_seeds(rng, 5, True)
        q, q0 = F.order_strength(d["t"], d["l1"], d["l2"]), F.order_strength(d["t"], d["c1"], d["c2"])
        v.append(ST.paired(q, q0, rule).verdict)
        spread.append(np.std(q - q0, ddof=1))
    v = np.asarray(v)
    assert np.median(spread) > 3 * RS["F1_ro"].floor                  # the floor is not what keeps the rates low
    assert np.mean(v == "supports") <= BOUND(400) and np.mean(v == "contradicts") <= BOUND(400)


def test_hypervolumes_match_the_library_and_f2_follows_them():
    r = _results(+1)
    ref = F.reference_point(r, "errors", [1.0, 1.0])
    hv = F.hypervolumes(r, "errors", ref)
    e0 = hv[(hv.seed == 0) & (hv.method == "extra")]["hypervolume"].item()
    assert e0 == pytest.approx(hypervolume(np.asarray(r[0]["extra"]["errors"]), [1.0, 1.0]))
    assert F.f2_hypervolume(hv, ref, "error", RULES, PASS)["verdict"] == "supports"     # EXTRA's points dominate
    hv2 = F.hypervolumes(_results(+1, extra_shift=-0.2), "errors", ref)
    assert F.f2_hypervolume(hv2, ref, "error", RULES, PASS)["verdict"] == "contradicts"
    un = F.f2_hypervolume(hv, ref, "error", RULES, FAIL, scale_needed="record validation curves")
    assert un["verdict"] == "untestable" and un["rule_verdict"] == "supports"
    table = F.hv_table(hv)
    assert list(table.index) == [F.LABELS[m] for m in F.METHODS] and (table["HV mean ↑"] > 0).all()


def test_indicator_table_agrees_with_the_hypervolumes_and_orders_the_fronts():
    """The HV column is :func:`hypervolumes`'s mean; IGD/IGD+ are each seed's :func:`mtl.fronts.igd` /
    ``igd_plus`` against that seed's joint non-dominated points, averaged; IGD+ ≤ IGD; PaMaL's points
    (EXTRA's shifted worse) are further from the best known front than EXTRA's."""
    from mtl.fronts import igd, igd_plus, pareto_front
    r = _results(+1)
    ref = F.reference_point(r, "errors", [1.0, 1.0])
    table = F.indicator_table(r, "errors", ref)
    hv = F.hypervolumes(r, "errors", ref)
    for m in F.METHODS:
        row = table.loc[F.LABELS[m]]
        assert row["hypervolume mean"] == pytest.approx(hv[hv.method == m]["hypervolume"].mean())
        fronts_ = [pareto_front(np.concatenate([np.asarray(x[k]["errors"]) for k in F.METHODS])) for x in r.values()]
        pts = [np.asarray(x[m]["errors"]) for x in r.values()]
        assert row["IGD mean"] == pytest.approx(np.mean([igd(p, z) for p, z in zip(pts, fronts_)]))
        assert row["IGD+ mean"] == pytest.approx(np.mean([igd_plus(p, z) for p, z in zip(pts, fronts_)]))
        assert row["IGD+ mean"] <= row["IGD mean"] + 1e-12
    assert table.loc[F.LABELS["extra"], "IGD+ mean"] < table.loc[F.LABELS["pamal"], "IGD+ mean"]


@pytest.mark.parametrize("seeds", [3, 5])
def test_f2_null_simulation_at_the_margin(seeds):
    """EXTRA worse than PaMaL by exactly the margin: false supports ≤ 5 % + 3 MC SE; equal: false
    contradicts ≤ 5 % + 3 MC SE."""
    rng = np.random.default_rng(7)
    at = [F.f2_decide(0.5 - 0.01 + rng.normal(0, 0.02, seeds), np.full(seeds, 0.5), RS["F2_hv"]).verdict
          for _ in range(400)]
    eq = [F.f2_decide(0.5 + rng.normal(0, 0.02, seeds), np.full(seeds, 0.5), RS["F2_hv"]).verdict for _ in range(400)]
    bound = 0.05 + 3 * np.sqrt(0.05 * 0.95 / 400)
    assert np.mean(np.asarray(at) == "supports") <= bound and np.mean(np.asarray(eq) == "contradicts") <= bound


def _trivial(monkeypatch):
    monkeypatch.setattr(F.X, "gate_reference", lambda spec, out=None: ({"left": {"acc": 0.1}, "right": {"acc": 0.1}},
                                                                       {"left": {"acc": True}, "right": {"acc": True}}))


def test_the_gate_reads_each_points_history(monkeypatch):
    _trivial(monkeypatch)
    P = {"n_train": 8, "n_val": 4, "n_test": 4}
    assert F.gate(_results(+1), P, methods=("extra", F.CONTROL, "pamal", "ls")).passed
    g = F.gate(_results(+1, history=False), P)
    assert not g.passed and "no validation history" in g.detail and "beat the trivial predictor" in g.detail
    r = _results(+1)
    for s in r:                                           # stage 2 still rising: every interior point fails
        r[s]["history"]["extra"] = _history((0.2, 0.4, 0.6, 0.8, 0.9, 0.95))
    g = F.gate(r, P, methods=("extra",))
    assert not g.passed and "0/6 plateaued" not in g.detail and "4/6 plateaued" not in g.detail
    assert "2/6 plateaued" in g.detail                    # only t = 0 and t = 1 (their stage-1 histories)


def test_plateau_table_lists_the_rising_runs_first():
    r = _results(+1)
    r[1]["history"]["extra"] = _history((0.2, 0.4, 0.6, 0.8, 0.9, 0.95))
    df = F.plateau_table(r)
    assert len(df) == 3 * 7 * 2 and (~df["plateaued"]).sum() == 2
    assert df.loc[0, "run"] == "extra" and df.loc[0, "seed"] == 1 and not df.loc[0, "plateaued"]
    assert df.loc[0, "share of the improvement in the last epochs"] == pytest.approx(0.35 / 0.75)


def test_point_history_maps_points_to_their_runs():
    r = _results(+1)[0]
    r["history"] = {k: [k] for k in r["history"]}
    assert [F.point_history(r, "extra", k) for k in (0, 1, 5)] == [["end0"], ["extra"], ["end1"]]
    assert F.point_history(r, F.CONTROL, 2) == [F.CONTROL] and F.point_history(r, "pamal", 3) == ["pamal"]
    assert F.point_history(r, "ls", 1) == ["ls1"] and F.point_history({"ls": {}}, "ls", 0) is None


def test_auto_reference_point_bounds_every_point():
    r = _results(+1)
    ref = F.reference_point(r, "errors")
    allp = np.concatenate([np.asarray(r[s][m]["errors"]) for s in r for m in F.METHODS])
    assert (allp < ref).all() and ref == pytest.approx(1.1 * allp.max(0))


def test_losses_along_t_long_frame():
    df = F.losses_along_t(_results(+1))
    assert set(df.columns) == {"seed", "curve", "t", "task", "loss"} and len(df) == 3 * 2 * 6 * 2


def test_multimnist_fronts_returns_all_three_fronts():
    out = F.multimnist_fronts(n_train=32, n_val=16, n_test=16, epochs=1, n_grid=3, n_sweep=2,
                              batch_size=16, device="cpu", max_steps_per_epoch=1)
    assert set(out) == {"extra", F.CONTROL, "extra_val", "pamal", "ls", "history"}
    assert out["extra"].losses.shape == (3, 2) and out["pamal"].losses.shape == (3, 2)
    assert np.allclose(out["extra"].losses[[0, -1]], out[F.CONTROL].losses[[0, -1]])    # the same end points
    assert set(out["history"]) == {"end0", "end1", "extra", F.CONTROL, "pamal", "ls0", "ls1"}
    assert all(len(h) == 1 and set(h[0]["val"]) == {"left", "right"} for h in out["history"].values())
    assert np.allclose(out["ls"].points, [(1 / 3, 2 / 3), (2 / 3, 1 / 3)])


def test_a_seed_record_names_its_torch_threads_and_time(tmp_path):
    """The status page reads every record's torch version and thread count (they fix CPU reduction order)."""
    P = dict(n_train=32, n_val=16, n_test=16, epochs=1, n_grid=3, n_sweep=2, batch_size=16,
             max_steps_per_epoch=1, device="cpu")
    rec = F.run_seed(tmp_path, P, seed=0)
    info = rec["info"]
    assert info["torch"] == torch.__version__ and info["threads"] == torch.get_num_threads()
    assert info["train_time"] > 0
