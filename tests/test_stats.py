"""mtl.stats: closed-form oracles, properties, and every rule simulated under its least favourable null.

Null simulations run each rule 4000 times on synthetic paired seeds (n = 3, 5, 10; Gaussian and
Student-t(3) noise) and bound the false ``supports`` and false ``contradicts`` rates by
5 % + 3 Monte Carlo SE. They call the vectorised core (``verdicts``), which a test pins to ``paired``.
"""
import json
import math

import numpy as np
import pytest
from scipy import stats as st

from mtl import stats as S
from mtl.stats import Rule

REPS = 4000
BOUND = 0.05 + 3 * math.sqrt(0.05 * 0.95 / REPS)
SEEDS = (3, 5, 10)
NOISE = ("gauss", "t3")
DIRECTIONS = ("greater", "less")


def draws(rng, noise, shape):
    """Unit-variance noise: Gaussian, or Student t with 3 df (heavy tails) scaled to variance 1."""
    if noise == "gauss":
        return rng.standard_normal(shape)
    return rng.standard_t(3, shape) / math.sqrt(3.0)


def rates(v):
    return np.mean(v == "supports"), np.mean(v == "contradicts")


# ----------------------------------------------------------------------------- Rule

def test_rule_from_dict_round_trip_and_defaults():
    r = Rule.from_dict({"kind": "equivalence", "margin": 1, "alpha": "0.1"})
    assert (r.kind, r.margin, r.alpha, r.floor, r.direction) == ("equivalence", 1.0, 0.1, 0.0, "greater")
    assert Rule.from_dict(r.to_dict()) == r
    assert Rule("superiority").to_dict() == {"kind": "superiority", "alpha": 0.05, "direction": "greater"}


@pytest.mark.parametrize("d, words", [
    ({"kind": "superiority", "treshold": 1}, ["treshold", "valid keys", "floor"]),
    ({"alpha": 0.05}, ["'kind'", "superiority", "equivalence"]),
    ({"kind": "betterness"}, ["betterness", "non-inferiority"]),
    ({"kind": "equivalence"}, ["margin", "equivalence"]),
    ({"kind": "non-inferiority", "margin": -1}, ["positive 'margin'"]),
    ({"kind": "superiority", "margin": 1}, ["'margin'", "floor"]),
    ({"kind": "equivalence", "margin": 1, "floor": 0.1}, ["'floor'", "margin"]),
    ({"kind": "superiority", "direction": "up"}, ["'up'", "greater", "less"]),
    ({"kind": "superiority", "alpha": 5}, ["alpha", "(0, 1)"]),
])
def test_rule_errors_name_the_key_and_valid_values(d, words):
    with pytest.raises(ValueError) as e:
        Rule.from_dict(d)
    for w in words:
        assert w in str(e.value)


# ----------------------------------------------------------------------------- closed forms

def t2_cdf(t):
    """Student t with 2 df has a closed-form CDF: 1/2 + t / (2 √(t² + 2))."""
    return 0.5 + t / (2 * math.sqrt(t * t + 2))


def test_superiority_ci_and_p_by_hand():
    # d = 1, 1.5, 2: mean 1.5, sd 0.5, se 0.5/√3; t(0.975, 2) = 4.302653 (the CDF above inverted)
    d = S.paired([2.0, 2.5, 3.0], [1.0, 1.0, 1.0], Rule("superiority"))
    se = 0.5 / math.sqrt(3)
    assert t2_cdf(4.302652729911275) == pytest.approx(0.975)
    assert d.ci == pytest.approx((1.5 - 4.302652729911275 * se, 1.5 + 4.302652729911275 * se))
    assert (d.estimate, d.se, d.n, d.df) == (pytest.approx(1.5), pytest.approx(se), 3, 2)
    assert d.p == pytest.approx(2 * (1 - t2_cdf(1.5 / se)))
    assert d.verdict == "supports" and d.seeds_needed is None
    # the same data claimed the other way round is contradicted
    assert S.paired([2.0, 2.5, 3.0], [1.0, 1.0, 1.0], Rule("superiority", direction="less")).verdict == "contradicts"


