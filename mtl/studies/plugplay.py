"""Section "Plug-and-play and α": EXTRA on top of LS, CAGrad and FairGrad, and its α sensitivity.

Seed 000 (EXTRA) App. B.4, Table 2 (claim C13) and App. B.6, Fig. 5 (claim C15), on the two-task
``scenes`` setting (segmentation and depth, the CityScapes pair). Stage 1 is recorded as ordinary
runs (:func:`mtl.experiment.train_run` with ``save_model``): end point 0 of EXTRA-X at seed s *is*
the baseline X at seed s, end point 1 is X at seed s + 1000 (as :func:`mtl.curves.train_endpoints`
seeds them), so every configuration with the same base weighting and seed shares them. Stage 2 is a
recorded run (:func:`mtl.runs.run_or_load`) that loads both end points, trains the curve with
:class:`mtl.curves.ExtraStep` and reports the metrics at t = ½ after BatchNorm recalibration
(METHODS §1.8). Δm% is EXTRA's Eq. 8: **drop convention, lower is better**, over every metric,
against the single-task runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import claims, profiles, sweep
from .. import stats as ST
from . import _common as study
from . import _extra_curves as X
from ..curves import ExtraStep, curve_model, default_control_points, recalibrate_bn
from ..experiment import RunSpec, load_model
from ..fronts import evaluate_at
from ..metrics import mean_se
from ..runs import run_or_load
from ..train import TrainConfig, fit, seed_everything
from .. import weighting as W


@dataclass(frozen=True)
class Params:
    """Top-level keys of ``book/sections/plugplay.yaml``."""

    spec: dict  # the stage-1 / single-task run spec (≥ 2 tasks)
    seeds: list[int]
    bases: list[str]  # base weightings, each alone and with EXTRA (BASES)
    alphas: list[float]  # α values of the EXTRA sweep
    stage2: dict  # EXTRA's curve stage: step (ExtraStep arguments), train
    alpha_base: str = "ls"  # base weighting of the α sweep
    rules: dict = field(default_factory=dict)  # preregistered claim rules (mtl.stats.Rule), under common:


def setup(profile: str, out_dir: str = "") -> tuple[dict, Path]:
    """This section's parameters at ``profile`` (checked against :class:`Params`) and its output folder."""
    return profiles.setup("plugplay", Params, profile, out_dir)


BASES = {"ls": ("LS", "EXTRA-L"), "cagrad": ("CAGrad", "EXTRA-C"), "fairgrad": ("FairGrad", "EXTRA-F")}
DM = "Δm% ↓ (drop)"
DM_SE = "Δm SE"

# Seed 000 (EXTRA), App. B.4, Table 2: CityScapes, 2 tasks. mIoU ↑ and Pix. Acc. ↑ in %, Abs. Err. ↓,
# Rel. Err. ↓, Δm% ↓ (drop convention, against "Independent").
SEED000_TABLE2_SOURCE = "seed 000 (EXTRA), App. B.4, Table 2, CityScapes (2 tasks)"
SEED000_TABLE2_COLUMNS = ("segmentation/miou", "segmentation/pix_acc", "depth/abs_err", "depth/rel_err", "delta_m")
SEED000_TABLE2 = {
    "Single-task": (74.01, 93.16, 0.0125, 27.77, 0.0),
    "LS": (75.18, 93.49, 0.0155, 46.77, 22.60),
    "EXTRA-L": (75.53, 93.63, 0.0127, 33.45, 4.93),
    "CAGrad": (75.16, 93.48, 0.0141, 37.60, 11.58),
    "EXTRA-C": (75.50, 93.55, 0.0135, 35.73, 8.61),
    "FairGrad": (75.72, 93.68, 0.0134, 32.25, 5.18),
    "EXTRA-F": (76.11, 93.58, 0.0126, 30.20, 1.63),
}
# Seed 000 App. B.6 (Fig. 5 itself is an image we do not have): stable in α, best mean at α = 0.3,
# α = 0.5 the better mean/variance trade-off and the default.
SEED000_FIG5_SOURCE = "seed 000 (EXTRA), App. B.6, Fig. 5 (prose; the figure's values are not in our copy)"
PAPER_ALPHA_BEST_MEAN, PAPER_ALPHA_DEFAULT = 0.3, 0.5


# ----------------------------------------------------------------------------- runs


