"""Section "Multi-task optimisation methods" (seed 004 §V-B, Tables II–III; seed 002 Table 2; claim C2).

Every weighting of :mod:`mtl.weighting` against single-task learning, uniform weights and a
loss-weight grid search on several datasets; Δm in seed 004's convention (improvement, higher is
better), mean rank per dataset, and the rank agreement of methods between datasets.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from .. import claims, profiles, stats
from .. import weighting as W
from . import _common as study
from ..metrics import delta_m, mean_rank
from ._paper import (FIXED, SEED002_TABLE2, SEED002_TABLE2_COLUMNS, SEED004_TABLE2_DELTA,  # noqa: F401
                         SEED004_TABLE3_DELTA)
from .imbalance import (describe_spec, gate_records, result_runs, scale_statement, section_rules,  # noqa: F401
                        trained, vanilla_imbalance)


@dataclass(frozen=True)
class Params:
    """Top-level keys of ``book/sections/mto.yaml``."""

    datasets: dict  # name -> {spec, seeds, grid, methods (registry names), method_kw (optional)}
    all_methods: list[str] = field(default_factory=list)  # every registry name (a YAML anchor for `methods`)
    rules: dict = field(default_factory=dict)  # claim part -> mtl.stats.Rule mapping (preregistered, `common`)


def setup(profile: str, out_dir: str = "") -> tuple[dict, Path]:
    """This section's parameters at ``profile`` (checked against :class:`Params`) and its output folder."""
    return profiles.setup("mto", Params, profile, out_dir)


def label(name: str) -> str:
    """The label tables and figures print for method ``name`` (the registry's, as the papers spell it)."""
    return W.label(name)


def run_dataset(out_dir, cfg: dict, executor=None) -> dict:
    """STL, uniform and grid search (:func:`mtl.studies.imbalance.vanilla_imbalance`), then every
    method in ``cfg["methods"]`` (registry names; hyper-parameters from ``cfg.get("method_kw", {})``)
    at every seed; the methods run in the single-task stage (they do not depend on the grid)."""
    kw = cfg.get("method_kw", {})
    stage1 = {label(name): study.train_jobs(out_dir, study.seed_specs(
                  study.derive(cfg["spec"], weighting=name, weighting_kw=kw.get(name, {})), cfg["seeds"], name))
              for name in cfg["methods"] if name not in ("ew", "ls")}  # uniform and the grid are already there
    res = vanilla_imbalance(out_dir, cfg, executor, stage1=stage1)
    res["methods"].update(res.pop("stage1"))
    return res


def delta_matrix(result: dict) -> pd.DataFrame:
    """Methods × seeds: test Δm% (improvement) of every run against the mean single-task result."""
    return pd.DataFrame({m: study.deltas([r if "metrics" in r else {"metrics": r} for r in recs],
                                         result["base"], result["dirs"])
                         for m, recs in result["methods"].items()}).T


def results_table(result: dict) -> pd.DataFrame:
    """One row per method: primary metrics (mean over seeds), Δm% ± SE, mean rank over primary metrics
    (1 = best), train time per run (s); sorted by Δm."""
    t = study.summary_table(result["methods"], result["base"], result["dirs"])
    metric_cols = [c for c in t.columns if "/" in c]
    flat = study.flat_dirs(result["dirs"])
    t["mean_rank"] = pd.Series(mean_rank(t[metric_cols].T.to_dict(), flat))
    t["time_s"] = pd.Series({m: float(np.mean([r.get("info", {}).get("train_time", np.nan) for r in recs]))
                             for m, recs in result["methods"].items()})
    return t.sort_values("delta_m", ascending=False)


def rank_correlations(deltas: Mapping[str, pd.Series]) -> pd.DataFrame:
    """Spearman ρ of the methods' Δm between every pair of datasets (common methods, STL excluded)."""
    names = list(deltas)
    out = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for a, b in itertools.combinations(names, 2):
        common = [m for m in deltas[a].index if m in deltas[b].index and m != "Single-task"]
        rho = spearmanr(deltas[a][common], deltas[b][common]).statistic if len(common) > 2 else np.nan
        out.loc[a, b] = out.loc[b, a] = rho
    return out


def seed_consistency(dm: pd.DataFrame) -> float:
    """Mean Spearman ρ of the methods' Δm between pairs of seeds of one dataset (STL excluded): the
    agreement expected from seed noise alone, the ceiling for agreement between datasets."""
    dm = dm.drop(index="Single-task", errors="ignore")
    rhos = [spearmanr(dm[a], dm[b]).statistic for a, b in itertools.combinations(dm.columns, 2)]
    return float(np.nanmean(rhos)) if rhos else float("nan")


def paper_rank_correlation() -> float:
    """Spearman ρ of seed 004 Table II's methods between NYUD-v2 and PASCAL-Context (STL excluded)."""
    rows = {m: v for m, v in SEED004_TABLE2_DELTA["rows"].items() if m != "Single-task"}
    return float(spearmanr([v[0] for v in rows.values()], [v[1] for v in rows.values()]).statistic)


def seed002_delta() -> pd.Series:
    """Δm% (improvement) of seed 002 Table 2's methods relative to its EW row (it has no STL row)."""
    cols = list(SEED002_TABLE2_COLUMNS)
    base = dict(zip(cols, SEED002_TABLE2["rows"]["Uniform"]))
    return pd.Series({m: delta_m(dict(zip(cols, v)), base, SEED002_TABLE2_COLUMNS, "improvement")
                      for m, v in SEED002_TABLE2["rows"].items()}).sort_values(ascending=False)