def test_superiority_floor_makes_a_small_significant_difference_inconclusive():
    a, b = [1.01, 1.011, 1.012, 1.013], [1.0] * 4
    assert S.paired(a, b, Rule("superiority")).verdict == "supports"
    d = S.paired(a, b, Rule("superiority", floor=0.05))
    assert d.verdict == "inconclusive" and d.seeds_needed is None and "below the floor" in d.text


def test_non_inferiority_by_hand():
    # d = a − b = −0.4, 0.1, 0.6 (mean 0.1, se 0.2887); CI [−1.142, 1.342]
    a, b = [0.6, 1.1, 1.6], [1.0, 1.0, 1.0]
    se = 0.5 / math.sqrt(3)
    ok = S.paired(a, b, Rule("non-inferiority", margin=1.2))
    assert ok.verdict == "supports"
    assert ok.p_supports == pytest.approx(2 * (1 - t2_cdf((0.1 + 1.2) / se)))
    assert S.paired(a, b, Rule("non-inferiority", margin=1.0)).verdict == "inconclusive"
    # a is worse by 3.5 ± 1.24: beyond a margin of 1 on the bad side
    bad = S.paired([-2.5, -3.0, -3.5], [0.0] * 3, Rule("non-inferiority", margin=1.0))
    assert bad.verdict == "contradicts" and bad.ci[1] < -1.0
    # direction "less" (lower is better): a − b = +3.5 is then the bad side
    assert S.paired([2.5, 3.0, 3.5], [0.0] * 3, Rule("non-inferiority", margin=1.0, direction="less")).verdict \
        == "contradicts"


def test_tost_by_hand():
    a, b = [0.6, 1.1, 1.6], [1.0, 1.0, 1.0]   # d: mean 0.1, CI [−1.142, 1.342]
    se = 0.5 / math.sqrt(3)
    d = S.paired(a, b, Rule("equivalence", margin=1.5))
    assert d.verdict == "supports"
    # TOST p: the larger of the two one-sided p-values, doubled (each test at α/2)
    p_lo, p_hi = 1 - t2_cdf((0.1 + 1.5) / se), 1 - t2_cdf((1.5 - 0.1) / se)
    assert d.p_supports == pytest.approx(2 * max(p_lo, p_hi))
    assert S.paired(a, b, Rule("equivalence", margin=1.2)).verdict == "inconclusive"   # 1.342 > 1.2
    far = S.paired([3.0, 3.5, 4.0], [0.0] * 3, Rule("equivalence", margin=1.0))        # CI [2.26, 4.74]
    assert far.verdict == "contradicts"
    assert S.paired([-3.0, -3.5, -4.0], [0.0] * 3, Rule("equivalence", margin=1.0)).verdict == "contradicts"


def test_one_seed_and_degenerate_inputs():
    d = S.paired([1.0], [0.0], Rule("superiority"))
    assert d.verdict == "inconclusive" and d.df is None and d.seeds_needed is None and "at least 2" in d.text
    z = S.paired([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], Rule("superiority"))   # no difference, no spread
    assert z.verdict == "inconclusive" and z.p == 1.0 and "observed effect is 0" in z.text
    const = S.paired([2.0, 2.0], [1.0, 1.0], Rule("superiority"))          # a constant difference
    assert const.verdict == "supports" and const.ci == (1.0, 1.0)
    with pytest.raises(ValueError, match="equal length"):
        S.paired([1.0, 2.0], [1.0], Rule("superiority"))
    with pytest.raises(ValueError, match="correlation"):
        S.paired([1.0, 2.0], [1.0, 1.0], Rule("correlation"))


