"""Generates book/sections/noise.ipynb (section "Data noise and quantity")."""
from nb import write

cells = [
("md", """
# Data noise and quantity

*Seed 004 (Guo et al., "Revisit the Imbalance Optimization in Multi-task Learning"), §V-E and
Table V; claims C5 and C6.* Can better or more data mitigate the imbalance of multi-task
learning? The paper trains single-task networks (**Single-task**, STL) and one shared network on
the plain sum of losses (**Multi-task**, uniform weights) on Replica's segmentation, depth and
normals, with noisy labels and with fewer training samples. It finds that noise hurts both alike
(C5) and that less data leaves multi-task learning further behind single-task learning (C6).
We ask the same of the procedural indoor `scenes` (the same three tasks, several camera *scans*
per *scene*, as in Replica) with a small SegNet.
"""),
("params", """
profile = "cpu"      # smoke | cpu | gpu (book/profiles/noise.yaml)
out_dir = ""         # output folder, from the repository root or absolute (empty: runs/noise/<profile>)
progress = False     # tqdm bars (off in CI and in the rendered book)
"""),
("hidden", """
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from mtl import claims, profiles
from mtl.report import metric_label, paper_beside, verdict_markdown
from mtl.studies import noise

warnings.filterwarnings("ignore", category=UserWarning)
P = profiles.load("noise", profile)
OUT = profiles.out_dir("noise", profile, out_dir)
pd.set_option("display.precision", 4)
"""),
("md", """
## Protocol

Each *condition* changes one thing in the training split only (validation and test stay clean;
images are never touched), through `mtl.data.corruptions.corrupt`, which a run spec takes as its
`corruption` key (so the condition is part of the run's id):

* **noise** — per sample, five of the categories present (all if fewer) have their pixels flipped
  to a wrong category at rate 0.5; Gaussian noise is added to depth (metres) and to each normal
  component (then renormalised), as in seed 004 §V-E;
* **scans *f*** — a fraction (or, for *few scans*, a fixed count) of the scans of every scene;
* **scenes *f*** — a fraction of the scenes (or one scene), with all their scans.

The noise draws and the kept scenes/scans are seeded by the training seed, so STL and MTL at the
same seed see the same data. Every model trains for the same number of epochs (fewer samples thus
mean fewer steps). Test metrics follow the profile's `eval_protocol` (printed below: the
last epoch, or the mean of the last `eval_k` epochs). Δm% is seed 004's Eq. 5 over
segmentation mIoU, depth RMSE and normal mean angle error, in the paper's convention (**higher is
better**), always against the **clean** single-task baseline (mean over seeds); the *gap* is
MTL − STL Δm% at the same seed (negative: multi-task below single-task).
"""),
("hidden", """
pd.DataFrame({name: {"kind": noise.kind(c or {}), "corruption": c or "—"} for name, c in P["conditions"].items()}).T
"""),
("code", """
result = noise.run_study(OUT, P)
spec = P["spec"]
print(f"{spec['dataset']} {spec['dataset_kw']}, {spec['backbone']} {spec['backbone_kw']}, "
      f"train {spec['train']}, seeds {result['seeds']}")
"""),
("md", """
## Results

Mean over seeds of each task's primary metric, Δm% (± standard error over seeds), the seed-paired
MTL − STL gap (± SE) and the share of the training samples kept.
"""),
("code", """
tab = noise.table(result)
display(Markdown("Δm% ↑ and gap ↑ (improvement over the clean single-task baseline, seed 004 convention)"))
tab.rename(columns={**{c: metric_label(c) for c in tab.columns}, "gap": "gap (MTL − STL) ↑", "gap_se": "gap SE"}).round(4)
"""),
("md", """
The paper's Replica numbers (Table V) beside ours. Absolute values are not comparable (other data,
resolution and network); the signs and the ordering of Δm are. Our *few scans* row keeps a fixed
small count of scans per scene, the paper's keeps 12.
"""),
("code", """
beside = paper_beside(tab, noise.PAPER_TABLE5_REPLICA)
display(Markdown(f"*Source: {beside.attrs['source']}; ours: mean over {len(result['seeds'])} seeds; Δm% ↑.*"))
beside
"""),
("md", """
## Δm against the amount of data

Δm% of STL and MTL (mean ± SE over seeds) against the share of training samples kept, for
subsampling by scans and by scenes (the clean run is the point at 1); the noisy runs are the
hollow markers at 1. Right: the MTL − STL gap.
"""),
("code", """
frame = noise.fraction_frame(result)
fig, (ax, axg) = plt.subplots(1, 2, figsize=(10, 3.6))
colors = {noise.STL: "tab:blue", noise.MTL: "tab:red"}
for (method, family), ls in [((m, f), "-" if f == "scans" else "--") for m in colors for f in ("scans", "scenes")]:
    d = frame[(frame.method == method) & frame.kind.isin(["clean", family])]
    s = d.groupby("fraction").delta_m.agg(["mean", "sem"]).fillna(0)
    ax.errorbar(s.index, s["mean"], s["sem"], color=colors[method], ls=ls, marker="o", capsize=3,
                label=f"{method}, by {family}")
for method, c in colors.items():
    d = frame[(frame.method == method) & (frame.kind == "noise")]
    ax.errorbar(d.fraction.mean(), d.delta_m.mean(), d.delta_m.sem() if len(d) > 1 else 0, color=c, marker="o",
                mfc="none", ms=9, ls="none", capsize=3, label=f"{method}, noisy")
g = frame.pivot_table(index=["condition", "kind", "fraction", "seed"], columns="method", values="delta_m").reset_index()
g["gap"] = g[noise.MTL] - g[noise.STL]
for family, ls in (("scans", "-"), ("scenes", "--")):
    s = g[g.kind.isin(["clean", family])].groupby("fraction").gap.agg(["mean", "sem"]).fillna(0)
    axg.errorbar(s.index, s["mean"], s["sem"], color="k", ls=ls, marker="o", capsize=3, label=f"by {family}")
n = g[g.kind == "noise"]
axg.errorbar(n.fraction.mean(), n.gap.mean(), n.gap.sem() if len(n) > 1 else 0, color="k", marker="o", mfc="none",
             ms=9, ls="none", capsize=3, label="noisy")
for a, title in ((ax, "Δm% ↑ vs clean STL"), (axg, "gap MTL − STL (Δm points) ↑")):
    a.set_xscale("log", base=2)
    a.set_xlabel("share of training samples")
    a.axhline(0, color="grey", lw=0.8)
    a.set_title(title)
ax.legend(fontsize=7)
axg.legend(fontsize=7)
fig.tight_layout()
fig.savefig(OUT / "delta_vs_fraction.png", dpi=120, bbox_inches="tight")
plt.show()
"""),
("md", """
## Per-task gap

MTL − STL relative improvement of each task's primary metric (percentage points, mean over seeds,
higher is better): which task multi-task learning short-changes under each condition.
"""),
("code", """
noise.per_task_gap(result).round(2)
"""),
("md", """
## Verdicts on claims C5 and C6

> *C5: Label noise hurts single-task and multi-task alike; it does not amplify the imbalance.*
> *C6: Less data makes multi-task learning more imbalanced than single-task learning.*
> (seed 004 §V-E, Table V)
"""),
("code", """
verdicts = [noise.c5_noise(result), noise.c6_quantity(result)]
claims.write_claims(OUT, verdicts)
display(Markdown(verdict_markdown(verdicts)))
"""),
("md", """
**Reading.** Both verdicts are computed from seed-paired differences. C5 needs noise to lower the
Δm of STL and of MTL by more than two standard errors, and the MTL − STL gap not to widen under
noise beyond a tolerance of a quarter of the single-task drop (an equivalence bound, stated in the
evidence). C6 is decided on the slope of the gap against the log share of data kept: positive (the
gap widens as data shrink) by two standard errors supports it. At the `cpu` profile (a few seeds,
small images, a few epochs, so less data also means fewer optimisation steps) the seed spread is
as large as many of the effects, and an `inconclusive` is an honest answer; the `gpu` profile
trains longer on larger scenes.
"""),
]

write("book/sections/noise.ipynb", cells, "Data noise and quantity")