def base_spec(cfg: dict) -> dict:
    """The stage-1 / single-task run spec of a profile (``cfg["spec"]``), checked."""
    spec = dict(cfg["spec"])
    if len(spec.get("tasks") or []) < 2:
        raise ValueError(f"EXTRA needs a spec with at least 2 tasks, got tasks={spec.get('tasks')}")
    return spec


def endpoint_specs(spec: dict, base: str, seed: int, base_kw: dict | None = None) -> list[dict]:
    """Stage 1 of EXTRA-``base`` at ``seed``: two run specs that save their state dicts (seeds s, s + 1000).

    The first is also the baseline ``base`` at seed s.
    """
    if base not in BASES:
        raise ValueError(f"unknown base weighting {base!r}; valid: {sorted(BASES)}")
    return [study.derive(spec, name=f"{base}-s{seed + 1000 * k}", weighting=base, weighting_kw=dict(base_kw or {}),
                         train={"seed": seed + 1000 * k}, save_model=True)
            for k in range(2)]


def endpoint_runs(out_dir, spec: dict, base: str, seed: int, base_kw: dict | None = None, executor=None) -> list[dict]:
    """The two recorded end-point runs of :func:`endpoint_specs` (one sweep)."""
    return study.run_groups({"ends": study.train_jobs(out_dir, endpoint_specs(spec, base, seed, base_kw))},
                            executor)["ends"]


def extra_run(out_dir, spec: dict, base: str, seed: int, stage2: dict, tag: str = "full",
              step_cls=ExtraStep) -> dict:
    """EXTRA-``base`` at ``seed``: stage 2 on the recorded end points; metrics at t = ½ after BN recalibration.

    ``stage2`` holds ``step`` (:class:`ExtraStep` arguments, e.g. ``alpha``, ``groups``), ``train``
    (TrainConfig fields, seed excluded), and optionally ``family`` (default ``nurbs``), ``n_points``
    (default :func:`default_control_points`), ``init`` and ``base_kw``. ``step_cls`` must be an
    ExtraStep (sub)class; its name is part of the recorded parameters. A job of its own (module
    level, picklable arguments): the end points are loaded in this process (a section trains them
    in its stage 1, :func:`extra_endpoints`; called alone, they are trained here first).
    """
    eps = endpoint_runs(out_dir, spec, base, seed, stage2.get("base_kw"), executor=sweep.Serial())
    tasks = list(spec["tasks"])
    n = int(stage2.get("n_points") or default_control_points(spec["dataset"], len(tasks)))
    params = {"name": f"extra-{base}-{tag}-s{seed}", "endpoints": [Path(r["run_dir"]).name for r in eps],
              "spec": spec, "family": stage2.get("family", "nurbs"), "n_points": n,
              "init": stage2.get("init", "random"), "step": dict(stage2.get("step", {})),
              "step_rule": step_cls.__name__, "train": {**stage2.get("train", {}), "seed": seed}}

    def fn():
        bundle = RunSpec.from_dict(spec).build_data()
        ends = [load_model(r["run_dir"]).train() for r in eps]   # training mode, like a fresh network
        config = TrainConfig(**params["train"])
        seed_everything(seed + 1)
        curve = curve_model(ends, params["family"], n, init=params["init"])
        hist = fit(curve, bundle, W.create("ls"), config, step_rule=step_cls(**params["step"]))
        recalibrate_bn(curve, bundle.loader("train", config.batch_size), point=0.5)
        _, metrics = evaluate_at(curve, bundle, "test")
        info = {k: v for k, v in hist.info.items() if k != "config"}
        return {"metrics": metrics, "history": hist.epochs, "info": {**info, "t": 0.5, "bn": "recalibrated on train"}}

    return run_or_load(out_dir, params, fn)


def extra_endpoints(out_dir, spec: dict, base: str, seeds, stage2: dict) -> list[sweep.Job]:
    """The stage-1 jobs :func:`extra_run` of ``base`` with ``stage2`` needs at every seed."""
    return [j for s in seeds for j in study.train_jobs(out_dir, endpoint_specs(spec, base, s, stage2.get("base_kw")))]


def extra_job(out_dir, spec: dict, base: str, seed: int, stage2: dict, tag: str = "full",
              step_cls=ExtraStep) -> sweep.Job:
    """The stage-2 job of :func:`extra_run`."""
    return sweep.Job(extra_run, str(out_dir), (spec, base, seed, stage2), {"tag": tag, "step_cls": step_cls},
                     label=f"extra-{base}-{tag}-s{seed}")