def test_holm_known_p_values():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 → 0.06 (monotone)
    assert S.holm_adjusted(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert S.holm(p, 0.05).tolist() == [True, False, False, True]
    assert S.holm(p, 0.07).tolist() == [True, True, True, True]
    assert S.holm([0.02], 0.05).tolist() == [True]


def test_holm_on_decisions_downgrades_with_reason():
    one = S.paired([1.0, 1.6, 2.4, 0.6], [0.0] * 4, Rule("superiority"))
    assert 0.05 / 3 < one.p < 0.05 and one.verdict == "supports"
    kept = S.holm([one, one, one], 0.05)
    assert [d.verdict for d in kept] == ["inconclusive"] * 3 and "Holm over 3 parts" in kept[0].text
    assert [d.verdict for d in S.holm([one], 0.05)] == ["supports"]
    with pytest.raises(TypeError):
        S.holm([one, 0.01])


def test_combine_all_and_any():
    win = S.paired([2.0, 2.1, 2.2], [1.0] * 3, Rule("superiority"))     # p ≈ 0.003
    loss = S.paired([1.0] * 3, [2.0, 2.1, 2.2], Rule("superiority"))    # contradicts, p ≈ 0.003
    tie = S.paired([1.0, 2.0, 1.8], [1.5, 1.5, 1.5], Rule("superiority"))   # mean +0.1, p ≈ 0.78
    assert S.combine([win, win, win], "all").verdict == "supports"
    assert S.combine([win, tie], "all").verdict == "inconclusive"
    assert S.combine([win, loss], "all").verdict == "contradicts"
    assert S.combine([win, tie], "any").verdict == "supports"
    assert S.combine([loss, tie], "any").verdict == "inconclusive"
    assert S.combine([loss, loss], "any").verdict == "contradicts"
    c = S.combine([win, tie], "all", names=["seg", "depth"])
    assert [d.verdict for d in c.parts] == ["supports", "inconclusive"] and "seg: supports" in c.text
    assert c.to_dict()["rule"]["multiplicity"] == "holm"
    # the conjunction waits on its inconclusive part; both summaries are plain JSON
    assert c.seeds_needed == tie.seeds_needed is not None
    assert json.loads(json.dumps(c.to_dict()))["rule"]["parts"][0] == {"kind": "superiority", "alpha": 0.05,
                                                                       "direction": "greater"}
    assert json.loads(json.dumps(tie.to_dict()))["seeds_needed"] == tie.seeds_needed
    with pytest.raises(ValueError, match="'all', 'any'"):
        S.combine([win], "most")


# ----------------------------------------------------------------------------- properties

RULES = [Rule("superiority"), Rule("superiority", direction="less", floor=0.3),
         Rule("non-inferiority", margin=0.5), Rule("non-inferiority", margin=0.5, direction="less"),
         Rule("equivalence", margin=1.0), Rule("superiority", alpha=0.2)]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r.kind}-{r.direction}-{r.alpha}")
def test_vectorised_core_agrees_with_paired(rule):
    rng = np.random.default_rng(1)
    a = rng.normal(0.4, 1.0, (300, 4))
    b = rng.normal(0.0, 1.0, (300, 4))
    want = [S.paired(x, y, rule).verdict for x, y in zip(a, b)]
    assert S.verdicts(a - b, rule).tolist() == want
    assert len(set(want)) >= 2   # the sample exercises more than one verdict


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r.kind}-{r.direction}-{r.alpha}")
def test_scale_shift_and_mirror_invariance(rule):
    """A common shift of a and b changes nothing; scaling data, margin and floor by c > 0 changes
    nothing; swapping a and b with the opposite direction gives the same verdict and a mirrored CI."""
    rng = np.random.default_rng(2)
    flip = "less" if rule.direction == "greater" else "greater"
    for _ in range(40):
        a, b = rng.normal(0.5, 1.0, 5), rng.normal(0.0, 1.0, 5)
        d = S.paired(a, b, rule)
        assert S.paired(a + 7.0, b + 7.0, rule).verdict == d.verdict
        scaled = Rule(rule.kind, rule.alpha, None if rule.margin is None else 3 * rule.margin, 3 * rule.floor,
                      rule.direction)
        assert S.paired(3 * a, 3 * b, scaled).verdict == d.verdict
        m = S.paired(b, a, Rule(rule.kind, rule.alpha, rule.margin, rule.floor, flip))
        assert m.verdict == d.verdict and m.ci == pytest.approx((-d.ci[1], -d.ci[0]))


def test_p_value_matches_the_ci_decision():
    """supports ⇔ p_supports ≤ α ⇔ the CI excludes 0 on the claimed side (superiority, no floor)."""
    rng = np.random.default_rng(3)
    for _ in range(200):
        d = S.paired(rng.normal(0.7, 1, 4), np.zeros(4), Rule("superiority"))
        assert (d.verdict == "supports") == (d.p_supports <= 0.05) == (d.ci[0] > 0)


