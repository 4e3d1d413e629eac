"""How often does the scale gate's plateau test fail curves that *have* plateaued? (planning, not a rule)

The gate (:func:`mtl.adequacy.plateau_test`) fails a validation curve whose best value improved by more
than 5 % of its total gain in the last 3 epochs, and a claim is `untestable` when any of its curves fails.
Under validation noise alone a plateaued curve can still set a new best late, so the claim-level false-fail
rate grows with the number of curves. This script measures both sides with the gate's own code:

1. the relative noise of committed curves: per curve, the SD of the last 10 validation values around a
   straight line, over the curve's total gain;
2. the false-fail rate of ``plateau_test`` on simulated curves that are flat over their second half
   (a saturating rise plus Gaussian noise of that relative size), per curve and for a claim of N curves.

    python scripts/plateau_false_fail.py [--runs runs/fronts/cpu] [--curves 220] [--epochs 40] [--n 4000]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mtl.adequacy import plateau_test


def relative_noise(runs: Path, last: int = 10) -> list[float]:
    """Per recorded validation curve (run × task × metric): residual SD of its last ``last`` values around a
    line, divided by |last − first|."""
    out = []
    for f in sorted(runs.rglob("history.json")):
        hist = json.loads(f.read_text())
        if len(hist) < last + 2 or "val" not in hist[0]:
            continue
        for task, ms in hist[0]["val"].items():
            for m in ms:
                try:
                    v = np.array([float(h["val"][task][m]) for h in hist])
                except (KeyError, TypeError, ValueError):
                    continue
                gain = abs(v[-1] - v[0])
                if not np.isfinite(v).all() or gain == 0:
                    continue
                x = np.arange(last)
                resid = v[-last:] - np.polyval(np.polyfit(x, v[-last:], 1), x)
                out.append(float(resid.std(ddof=2) / gain))
    return out


def false_fail(rel_sd, epochs: int, n: int, seed: int = 0) -> float:
    """Share of ``n`` simulated plateaued curves (higher is better, gain 1) that ``plateau_test`` fails;
    ``rel_sd`` a noise SD, or a sequence of them to draw one from per curve."""
    rng = np.random.default_rng(seed)
    sds = rng.choice(np.asarray(rel_sd, dtype=float).ravel(), n)
    t = np.arange(epochs)
    mean = 1 - np.exp(-t / (epochs / 8))                         # within 2e-3 of its limit by mid-training
    fails = 0
    for sd in sds:
        v = mean + rng.normal(0, sd, epochs)
        hist = [{"val": {"t": {"acc": float(x)}}} for x in v]
        fails += plateau_test(hist, "t", "acc", True)["passed"] is False
    return fails / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=Path("runs/fronts/cpu"))
    ap.add_argument("--curves", type=int, default=220, help="curves in one claim (fronts' F1/F2: 220)")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--n", type=int, default=4000, help="simulated curves per noise level")
    a = ap.parse_args()
    rel = relative_noise(a.runs)
    if rel:
        q = np.quantile(rel, [0.5, 0.9, 0.99])
        print(f"{a.runs}: {len(rel)} validation curves; relative noise SD median {q[0]:.3f}, "
              f"90% {q[1]:.3f}, 99% {q[2]:.3f} (of the total gain)")
    print(f"plateau_test on simulated plateaued curves, {a.epochs} epochs, {a.n} per row:")
    print(" noise SD / gain | per-curve false fail | P(claim of %d curves untestable)" % a.curves)
    for r in (0.01, 0.02, 0.03, 0.05, 0.08):
        p = false_fail(r, a.epochs, a.n)
        print(f"      {r:.2f}      |        {p:.4f}        |  {1 - (1 - p) ** a.curves:.3f}")
    if rel:
        p = false_fail(rel, a.epochs, a.n)
        print(f"  as measured    |        {p:.4f}        |  {1 - (1 - p) ** a.curves:.3f}  (noise drawn from {a.runs})")


if __name__ == "__main__":
    main()