def stl_specs(spec: dict, seeds) -> dict[str, list[dict]]:
    """Single-task specs per task and seed (the "Independent" row)."""
    return study.stl_specs(study.derive(spec, weighting="ew", weighting_kw={}), seeds)


def single_task_row(singles: dict[str, list[dict]], seeds) -> list[dict]:
    """The "Single-task" row: per seed, every task's metrics from its single-task run."""
    return [{"metrics": {t: singles[t][i]["metrics"][t] for t in singles}} for i in range(len(seeds))]


def plug_and_play(out_dir, cfg: dict, progress=None, executor=None) -> dict:
    """Table 2 on our data: each base weighting alone and with EXTRA, per seed, plus the α sweep of EXTRA-L.

    Stage 1: single-task runs and every end point (the plain base at seed s is EXTRA's first end
    point); stage 2: every EXTRA curve (the bases' and the α sweep's)."""
    spec, seeds = base_spec(cfg), list(cfg["seeds"])
    alpha_base = cfg.get("alpha_base", "ls")
    st2 = {float(a): {**cfg["stage2"], "step": {**cfg["stage2"].get("step", {}), "alpha": float(a)}}
           for a in cfg["alphas"]}
    stl_sp = stl_specs(spec, seeds)
    plan = {("stl", t): study.train_jobs(out_dir, sp) for t, sp in stl_sp.items()}
    for base in cfg["bases"]:
        plan["plain", base] = study.train_jobs(out_dir, [endpoint_specs(spec, base, s)[0] for s in seeds])
        plan["ends", base] = extra_endpoints(out_dir, spec, base, seeds, cfg["stage2"])
    for a, st in st2.items():
        plan["ends", "alpha", a] = extra_endpoints(out_dir, spec, alpha_base, seeds, st)
    recs = study.run_groups(plan, executor)
    if progress:
        progress("stage 1: single-task runs and end points")
    plan = {("extra", base): [extra_job(out_dir, spec, base, s, cfg["stage2"]) for s in seeds] for base in cfg["bases"]}
    plan.update({("alpha", a): [extra_job(out_dir, spec, alpha_base, s, st) for s in seeds] for a, st in st2.items()})
    recs2 = study.run_groups(plan, executor)
    if progress:
        progress("stage 2: EXTRA curves")
    singles = {t: recs["stl", t] for t in stl_sp}
    methods = {"Single-task": single_task_row(singles, seeds)}
    for base in cfg["bases"]:
        plain, extra = BASES[base]
        methods[plain] = recs["plain", base]
        methods[extra] = recs2["extra", base]
    alphas = {a: recs2["alpha", a] for a in st2}
    dirs = X.paper_dirs(spec)
    return {"spec": spec, "seeds": seeds, "stl": singles, "base": study.stl_base(singles), "dirs": dirs,
            "methods": methods, "alphas": alphas, "alpha_base": alpha_base,
            "ends": {base: recs["ends", base] for base in cfg["bases"]},
            "alpha_ends": {a: recs["ends", "alpha", a] for a in st2}}


# ----------------------------------------------------------------------------- tables


def table(result: dict, out_dir=None) -> pd.DataFrame:
    """Mean of every metric over seeds and Δm% (drop convention, lower is better) ± SE, one row per method;
    with ``out_dir``, first the trivial predictors' row (constants fitted on the training split,
    :func:`mtl.adequacy.trivial_for_spec`) beside the single-task baselines."""
    df = study.summary_table(result["methods"], result["base"], result["dirs"], convention="drop")
    if out_dir is not None:
        row = X.trivial_row(result["spec"], result["base"], result["dirs"], out_dir)
        df = pd.concat([pd.DataFrame({X.TRIVIAL_ROW: row}).T, df])
    return df.rename(columns={"delta_m": DM, "delta_m_se": DM_SE})


def paper_table() -> pd.DataFrame:
    """Seed 000 Table 2 as a frame (columns like ``segmentation/miou``, Δm drop convention)."""
    df = pd.DataFrame({k: dict(zip(SEED000_TABLE2_COLUMNS, v)) for k, v in SEED000_TABLE2.items()}).T
    return df.rename(columns={"delta_m": DM})