def test_superiority_p_is_scipys_two_sided_t_test():
    rng = np.random.default_rng(4)
    for n in (2, 3, 7):
        a, b = rng.normal(0.5, 1, n), rng.normal(0, 1, n)
        assert S.paired(a, b, Rule("superiority")).p == pytest.approx(st.ttest_rel(a, b).pvalue)


def simulated_power(rule, effect, sd, n, reps=4000, seed=0):
    rng = np.random.default_rng(seed)
    v = S.verdicts(effect + sd * rng.standard_normal((reps, n)), rule)
    return np.mean(v != "inconclusive")


@pytest.mark.parametrize("rule, effect", [
    (Rule("superiority"), 0.8), (Rule("non-inferiority", margin=0.5), 0.1),
    (Rule("equivalence", margin=1.0), 0.2), (Rule("equivalence", margin=0.5), 1.5)])
def test_seeds_needed_reaches_power_08_and_not_one_seed_earlier(rule, effect):
    rng = np.random.default_rng(5)
    d = S.paired(effect + rng.standard_normal(3), np.zeros(3), rule)
    n = d.seeds_needed_at(effect)
    assert n is not None and n >= 2
    se = 3 * math.sqrt(0.2 * 0.8 / 4000)
    assert simulated_power(rule, effect, d.sd, n) >= 0.8 - se
    if n > 2:
        # the TOST power is a lower bound (Bonferroni), so only the one-sided cases are tight
        if rule.kind != "equivalence" or abs(effect) > rule.margin:
            assert simulated_power(rule, effect, d.sd, n - 1) < 0.8 + se


def test_seeds_needed_on_inconclusive_parts_only_and_reasons():
    tie = S.paired([1.0, 2.0, 1.6], [1.5, 1.5, 1.5], Rule("superiority"))
    assert tie.verdict == "inconclusive" and tie.seeds_needed == tie.seeds_needed_at(tie.estimate)
    assert tie.seeds_needed is not None and f"(power 0.8): {tie.seeds_needed}" in tie.text
    assert tie.seeds_needed_at(0.0) is None
    win = S.paired([2.0, 2.1, 2.2], [1.0] * 3, Rule("superiority"))
    assert win.seeds_needed is None
    far = S.paired([1.0, 1.3, 0.5], [1.0, 1.0, 1.0], Rule("superiority"))
    assert far.seeds_needed_at(1e-6) is None   # out of reach within MAX_SEEDS
    at = S.paired([0.0, 1.0, -1.0], [0.0] * 3, Rule("non-inferiority", margin=1.0))
    assert at.seeds_needed_at(-1.0) is None    # exactly at the margin


# ----------------------------------------------------------------------------- null simulations

def null_rates(rule, true_d, n, noise, seed):
    rng = np.random.default_rng(seed)
    return rates(S.verdicts(true_d + draws(rng, noise, (REPS, n)), rule))


@pytest.mark.parametrize("n", SEEDS)
@pytest.mark.parametrize("noise", NOISE)
@pytest.mark.parametrize("rule, true_d", [
    (Rule("superiority"), 0.0),
    (Rule("superiority", direction="less"), 0.0),
    (Rule("non-inferiority", margin=0.5), -0.5),                   # at the margin on the bad side
    (Rule("non-inferiority", margin=2.0, direction="less"), 2.0),
    (Rule("equivalence", margin=0.5), 0.5),                        # at a margin: least favourable
    (Rule("equivalence", margin=2.0), -2.0),
], ids=lambda x: x.kind + "-" + x.direction if isinstance(x, Rule) else str(x))
def test_null_false_supports_and_contradicts_at_most_alpha(rule, true_d, n, noise):
    sup, con = null_rates(rule, true_d, n, noise, seed=[n, len(noise), int(10 * true_d) % 97])
    assert sup <= BOUND and con <= BOUND, (sup, con)