def paper_beside(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Δm% of the paper's rows (seed 004 Tables II–III) beside ours on every dataset."""
    ref = SEED004_TABLE2_DELTA["rows"]
    methods = list(dict.fromkeys(list(ref) + [m for t in tables.values() for m in t.index]))
    df = pd.DataFrame(index=methods)
    df["NYUD-v2 R18 (paper)"] = pd.Series({m: v[0] for m, v in ref.items()})
    df["PASCAL R18 (paper)"] = pd.Series({m: v[1] for m, v in ref.items()})
    df["NYUD-v2 R50 (paper)"] = pd.Series(SEED004_TABLE3_DELTA["rows"])
    for name, t in tables.items():
        df[f"{name} (ours)"] = t["delta_m"]
    return df


def method_runs(result: dict) -> list[dict]:
    """Every run record C2 rests on: the single-task runs and every multi-task method's runs."""
    return result_runs(result, [m for m in result["methods"] if m != "Single-task"])


def fairgrad_alpha(results: Mapping[str, dict]) -> list[float]:
    """The α FairGrad's runs were trained with, read from their records (``info["weighting"]``, the
    weighting's repr), so the page says what the runs used whatever the library default is now."""
    found = set()
    for r in results.values():
        for rec in r["methods"].get(label("fairgrad"), []):
            m = re.search(r"alpha=([0-9.eE+-]+)", str(rec.get("info", {}).get("weighting", "")))
            if m:
                found.add(float(m.group(1)))
    return sorted(found)


def rank_scores(results: Mapping[str, dict], exclude=("Single-task", "Grid Search")) -> tuple[list[str], np.ndarray]:
    """The methods every dataset ran (``exclude`` left out) and their Δm ``[method][dataset][seed]``."""
    dms = {n: delta_matrix(r) for n, r in results.items()}
    common = [m for m in next(iter(dms.values())).index if m not in exclude and all(m in d.index for d in dms.values())]
    n_seeds = min(d.shape[1] for d in dms.values())
    return common, np.array([[dms[n].loc[m].to_numpy()[:n_seeds] for n in dms] for m in common])


def grid_vs_median(result: dict, rule: stats.Rule) -> stats.Decision:
    """Grid search's Δm minus the median Δm of the other multi-task methods at the same seed, by ``rule``."""
    dm = delta_matrix(result).drop(index=["Single-task"], errors="ignore")
    others = dm.drop(index="Grid Search")
    return stats.paired(dm.loc["Grid Search"].to_numpy(), others.median(axis=0).to_numpy(), rule)


def c2_inconsistent(results: Mapping[str, dict], rules: Mapping[str, stats.Rule], adequacy,
                    scale_needed: str | None = None, n_perm: int = 1999) -> dict:
    """C2 (seed 004 §V-B): MTO methods are inconsistent across datasets; grid search stays competitive.

    Part 1 (``rules["C2_inconsistent"]``, :func:`mtl.stats.rank_stability`): the methods' rankings by Δm
    (every multi-task method but grid search) change across datasets beyond what their seeds allow —
    Kendall's W over the datasets' rankings with a permutation test of the dataset × method interaction
    of per-seed ranks, and a floor on 1 − W. It supports or is inconclusive ("rankings agree" would
    need an equivalence margin on W). Part 2 (``rules["C2_competitive"]``, per dataset, Holm over the
    datasets, "all"): grid search's Δm is not worse than the median method's (seed-paired) by more than
    the margin. The claim is the conjunction (:func:`mtl.claims.combine`). ``adequacy``: the scale gate.
    """
    names, scores = rank_scores(results)
    rs = stats.rank_stability(scores, rules["C2_inconsistent"], n_perm=n_perm)
    comp = {n: grid_vs_median(r, rules["C2_competitive"]) for n, r in results.items()}
    p2 = stats.combine(list(comp.values()), "all", rules["C2_competitive"].alpha, names=list(comp))
    overall = claims.combine(rs.decision.verdict, p2.verdict)
    needed = p2.seeds_needed if p2.verdict == "inconclusive" else None
    alphas = fairgrad_alpha(results)
    alpha_note = (f"FairGrad trained with α = {', '.join(f'{a:g}' for a in alphas)}"
                  + (" (Nash-MTL's direction; FairGrad's official runs use α = 2)" if alphas and 2.0 not in alphas
                     else "") if alphas else "FairGrad not run")
    gs = ", ".join(f"{n} {d.estimate:+.2f} [{d.ci[0]:+.2f}, {d.ci[1]:+.2f}]" for n, d in comp.items())
    return claims.verdict(
        "C2", overall,
        paper=(f"Methods are inconsistent across datasets and grid search remains competitive (§V-B); for "
               f"reference, Table II's own Δm give Spearman ρ {paper_rank_correlation():+.2f} between NYUD-v2 "
               f"and PASCAL-Context."),
        ours=(f"Kendall's W of {len(names)} methods' Δm rankings over {len(results)} datasets {rs.w:.2f} "
              f"(permutation p = {rs.p:.3g}); grid search Δm − median method Δm (95% CI): {gs}; {alpha_note}"),
        evidence=(f"part 1 ({rs.decision.verdict}): {rs.decision.text}; part 2 ({p2.verdict}): grid search not worse "
                  f"than the median method, per dataset: {p2.text} — "
                  + "; ".join(f"{n}: {d.text}" for n, d in zip(comp, p2.parts))),
        rule={"combine": "all", "parts": {"C2_inconsistent": rules["C2_inconsistent"].to_dict(),
                                          "C2_competitive (per dataset, Holm all)": rules["C2_competitive"].to_dict()}},
        adequacy=adequacy, scale_needed=scale_needed,
        seeds_needed=needed if overall == "inconclusive" and trained(adequacy) else None,
        setting=", ".join(results), fairgrad_alpha=alphas)
