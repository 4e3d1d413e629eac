"""Preregistered statistics for the verdicts on the papers' claims (``shared/design/CLAIMS.md``).

Every claim part names a :class:`Rule` (in the section's yaml) and is decided from paired seeds by
one two-sided ``1 − α`` confidence interval with Student t quantiles on ``n − 1`` degrees of freedom:

- ``superiority``: the CI of the mean difference excludes 0 (and ``|mean| ≥ floor``);
- ``non-inferiority``: the CI's bad-side bound lies inside the margin;
- ``equivalence``: the CI lies inside ``(−margin, margin)`` (TOST, each one-sided test at ``α/2``);
- ``correlation``: per seed a Spearman ρ over the units, then the superiority rule on the per-seed ρ.

Each verdict direction (false ``supports``, false ``contradicts``) thus errs at most ``α/2`` per
part. Multi-part claims are combined with Holm's step-down procedure (:func:`combine`). An
``inconclusive`` part says how many seeds its observed effect would need (:attr:`Decision.seeds_needed`).

>>> d = paired([0.52, 0.55, 0.54, 0.56, 0.53], [0.50, 0.51, 0.50, 0.52, 0.50], Rule("superiority"))
>>> d.verdict, round(d.estimate, 3), d.df
('supports', 0.034, 4)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Mapping, Sequence

import numpy as np
from scipy import stats as _st

KINDS = ("superiority", "non-inferiority", "equivalence", "correlation")
DIRECTIONS = ("greater", "less")
VERDICTS = ("supports", "contradicts", "inconclusive")
POWER = 0.8          # target power of seeds_needed
MAX_SEEDS = 10_000   # beyond this many seeds an effect counts as out of reach
MIN_UNITS, MIN_SEEDS_RHO = 4, 3   # smallest correlation design whose null error rates stay ≤ α (tested)

_SUP, _CON, _INC = 0, 1, 2   # verdict codes of the vectorised core (indices into VERDICTS)


@dataclass(frozen=True)
class Rule:
    """How one claim part is decided, fixed before the runs are read.

    ``alpha`` is two-sided; ``margin`` (non-inferiority, equivalence) and ``floor`` (superiority,
    correlation: the smallest |effect| that counts) are in the units of the statistic (a − b, or ρ);
    ``direction`` is the sign the paper claims for a − b (or ρ).

    >>> Rule.from_dict({"kind": "non-inferiority", "margin": 0.5, "direction": "less"}).margin
    0.5
    """
    kind: str
    alpha: float = 0.05
    margin: float | None = None
    floor: float = 0.0
    direction: str = "greater"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"rule kind {self.kind!r} is unknown; valid kinds: {KINDS}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"rule alpha must lie in (0, 1), got {self.alpha!r}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"rule direction {self.direction!r} is unknown; valid: {DIRECTIONS}")
        needs_margin = self.kind in ("non-inferiority", "equivalence")
        if needs_margin and (self.margin is None or not self.margin > 0):
            raise ValueError(f"a {self.kind} rule needs a positive 'margin' (units of the statistic), "
                             f"got {self.margin!r}")
        if not needs_margin and self.margin is not None:
            raise ValueError(f"'margin' applies to non-inferiority and equivalence rules, not {self.kind}; "
                             f"use 'floor' for the smallest effect that counts")
        if not self.floor >= 0:
            raise ValueError(f"rule floor must be >= 0, got {self.floor!r}")
        if needs_margin and self.floor:
            raise ValueError(f"'floor' applies to superiority and correlation rules, not {self.kind} "
                             f"(its margin already fixes the effect that counts)")

    @classmethod
    def from_dict(cls, d: Mapping) -> "Rule":
        """A rule from a yaml mapping; unknown or missing keys are named in the error."""
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(valid))
        if unknown:
            raise ValueError(f"unknown rule key(s) {unknown}; valid keys: {valid}")
        if "kind" not in d:
            raise ValueError(f"a rule needs 'kind', one of {KINDS}; got keys {sorted(d)}")
        kw = dict(d)
        for k in ("alpha", "margin", "floor"):
            if kw.get(k) is not None:
                kw[k] = float(kw[k])
        return cls(**kw)

    def to_dict(self) -> dict:
        """The rule as written into ``claims.json`` (keys that are unset are left out)."""
        out = {"kind": self.kind, "alpha": self.alpha, "direction": self.direction}
        if self.margin is not None:
            out["margin"] = self.margin
        if self.floor:
            out["floor"] = self.floor
        return out


# ----------------------------------------------------------------------------- the vectorised core

def critical_t(n, alpha: float = 0.05):
    """The half-width factor of the two-sided ``1 − α`` CI from n paired seeds: ``t(1 − α/2, n − 1)``.

    >>> round(float(critical_t(3)), 3), round(float(critical_t(10)), 3)
    (4.303, 2.262)
    """
    return _st.t.ppf(1 - alpha / 2, np.asarray(n) - 1)


def _sign(rule: Rule) -> float:
    return 1.0 if rule.direction == "greater" else -1.0


def _core(e, se, df, rule: Rule):
    """Verdict codes, one-sided-doubled p-values and the oriented CI from oriented means ``e``.

    ``e`` is the mean difference times the claimed sign (the claim says ``e > 0``), ``se`` its
    standard error, ``df = n − 1``. ``p_s ≤ α`` ⇔ the CI bound that decides ``supports`` clears its
    threshold; ``p_c`` likewise for ``contradicts``. Broadcasts over arrays.
    """
    e, se = np.asarray(e, float), np.asarray(se, float)
    tc = critical_t(df + 1, rule.alpha)
    lo, hi = e - tc * se, e + tc * se

    def tstat(x):   # x / se with x / 0 = ±inf and 0 / 0 = 0 (a zero-variance sample)
        x = np.asarray(x, float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(se > 0, x / np.where(se > 0, se, 1.0), np.where(x == 0, 0.0, np.sign(x) * np.inf))

    def upper(t):   # 2·P(T ≥ t), at most 1
        return np.minimum(1.0, 2 * _st.t.sf(t, df))

    def lower(t):   # 2·P(T ≤ t), at most 1
        return np.minimum(1.0, 2 * _st.t.cdf(t, df))

    if rule.kind in ("superiority", "correlation"):
        t = tstat(e)
        p_s, p_c = upper(t), lower(t)
        big = np.abs(e) >= rule.floor
        sup, con = (p_s <= rule.alpha) & big, (p_c <= rule.alpha) & big
    elif rule.kind == "non-inferiority":
        t = tstat(e + rule.margin)
        p_s, p_c = upper(t), lower(t)
        sup, con = p_s <= rule.alpha, p_c <= rule.alpha
    else:   # equivalence: TOST inside (−m, m); contradicted when the CI lies wholly outside [−m, m]
        t1, t2 = tstat(e + rule.margin), tstat(rule.margin - e)
        p_s = np.maximum(upper(t1), upper(t2))
        p_c = np.minimum(lower(t1), lower(t2))
        sup, con = p_s <= rule.alpha, p_c <= rule.alpha
    code = np.where(sup, _SUP, np.where(con, _CON, _INC))
    return code, p_s, p_c, lo, hi


def verdicts(d, rule: Rule) -> np.ndarray:
    """The verdicts of :func:`paired` for many samples at once: ``d[..., n]`` are paired differences
    a − b over n seeds (for a correlation rule: per-seed ρ); returns an array of verdict strings ``[...]``.

    >>> verdicts(np.array([[1.0, 1.1, 0.9], [0.1, -0.1, 0.0]]), Rule("superiority")).tolist()
    ['supports', 'inconclusive']
    """
    d = np.asarray(d, float)
    n = d.shape[-1]
    if n < 2:
        return np.full(d.shape[:-1], "inconclusive", dtype=object)
    se = d.std(axis=-1, ddof=1) / math.sqrt(n)
    code = _core(_sign(rule) * d.mean(axis=-1), se, n - 1, rule)[0]
    return np.array(VERDICTS, dtype=object)[code]


# ----------------------------------------------------------------------------- power

def _power(n, deltas, sd, alpha):
    """Power of the paired t test with n seeds: the probability that the one-sided bound(s) at level
    α/2 clear distance(s) ``deltas`` from the observed mean; for two distances (TOST) the Bonferroni
    lower bound ``P(A) + P(B) − 1`` on passing both."""
    tc = critical_t(n, alpha)
    pw = [_st.nct.sf(tc, n - 1, delta * np.sqrt(n) / sd) for delta in deltas]
    return pw[0] if len(pw) == 1 else pw[0] + pw[1] - 1


def _seeds_for(deltas, sd, alpha) -> int | None:
    """Smallest n ≥ 2 with power ≥ POWER (noncentral t, t quantiles on n − 1 df), None beyond MAX_SEEDS."""
    if not (np.isfinite(sd) and sd > 0) or min(deltas) <= 0:
        return None
    lo, hi = 1, MAX_SEEDS            # power(lo) < POWER ≤ power(hi); power grows with n: bisect
    if _power(hi, deltas, sd, alpha) < POWER:
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _power(mid, deltas, sd, alpha) >= POWER else (mid, hi)
    return hi


def _deltas(e: float, rule: Rule) -> tuple[list[float] | None, str]:
    """Distances the CI must clear for the decision the oriented effect ``e`` points to, or None and why."""
    if rule.kind in ("superiority", "correlation"):
        if e == 0:
            return None, "the observed effect is 0"
        if abs(e) < rule.floor:
            return None, f"the observed effect {abs(e):.3g} lies below the floor {rule.floor:g}"
        return [abs(e)], ""
    m = rule.margin
    if rule.kind == "non-inferiority":
        return ([abs(e + m)], "") if e != -m else (None, "the observed effect lies exactly at the margin")
    if abs(e) < m:
        return [e + m, m - e], ""
    if abs(e) > m:
        return [abs(e) - m], ""
    return None, "the observed effect lies exactly at the margin"


# ----------------------------------------------------------------------------- decisions

@dataclass(frozen=True)
class Decision:
    """One claim part decided by its rule. ``estimate``, ``ci`` are in the units of a − b (or ρ);
    ``p`` is the p-value of the verdict the data lean to (doubled one-sided, compared with α);
    ``seeds_needed`` is set for an inconclusive part (None: effect 0, below the floor or out of reach)."""
    verdict: str
    estimate: float
    se: float
    ci: tuple[float, float]
    n: int
    df: int | None
    p: float | None
    rule: Rule
    text: str
    seeds_needed: int | None = None
    sd: float = float("nan")
    p_supports: float | None = None
    p_contradicts: float | None = None

    def seeds_needed_at(self, effect: float) -> int | None:
        """Paired seeds at which a true mean difference ``effect`` (units of a − b, e.g. the paper's)
        reaches its decision with power 0.8, at this part's observed SD; None if 0, below the floor
        or out of reach.

        >>> d = paired([1.0, 3.0, 2.0], [1.5, 1.0, 2.5], Rule("superiority"))
        >>> d.verdict, d.seeds_needed_at(1.0), d.seeds_needed_at(0.0)
        ('inconclusive', 19, None)
        """
        deltas, _ = _deltas(_sign(self.rule) * float(effect), self.rule)
        return None if deltas is None else _seeds_for(deltas, self.sd, self.rule.alpha)

    def to_dict(self) -> dict:
        """The fields of a ``claims.json`` entry that this decision fills."""
        return {"verdict": self.verdict, "evidence": self.text, "rule": self.rule.to_dict(),
                "seeds_needed": self.seeds_needed}


def _level(rule: Rule) -> str:
    return f"{100 * (1 - rule.alpha):g}%"


def _describe(rule: Rule) -> str:
    if rule.kind in ("superiority", "correlation"):
        return f"{rule.kind} in the claimed direction ({rule.direction})" + (
            f", floor {rule.floor:g}" if rule.floor else "")
    return f"{rule.kind} with margin {rule.margin:g} ({rule.direction} is the claimed side)" \
        if rule.kind == "non-inferiority" else f"equivalence within ±{rule.margin:g} (TOST)"


def _one_sample(d: np.ndarray, rule: Rule, what: str, unit: str) -> Decision:
    """The rule applied to one sample ``d[n]`` (paired differences, or per-seed ρ)."""
    n = int(d.size)
    if not np.all(np.isfinite(d)):
        raise ValueError(f"{what}: values must be finite, got {d.tolist()}")
    if n < 2:
        est = float(d.mean()) if n else float("nan")
        return Decision("inconclusive", est, float("nan"), (float("nan"), float("nan")), n, None, None, rule,
                        f"{what} = {est:+.4g} from {n} {unit}: the spread over seeds, hence the rule, needs "
                        f"at least 2 (t with n − 1 df)")
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    se, s = sd / math.sqrt(n), _sign(rule)
    code, p_s, p_c, lo, hi = (np.asarray(x).item() for x in _core(s * mean, se, n - 1, rule))
    ci = (lo, hi) if s > 0 else (-hi, -lo)
    verdict = VERDICTS[code]
    needed, why = None, ""
    if verdict == "inconclusive":
        deltas, why = _deltas(s * mean, rule)
        if deltas is not None:
            needed = _seeds_for(deltas, sd, rule.alpha)
            why = "" if needed is not None else f"out of reach (more than {MAX_SEEDS} seeds)"
    p = min(p_s, p_c)
    text = (f"{what} = {mean:+.4g} (SE {se:.3g}, {_level(rule)} CI [{ci[0]:+.4g}, {ci[1]:+.4g}], t with "
            f"{n - 1} df over {n} {unit}), p = {p:.3g}: {_describe(rule)} → {verdict}")
    if verdict == "inconclusive":
        text += f"; seeds needed at the observed effect and SD (power {POWER:g}): " + (
            str(needed) if needed is not None else f"none ({why})")
    return Decision(verdict, mean, se, ci, n, n - 1, p, rule, text, needed, sd, p_s, p_c)


def paired(a: Sequence[float], b: Sequence[float], rule: Rule) -> Decision:
    """Decide a claim part on paired seeds, ``d = a − b``, by the rule's ``1 − α`` t interval
    ``mean(d) ± t(1 − α/2, n − 1) · sd(d)/√n``.

    >>> d = paired([2.0, 2.5, 3.0], [1.0, 1.0, 1.0], Rule("superiority"))   # d = 1, 1.5, 2: sd 0.5
    >>> h = _st.t.ppf(0.975, 2) * 0.5 / 3 ** 0.5                            # 4.303 · 0.289 = 1.242
    >>> bool(np.allclose(d.ci, (1.5 - h, 1.5 + h))), d.verdict
    (True, 'supports')
    """
    if rule.kind == "correlation":
        raise ValueError("a correlation rule is decided by mtl.stats.correlation, not paired")
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need two 1-d sequences of equal length, got shapes {a.shape} and {b.shape}")
    return _one_sample(a - b, rule, "mean a − b", "paired seeds")


# ----------------------------------------------------------------------------- multiplicity

def holm_adjusted(p) -> np.ndarray:
    """Holm's adjusted p-values ``max_{j ≤ i} min(1, (k − j + 1) p_(j))`` (broadcasts over ``p[..., k]``).

    >>> holm_adjusted([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p, float)
    k = p.shape[-1]
    order = np.argsort(p, axis=-1)
    ps = np.take_along_axis(p, order, axis=-1)
    adj = np.maximum.accumulate(np.minimum(1.0, ps * (k - np.arange(k))), axis=-1)
    out = np.empty_like(adj)
    np.put_along_axis(out, order, adj, axis=-1)
    return out


def holm(items, alpha: float = 0.05):
    """Holm–Bonferroni at family-wise level α. Given p-values: which are rejected (bool array).
    Given Decisions: the same Decisions, each kept only when its ``p`` is rejected by Holm over
    the family, else made ``inconclusive`` (its text says so).

    >>> holm([0.01, 0.04, 0.03], 0.05).tolist()
    [True, False, False]
    """
    items = list(items)
    if not items or not all(isinstance(x, Decision) for x in items):
        if any(isinstance(x, Decision) for x in items):
            raise TypeError("holm takes either p-values or Decisions, not a mixture")
        return holm_adjusted(np.asarray(items, float)) <= alpha
    p = np.array([1.0 if x.p is None else x.p for x in items])
    adj = holm_adjusted(p)
    out = []
    for x, q in zip(items, adj):
        if x.verdict != "inconclusive" and q > alpha:
            x = replace(x, verdict="inconclusive", text=x.text + f"; Holm over {len(items)} parts: adjusted "
                                                               f"p = {q:.3g} > {alpha:g} → inconclusive")
        out.append(x)
    return out


def _combine_codes(codes, p, how: str, alpha: float):
    """Vectorised :func:`combine` on verdict codes ``[..., k]`` and their p-values ``[..., k]``."""
    kept = np.where(holm_adjusted(p) <= alpha, codes, _INC)
    sup, con = (kept == _SUP), (kept == _CON)
    if how == "all":
        return np.where(sup.all(-1), _SUP, np.where(con.any(-1), _CON, _INC))
    return np.where(sup.any(-1), _SUP, np.where(con.all(-1), _CON, _INC))


@dataclass(frozen=True)
class Combined:
    """A claim of several parts: its verdict, how the parts combine, the parts after Holm."""
    verdict: str
    how: str
    alpha: float
    parts: tuple[Decision, ...]
    text: str
    seeds_needed: int | None = None
    raw_parts: tuple[Decision, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "evidence": self.text, "seeds_needed": self.seeds_needed,
                "rule": {"combine": self.how, "alpha": self.alpha, "multiplicity": "holm",
                         "parts": [p.rule.to_dict() for p in self.parts]}}


def combine(parts: Sequence[Decision], how: str = "all", alpha: float = 0.05,
            names: Sequence[str] | None = None) -> Combined:
    """Combine a claim's parts after Holm over them at family-wise level α.

    ``how="all"`` (a conjunction): supports iff every part supports after Holm; contradicts iff some
    part contradicts after Holm; else inconclusive. ``how="any"`` ("any of"): supports iff some part
    supports after Holm; contradicts iff every part contradicts after Holm; else inconclusive.
    ``seeds_needed`` (inconclusive only, per part, unadjusted for Holm, so a lower bound): for "all" the
    largest over the parts not yet supporting, for "any" the smallest; None when any needed one is.

    >>> win = paired([2.0, 2.1, 2.2], [1.0, 1.0, 1.0], Rule("superiority"))   # p = 0.003
    >>> combine([win, win], "all").verdict, combine([win, win], "all", alpha=0.005).verdict
    ('supports', 'inconclusive')
    """
    if how not in ("all", "any"):
        raise ValueError(f"combine how={how!r} is unknown; valid: 'all', 'any'")
    parts = tuple(parts)
    if not parts:
        raise ValueError("combine needs at least one part")
    names = list(names) if names is not None else [f"part {i + 1}" for i in range(len(parts))]
    if len(names) != len(parts):
        raise ValueError(f"{len(names)} names for {len(parts)} parts")
    codes = np.array([VERDICTS.index(d.verdict) for d in parts])
    p = np.array([1.0 if d.p is None else d.p for d in parts])
    verdict = VERDICTS[int(_combine_codes(codes, p, how, alpha))]
    kept = tuple(holm(parts, alpha))
    needed = None
    if verdict == "inconclusive":
        pending = [d.seeds_needed for d in kept if d.verdict != "supports"]
        if pending and all(s is not None for s in pending):
            needed = max(pending) if how == "all" else min(pending)
    text = (f"{'every' if how == 'all' else 'any'} part of {len(parts)} must support (Holm at α = {alpha:g}) "
            f"→ {verdict}: " + "; ".join(f"{n}: {d.verdict}" for n, d in zip(names, kept)))
    return Combined(verdict, how, alpha, kept, text, needed, parts)


# ----------------------------------------------------------------------------- correlations and rankings

def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis (ties share their mean rank)."""
    return _st.rankdata(x, axis=-1)


def spearman_by_seed(x, y) -> np.ndarray:
    """Per-seed Spearman ρ over units: ``x[..., seed, unit]``, ``y`` alike → ``ρ[..., seed]``
    (Pearson correlation of the within-seed ranks; NaN when a seed's values are all tied).

    >>> spearman_by_seed([[1, 2, 3], [1, 2, 3]], [[1, 2, 3], [3, 2, 1]]).tolist()
    [1.0, -1.0]
    """
    rx, ry = _ranks(np.asarray(x, float)), _ranks(np.asarray(y, float))
    rx, ry = rx - rx.mean(-1, keepdims=True), ry - ry.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(-1) / np.sqrt((rx ** 2).sum(-1) * (ry ** 2).sum(-1))


def correlation(x_by_seed, y_by_seed, rule: Rule) -> Decision:
    """A correlation claim about units (methods, tasks), judged within seed: per seed the Spearman ρ
    over the units, then a one-sample t test of the per-seed ρ against 0 on ``n_seeds − 1`` df
    (the superiority rule: CI excludes 0 in the claimed direction and ``|mean ρ| ≥ floor``). The
    (unit × seed) points are never pooled. Fewer than 4 units or 3 seeds give ``inconclusive``: ρ then
    takes so few values that equal ρ in every seed (zero spread) is common under the null.
    ``x_by_seed[seed][unit]``, ``y_by_seed`` alike: the same units in the same order.

    >>> x = [[1, 2, 3, 4, 5]] * 3
    >>> correlation(x, [[1, 3, 2, 4, 5], [2, 1, 3, 5, 4], [1, 2, 4, 3, 5]], Rule("correlation")).verdict
    'supports'
    """
    if rule.kind != "correlation":
        raise ValueError(f"correlation needs a rule of kind 'correlation', got {rule.kind!r}")
    x, y = np.asarray(x_by_seed, float), np.asarray(y_by_seed, float)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"x and y need the same [seed, unit] shape, got {x.shape} and {y.shape}")
    rho = spearman_by_seed(x, y) if x.shape[1] >= 2 else np.full(x.shape[0], np.nan)
    what = f"mean per-seed Spearman ρ over {x.shape[1]} units"
    if x.shape[1] < MIN_UNITS or x.shape[0] < MIN_SEEDS_RHO:
        est = float(np.nanmean(rho)) if np.isfinite(rho).any() else float("nan")
        return Decision("inconclusive", est, float("nan"), (float("nan"), float("nan")), x.shape[0], None, None,
                        rule, f"{what} = {est:+.3g} from {x.shape[0]} seeds: a rank correlation needs at least "
                              f"{MIN_UNITS} units and {MIN_SEEDS_RHO} seeds (with fewer, ρ takes so few values that "
                              f"the t test errs more often than α)")
    if np.isnan(rho).any():
        raise ValueError(f"seed(s) {np.flatnonzero(np.isnan(rho)).tolist()} have all-tied values; ρ is undefined")
    return _one_sample(rho, rule, what, "seeds")


def kendall_w(ranks) -> np.ndarray:
    """Kendall's W of ``ranks[..., rater, item]``: ``12 S / (m² (k³ − k))``, S the squared deviations
    of the items' rank sums from their mean (no tie correction; 1 = every rater ranks alike).

    >>> float(kendall_w([[1, 2, 3], [1, 2, 3]])), float(kendall_w([[1, 2, 3], [3, 2, 1]]))
    (1.0, 0.0)
    """
    r = np.asarray(ranks, float)
    m, k = r.shape[-2], r.shape[-1]
    s = r.sum(-2)
    return 12 * ((s - s.mean(-1, keepdims=True)) ** 2).sum(-1) / (m ** 2 * (k ** 3 - k))


def _interaction(mean_rank: np.ndarray) -> np.ndarray:
    """Context × unit interaction of mean ranks ``[..., C, U]``: ``Σ_c Σ_u (R̄_cu − R̄_·u)²``."""
    return ((mean_rank - mean_rank.mean(-2, keepdims=True)) ** 2).sum((-2, -1))


@dataclass(frozen=True)
class RankStability:
    """Kendall's W over contexts of each context's ranking of the units (by their seed-mean rank, a
    description), the permutation p-value that the rankings change more across contexts than across
    seeds, and the decision."""
    w: float
    p: float
    decision: Decision


def rank_stability(scores, rule: Rule, n_perm: int = 1999, seed: int = 0) -> RankStability:
    """Do the rankings of units change across contexts beyond seed noise? ``scores[unit][context][seed]``
    (higher = better; equal seed counts per context).

    Per (context, seed) the units are ranked; each context ranks the units by their mean rank over its
    seeds; W is Kendall's W of these C rankings (1: every context ranks alike). Null: every
    (context, seed) ranking is drawn from one distribution (the ranking does not depend on the
    context). Its statistic is the context × unit interaction of the mean ranks,
    ``T = Σ_c Σ_u (R̄_cu − R̄_·u)²`` (large when contexts rank differently and their seeds agree);
    the permutation test reassigns the C·S ranking vectors to contexts at random
    (``numpy.random.default_rng(seed)``), ``p = (1 + #{T* ≥ T}) / (1 + n_perm)``. With one seed per
    context nothing separates context from seed noise and ``p = 1``. The rule (kind
    ``correlation``, direction ``less``: the claimed concordance is low) supports when ``p ≤ α/2``
    and ``1 − W ≥ floor``; "rankings do not change" would need an equivalence margin on W, so this
    helper never returns ``contradicts``.

    >>> sc = [[[1.0, 1.1], [3.0, 3.1]], [[2.0, 2.1], [2.0, 2.1]], [[3.0, 3.1], [1.0, 1.1]]]
    >>> r = rank_stability(sc, Rule("correlation", direction="less"), n_perm=99)
    >>> r.w, r.decision.verdict
    (0.0, 'inconclusive')
    """
    if rule.kind != "correlation" or rule.direction != "less":
        raise ValueError("rank_stability decides 'rankings change across contexts': it needs "
                         f"Rule('correlation', direction='less'), got kind {rule.kind!r}, direction {rule.direction!r}")
    sc = np.asarray(scores, float)
    if sc.ndim != 3 or sc.shape[0] < 3 or sc.shape[1] < 2 or sc.shape[2] < 1:
        raise ValueError(f"scores need shape [unit ≥ 3][context ≥ 2][seed ≥ 1], got {sc.shape}")
    u, c, s = sc.shape
    r = _ranks(np.moveaxis(sc, 0, -1).reshape(c * s, u))               # [C·S, U] ranks per (context, seed)
    mean_rank = r.reshape(c, s, u).mean(1)                              # [C, U]
    w = float(kendall_w(_ranks(mean_rank)))
    rng = np.random.default_rng(seed)
    perm = rng.permuted(np.broadcast_to(np.arange(c * s), (n_perm, c * s)), axis=-1)   # [P, C·S]
    t_null = _interaction(r[perm].reshape(n_perm, c, s, u).mean(2))     # [P]
    p = float((1 + np.sum(t_null >= _interaction(mean_rank) - 1e-9)) / (1 + n_perm))
    change = 1 - w
    ok = p <= rule.alpha / 2 and change >= rule.floor
    verdict = "supports" if ok else "inconclusive"
    text = (f"Kendall's W over {c} contexts' rankings of {u} units (seed-mean ranks) = {w:.3g} (1 − W = {change:.3g}"
            + (f", floor {rule.floor:g}" if rule.floor else "") + f"); permutation p = {p:.3g} "
            f"(context × unit interaction of mean ranks, {n_perm} reassignments of the {c}·{s} (context, seed) "
            f"rankings), decided at α/2 = "
            f"{rule.alpha / 2:g} → {verdict}")
    dec = Decision(verdict, w, float("nan"), (float("nan"), float("nan")), s, None, p, rule, text)
    return RankStability(w, p, dec)