@pytest.mark.parametrize("noise", NOISE)
@pytest.mark.parametrize("rule, true_d", [
    (Rule("superiority"), 2.0),                                    # 2 SD in the claimed direction
    (Rule("non-inferiority", margin=0.5), -0.5 + 2.0),             # 2 SD on the good side of the margin
    (Rule("equivalence", margin=2.0), 0.0),                        # 2 SD from either margin
    (Rule("superiority", direction="less"), -2.0),
])
def test_power_at_two_sd_with_ten_seeds(rule, true_d, noise):
    sup, con = null_rates(rule, true_d, 10, noise, seed=7)
    assert sup > 0.8 and con < 0.01


@pytest.mark.parametrize("n", SEEDS)
@pytest.mark.parametrize("how", ["all", "any"])
def test_combine_three_independent_null_parts(n, how):
    rng = np.random.default_rng([n, len(how)])
    rule = Rule("superiority")
    d = rng.standard_normal((REPS, 3, n))                          # [rep, part, seed]
    se = d.std(-1, ddof=1) / math.sqrt(n)
    codes, p_s, p_c, _, _ = S._core(d.mean(-1), se, n - 1, rule)
    v = np.array(S.VERDICTS)[S._combine_codes(codes, np.minimum(p_s, p_c), how, 0.05)]
    sup, con = rates(v)
    assert sup <= BOUND and con <= BOUND, (sup, con)
    # with one part true at 2 SD and ten seeds: "any" finds it; "all" needs every part
    if n == 10:
        d[:, 0] += 2.0 if how == "any" else 0.0
        d += 2.0 if how == "all" else 0.0
        se = d.std(-1, ddof=1) / math.sqrt(n)
        codes, p_s, p_c, _, _ = S._core(d.mean(-1), se, n - 1, rule)
        assert np.mean(S._combine_codes(codes, np.minimum(p_s, p_c), how, 0.05) == 0) > 0.8


def test_combine_vectorised_agrees_with_combine():
    rng = np.random.default_rng(8)
    rule = Rule("superiority")
    for how in ("all", "any"):
        for _ in range(60):
            parts = [S.paired(rng.normal(rng.choice([-2, 0, 2]), 1, 4), np.zeros(4), rule) for _ in range(3)]
            codes = np.array([S.VERDICTS.index(p.verdict) for p in parts])
            fast = S._combine_codes(codes, np.array([p.p for p in parts]), how, 0.05)
            assert S.VERDICTS[int(fast)] == S.combine(parts, how).verdict


# ----------------------------------------------------------------------------- correlations

def test_spearman_by_seed_matches_scipy():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(4, 7)), rng.normal(size=(4, 7))
    x[0, :2] = 1.0                                                 # a tie
    want = [st.spearmanr(a, b).statistic for a, b in zip(x, y)]
    assert S.spearman_by_seed(x, y) == pytest.approx(want)


@pytest.mark.parametrize("n", SEEDS)
@pytest.mark.parametrize("units", [4, 5, 8])
@pytest.mark.parametrize("noise", NOISE)
def test_correlation_null_under_independence(n, units, noise):
    rng = np.random.default_rng([n, units, len(noise)])
    x, y = draws(rng, noise, (REPS, n, units)), draws(rng, noise, (REPS, n, units))
    for direction in DIRECTIONS:
        v = S.verdicts(S.spearman_by_seed(x, y), Rule("correlation", direction=direction))
        sup, con = rates(v)
        assert sup <= BOUND and con <= BOUND, (direction, sup, con)


