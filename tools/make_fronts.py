"""Generates book/sections/fronts.ipynb (section "Trade-off fronts on MultiMNIST")."""
from nb import write

cells = [
("md", """
# Trade-off fronts on MultiMNIST

*Seed 000 (EXTRA) App. A.2 protocol (from PaMaL); properties F1 and F2 of this section (no
CLAIMS.md id).* MultiMNIST has two tasks: task 1 classifies the top-left digit, task 2 the
bottom-right one. We compare three ways to get a set of trade-offs: **EXTRA-L**, a NURBS curve of
LeNets with 3 control points (t = 0 favours task 1, t = 1 task 2); **PaMaL**, a simplex of two
LeNets mixed by α; and the **LS sweep**, one LeNet per fixed preference weight. We state and test
two properties:

* **F1** — EXTRA's curve is order-aware: task 1's loss rises with t and task 2's falls (the aim
  of seed 000's order-aware objective R_o, Eq. 2).
* **F2** — EXTRA's front has a hypervolume at least PaMaL's.
"""),
("params", """
profile = "cpu"      # smoke | cpu | gpu | paper (book/profiles/fronts.yaml)
out_dir = ""         # output folder, from the repository root or absolute (empty: runs/fronts/<profile>)
progress = False     # tqdm bars (off in CI and in the rendered book)
"""),
("hidden", """
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from mtl import claims, profiles
from mtl.report import verdict_markdown
from mtl.studies import fronts

warnings.filterwarnings("ignore", category=UserWarning)
P = profiles.load("fronts", profile)
OUT = profiles.out_dir("fronts", profile, out_dir)
pd.set_option("display.precision", 4)
"""),
("md", """
## Protocol

LeNet shared bottom with two MLP heads, Adam (lr 1e-3), batch 256, no scheduler (PaMaL's
protocol, seed 000 App. A.2), with fewer samples and epochs at `cpu`. EXTRA: stage 1 trains the
two end points with LS weights favouring task 1 and task 2 (the paper's stage-1 details are not
recoverable; see the profile), stage 2 trains the one interior control point and the NURBS
weights with α = 0.5 on R_o, for the same number of epochs. PaMaL: window 4, Dirichlet p = 1,
no regulariser (its MultiMNIST config). LS sweep: weights (w, 1 − w) evenly inside (0, 1). Each
seed's run is recorded under `runs/` and loaded on re-runs; the objectives are test errors
(1 − accuracy) and mean test losses.
"""),
("code", """
display(Markdown(f"Seeds {P['seeds']}; {P['n_train']} train / {P['n_test']} test samples; {P['epochs']} epochs per stage; "
                 f"{P['n_grid']} grid points for EXTRA and PaMaL, {P['n_sweep']} LS models."))
results = fronts.run(OUT, P, progress)
"""),
("md", """
## Fronts

All evaluated points (small markers) and each method's non-dominated front (line) for the first
seed, in test error of task 1 against task 2 (lower-left is better):
"""),
("code", """
seed0 = P["seeds"][0]
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ax, kind, name in zip(axes, ("errors", "losses"), ("test error", "test loss")):
    for m, (pts, front) in fronts.front_points(results, kind, seed0).items():
        sc = ax.scatter(pts[:, 0], pts[:, 1], s=14, alpha=0.5)
        ax.plot(front[:, 0], front[:, 1], marker="o", color=sc.get_facecolor()[0][:3], label=fronts.LABELS[m])
    ax.set_xlabel(f"task 1 (left digit) {name}"); ax.set_ylabel(f"task 2 (right digit) {name}")
    ax.set_title(f"{name}, seed {seed0}")
axes[0].legend()
fig.savefig(OUT / "fronts.png", dpi=120, bbox_inches="tight")
plt.show()
"""),
("md", """
## Hypervolume per method

Hypervolume of each method's evaluated points in (error of task 1, error of task 2), against one
reference point for all methods and seeds (higher is better):
"""),
("code", """
ref = fronts.reference_point(results, "errors", P.get("hv_ref"))
display(Markdown(f"Reference point (error task 1, error task 2): **{np.round(ref, 4).tolist()}**"))
hv = fronts.hypervolumes(results, "errors", ref)
fronts.hv_table(hv)
"""),
("md", """
## Losses along t (order-aware property)

EXTRA's mean test loss of each task along the curve, mean and spread over seeds, and Spearman's ρ
between t and each loss per seed (F1 wants ρ > 0 for task 1 and ρ < 0 for task 2):
"""),
("code", """
along = fronts.losses_along_t(results)
fig, ax = plt.subplots(figsize=(5.5, 3.4))
sns.lineplot(data=along, x="t", y="loss", hue="task", marker="o", errorbar="se", ax=ax)
ax.set_ylabel("test loss (NLL)"); ax.set_title("EXTRA: task losses along t")
fig.savefig(OUT / "losses_along_t.png", dpi=120, bbox_inches="tight")
plt.show()
corr = fronts.order_correlations(results)
corr
"""),
("md", """
## The paper beside ours
"""),
("code", """
display(Markdown(f"*Source: {fronts.SEED000_MULTIMNIST_SOURCE}.* Seed 000 uses MultiMNIST for its protocol only, "
                 "so there are no published numbers to set beside ours; the table above is ours alone."))
"""),
("md", """
## Verdicts on F1 and F2

> **F1** *EXTRA's curve is order-aware (task losses monotone in t, in opposite directions).*
> **F2** *EXTRA's front hypervolume is at least PaMaL's.*
"""),
("code", """
verdicts = [fronts.f1_order_aware(corr), fronts.f2_hypervolume(hv, ref, "test error")]
claims.write_claims(OUT, verdicts)
display(Markdown(verdict_markdown(verdicts)))
"""),
("md", """
**Reading.** Both verdicts are computed over seeds with a 2-SE screen, so with three short runs
`inconclusive` is an honest outcome. F1 checks what R_o asks for: with its end points trained
towards opposite tasks, the curve should carry that order through its interior. F2 compares the
sets of trade-offs each method offers from one training budget per method; the LS sweep costs
one full training per preference and is shown as the reference front. The hypervolume depends on
the reference point, stated above and shared by all methods and seeds. These are small CPU runs
of a ten-epoch protocol; the `gpu` profile runs the full 50k/10k/10k split and ten epochs.
"""),
]

write("book/sections/fronts.ipynb", cells, "Trade-off fronts on MultiMNIST")