def beside(ours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 2 and ours per shared column; our fraction metrics shown in % like the paper's."""
    cols = [c for c in paper.columns if c in ours.columns]
    mine = ours[cols].astype(float).copy()
    for c in cols:
        if c.split("/")[-1] in ("miou", "pix_acc"):
            mine[c] = mine[c] * 100
    return pd.concat({"paper (CityScapes)": paper[cols], "ours (scenes)": mine}, axis=1).swaplevel(0, 1, axis=1)[cols]


def seed_deltas(result: dict, recs: list[dict]) -> list[float]:
    return [study.overall_delta(r["metrics"], result["base"], result["dirs"], "drop") for r in recs]


def alpha_table(result: dict) -> pd.DataFrame:
    """Per α: mean, SE and standard deviation of Δm% (drop, lower is better) over seeds."""
    rows = {}
    for a, recs in result["alphas"].items():
        d = seed_deltas(result, recs)
        m, se = mean_se(d)
        rows[a] = {DM: m, DM_SE: se, "Δm SD": float(np.std(d, ddof=1)) if len(d) > 1 else float("nan"), "seeds": len(d)}
    df = pd.DataFrame(rows).T
    df.index.name = "α"
    return df


def alpha_long(result: dict) -> pd.DataFrame:
    """One row per (α, seed) with Δm% (for the figure)."""
    return pd.DataFrame([{"α": a, "seed": s, DM: d} for a, recs in result["alphas"].items()
                         for s, d in zip(result["seeds"], seed_deltas(result, recs))])


# ----------------------------------------------------------------------------- the scale gate


def gates(result: dict, out_dir=None) -> dict[str, "X.A.Adequacy"]:
    """The scale gate of C13 and C15 (``{claim: Adequacy}``): single-task runs, every stage-1 end point
    (the plain bases are end point 0) and every EXTRA curve at t = ½ (its stage-2 validation history)."""
    triv, dirs = X.gate_reference(result["spec"], out_dir)
    stl = X.gate_records("single-task", [r for recs in result["stl"].values() for r in recs], triv, dirs)
    c13 = [stl] + [X.gate_records(f"{BASES[b][0]} end points", result["ends"][b], triv, dirs) for b in result["ends"]]
    c13 += [X.gate_records(BASES[b][1], result["methods"][BASES[b][1]], triv, dirs) for b in result["ends"]]
    ends = {r["run_dir"]: r for recs in result["alpha_ends"].values() for r in recs}
    c15 = [stl, X.gate_records(f"{BASES[result['alpha_base']][0]} end points", list(ends.values()), triv, dirs)]
    c15 += [X.gate_records(f"α = {a:g}", recs, triv, dirs) for a, recs in result["alphas"].items()]
    return {"C13": X.gate_all(c13), "C15": X.gate_all(c15)}


# ----------------------------------------------------------------------------- verdicts


def _directions(result: dict) -> dict[str, bool]:
    return study.flat_dirs(result["dirs"])


def c13_decide(extra: dict[str, list[float]], plain: dict[str, list[float]], rule: ST.Rule) -> ST.Combined:
    """C13's rule: per base X, Δm(EXTRA-X) − Δm(X) over paired seeds (drop: the claim is < 0), every
    base a part, Holm over the bases; the claim holds when every base improves."""
    names = list(extra)
    return ST.combine([ST.paired(extra[n], plain[n], rule) for n in names], "all", rule.alpha, names=names)


def c13_plug_and_play(result: dict, setting: str, rules: dict, adequacy=None, scale_needed: str | None = None) -> dict:
    """C13 (seed 000 B.4): EXTRA improves each base method it is plugged into (LS, CAGrad, FairGrad).

    Each base is judged by the preregistered rule ``rules["C13_base"]`` (superiority of EXTRA-X over X
    in Δm, drop convention, with a floor), paired by seed (EXTRA-X's end point 0 is X's run), with
    Holm over the bases (:func:`c13_decide`); ``adequacy``: the scale gate (:func:`gates`).
    """
    m, dirs = result["methods"], _directions(result)
    rule = X.rules_of({"rules": rules}, ["C13_base"])["C13_base"]
    present = [b for b in BASES if BASES[b][0] in m]
    if not present:
        raise ValueError("the result holds no base method; run plug_and_play with at least one base")
    extra = {f"{BASES[b][1]} − {BASES[b][0]}": seed_deltas(result, m[BASES[b][1]]) for b in present}
    plain = {f"{BASES[b][1]} − {BASES[b][0]}": seed_deltas(result, m[BASES[b][0]]) for b in present}
    c = c13_decide(extra, plain, rule)
    lines = []
    for b, d in zip(present, c.parts):
        plain_n, extra_n = BASES[b]
        mean = lambda recs, k: np.mean([study.flatten(r["metrics"], result["dirs"])[k] for r in recs])  # noqa: E731
        better = sum((mean(m[extra_n], k) > mean(m[plain_n], k)) == h for k, h in dirs.items())
        lines.append(f"{extra_n} − {plain_n}: Δm {d.estimate:+.2f} (95% CI [{d.ci[0]:+.2f}, {d.ci[1]:+.2f}]) → "
                     f"{d.verdict}, {better}/{len(dirs)} metrics better on average")
    return claims.verdict(
        "C13", c.verdict,
        paper="EXTRA improves LS (Δm 22.60 → 4.93), CAGrad (11.58 → 8.61) and FairGrad (5.18 → 1.63) on CityScapes",
        ours="; ".join(lines),
        evidence=(f"each base judged on its own, paired over {len(result['seeds'])} seeds: " + c.text + "; per part: "
                  + " | ".join(d.text for d in c.parts)),
        rule=X.combined_rule(c), adequacy=adequacy, seeds_needed=X.seeds_needed(c), scale_needed=scale_needed,
        parts=X.parts_record(list(extra), c), setting=setting)


def c15_decide(deltas: dict[float, list[float]], rule: ST.Rule, ref: float = PAPER_ALPHA_DEFAULT) -> ST.Combined:
    """C15's rule: for every α ≠ ``ref`` (the default 0.5), Δm(α) − Δm(ref) over paired seeds lies
    within ± the rule's margin (equivalence, TOST); Holm over the α values; stable when all are."""
    if ref not in deltas:
        raise ValueError(f"C15 compares every α with α = {ref:g}, which is not among {sorted(deltas)}")
    others = [a for a in sorted(deltas) if a != ref]
    if not others:
        raise ValueError(f"C15 needs at least 2 values of α, got {sorted(deltas)}")
    parts = [ST.paired(deltas[a], deltas[ref], rule) for a in others]
    return ST.combine(parts, "all", rule.alpha, names=[f"α {a:g} − α {ref:g}" for a in others])


def c15_alpha(result: dict, setting: str, rules: dict, adequacy=None, scale_needed: str | None = None) -> dict:
    """C15 (seed 000 B.6): performance is stable in α; 0.3 has the best mean, 0.5 a lower variance.

    Stability is an equivalence claim (``rules["C15_stable"]``, TOST with a margin in Δm): every α of
    the profile against the default α = 0.5, paired by seed, Holm over the α values (:func:`c15_decide`).
    The finer statement (best mean at 0.3, lowest SD at 0.5) is reported, not judged: with a few seeds
    a ranking of five means or SDs is noise. Seed 000's text gives no α grid; ours is the profile's.
    """
    rule = X.rules_of({"rules": rules}, ["C15_stable"])["C15_stable"]
    at = alpha_table(result)
    deltas = {float(a): seed_deltas(result, recs) for a, recs in result["alphas"].items()}
    c = c15_decide(deltas, rule)
    means, ses = at[DM], at[DM_SE]
    best = float(means.idxmin())
    low_var = float(at["Δm SD"].idxmin()) if at["Δm SD"].notna().any() else float("nan")
    detail = "holds" if (best == PAPER_ALPHA_BEST_MEAN and low_var == PAPER_ALPHA_DEFAULT) else "does not hold"
    ours = (f"EXTRA-{result['alpha_base'][0].upper()}: mean Δm per α " +
            ", ".join(f"{a:g}: {m:+.2f}±{s:.2f}" for a, m, s in zip(at.index, means, ses)) +
            f"; best mean at α = {best:g}, lowest SD at α = {low_var:g}")
    return claims.verdict(
        "C15", c.verdict,
        paper=("Δm stable in α; the best mean at α = 0.3, a lower variance at α = 0.5 (the default). The seed's text "
               "gives no α grid; {0.1, 0.3, 0.5, 0.7, 0.9} is this profile's choice"),
        ours=ours,
        evidence=(f"every α against α = 0.5, paired over {len(result['seeds'])} seeds: {c.text}; per part: "
                  + " | ".join(d.text for d in c.parts) +
                  f"; the secondary detail (best mean at 0.3 and lowest SD at 0.5) {detail} here and is not judged"),
        rule=X.combined_rule(c), adequacy=adequacy, seeds_needed=X.seeds_needed(c), scale_needed=scale_needed,
        parts=X.parts_record([f"α {a:g} − α 0.5" for a in sorted(deltas) if a != 0.5], c), setting=setting)