def test_correlation_power_and_agreement_with_the_public_function():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(REPS // 10, 10, 6))
    y = x + rng.normal(size=x.shape)                               # ρ ≈ 0.7 per seed
    v = S.verdicts(S.spearman_by_seed(x, y), Rule("correlation"))
    assert np.mean(v == "supports") > 0.8
    for i in range(20):
        assert S.correlation(x[i], y[i], Rule("correlation")).verdict == v[i]


def test_correlation_never_pools_unit_by_seed_points():
    """Seed offsets shared by x and y make the pooled correlation high; within seed there is none."""
    rng = np.random.default_rng(11)
    offset = np.array([0.0, 10.0, 20.0, 30.0, 40.0])[:, None]     # [seed, 1]
    x, y = offset + rng.normal(size=(5, 6)), offset + rng.normal(size=(5, 6))
    assert st.spearmanr(x.ravel(), y.ravel()).statistic > 0.8
    d = S.correlation(x, y, Rule("correlation"))
    assert d.verdict == "inconclusive" and d.n == 5 and d.df == 4
    assert d.estimate == pytest.approx(np.mean([st.spearmanr(a, b).statistic for a, b in zip(x, y)]))


def test_correlation_input_errors():
    with pytest.raises(ValueError, match="kind 'correlation'"):
        S.correlation([[1, 2, 3]], [[1, 2, 3]], Rule("superiority"))
    with pytest.raises(ValueError, match="all-tied"):
        S.correlation([[1, 1, 1, 1], [1, 2, 3, 4], [1, 2, 3, 4]], [[1, 2, 3, 4]] * 3, Rule("correlation"))


@pytest.mark.parametrize("units, seeds", [(3, 5), (4, 2), (2, 3)])
def test_correlation_too_small_a_design_is_inconclusive_with_reason(units, seeds):
    """With 3 units and 3 seeds the t test on ρ would falsely support 7 % of the time (ρ takes 4 values)."""
    x = np.tile(np.arange(units, dtype=float), (seeds, 1))
    d = S.correlation(x, x, Rule("correlation"))
    assert d.verdict == "inconclusive" and "at least 4 units and 3 seeds" in d.text


# ----------------------------------------------------------------------------- rank stability

def test_kendall_w_closed_form():
    # 3 raters, 4 items: rank sums 4, 8, 9, 9, mean 7.5, S = 12.25 + 0.25 + 2.25 + 2.25 = 17
    r = [[1, 2, 3, 4], [1, 3, 2, 4], [2, 3, 4, 1]]
    assert float(S.kendall_w(r)) == pytest.approx(12 * 17 / (9 * (64 - 4)))


def test_rank_stability_null_and_power():
    change = Rule("correlation", direction="less")
    rng = np.random.default_rng(12)
    mu = np.linspace(0, 1.5, 5)                                    # one true ranking of 5 units
    false = 0
    reps = 300
    for i in range(reps):
        scores = mu[:, None, None] + rng.normal(size=(5, 4, 3))    # [unit, context, seed]
        false += S.rank_stability(scores, change, n_perm=199, seed=i).decision.verdict == "supports"
    assert false / reps <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / reps)
    # the ranking reverses in half the contexts: supported
    flipped = np.stack([mu, mu, mu[::-1], mu[::-1]], 1)[:, :, None] * 3 + 0.1 * rng.normal(size=(5, 4, 3))
    r = S.rank_stability(flipped, change, n_perm=499)
    assert r.decision.verdict == "supports" and r.w < 0.1 and r.p <= 0.025
    # two neighbours swap places in half the contexts: a real but small change (1 − W ≈ 0.05), which a
    # floor of 0.2 on 1 − W does not count
    swap = mu[[1, 0, 2, 3, 4]]
    small = np.stack([mu, mu, swap, swap], 1)[:, :, None] * 3 + 0.1 * rng.normal(size=(5, 4, 3))
    r = S.rank_stability(small, change)
    assert r.decision.verdict == "supports" and 0 < 1 - r.w < 0.2
    assert S.rank_stability(small, Rule("correlation", direction="less", floor=0.2)).decision.verdict \
        == "inconclusive"


def test_rank_stability_is_reproducible_and_checks_its_input():
    rng = np.random.default_rng(13)
    sc = rng.normal(size=(4, 3, 2))
    rule = Rule("correlation", direction="less")
    one, two = S.rank_stability(sc, rule, seed=5), S.rank_stability(sc, rule, seed=5)
    assert (one.w, one.p, one.decision.text) == (two.w, two.p, two.decision.text)
    assert S.rank_stability(sc[:, :, :1], rule).p == 1.0          # one seed: context and noise inseparable
    with pytest.raises(ValueError, match="direction='less'"):
        S.rank_stability(sc, Rule("correlation"))
    with pytest.raises(ValueError, match=r"\[unit"):
        S.rank_stability(sc[:2], rule)
