"""Generates book/sections/architectures.ipynb (section "Architectures and optimisers")."""
from nb import write

cells = [
("md", """
# Architectures and optimisers

*Seed 002 (LibMTL's NYUv2 grid of 13 weighting methods × 8 architectures, Tables 2–9) and seed 004
(Guo et al.) §V-C, Fig. 4; claims C3 and C19.* Every architecture of the library — `hps`,
`cross_stitch`, `mmoe`, `mtan`, `cgc`, `ple`, `ltb`, `dselect_k` — is trained on procedural
`scenes` with the NYUv2 task set (segmentation, depth, normals) under several weighting methods,
and against **its own single-task variant** (the same modules with one task, as seed 004's
"MTAN Single-task"). Seed 004 finds that architectures narrow, but do not close, the gap to
single-task learning (C3); seed 002's tables show no method winning on every architecture (C19).
"""),
("params", """
profile = "cpu"      # smoke | cpu | gpu | paper (book/profiles/architectures.yaml)
out_dir = ""         # output folder, from the repository root or absolute (empty: runs/architectures/<profile>)
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
from mtl.studies import architectures as A

warnings.filterwarnings("ignore", category=UserWarning)
P = profiles.load("architectures", profile)
OUT = profiles.out_dir("architectures", profile, out_dir)
pd.set_option("display.precision", 3)
"""),
("md", """
## Protocol

Each (architecture, method) cell and each architecture's single-task variant (one run per task)
is trained at every seed; runs are recorded in `runs/architectures/<profile>/` and loaded when
they exist. Test metrics are those of the last epoch. Δm% is seed 004's Eq. 5 over one primary
metric per task (segmentation mIoU, depth RMSE, normal mean angle), **improvement convention:
higher is better**. A cell that cannot train is reported with its error, as seed 002 reports OOM.
"""),
("hidden", """
pd.DataFrame({"value": {"dataset": P["spec"]["dataset"], "image": f"{P['spec']['dataset_kw'].get('height', '')}×{P['spec']['dataset_kw'].get('width', '')}",
              "backbone": f"{P['spec']['backbone']} {P['spec'].get('backbone_kw', {})}", "epochs": P["spec"]["train"]["epochs"],
              "seeds": len(P["seeds"]), "architectures": ", ".join(P["architectures"]), "methods": ", ".join(P["methods"])}})
"""),
("code", """
result = A.run_grid(OUT, P)
fails = A.failures(result)
pd.DataFrame([{"architecture": a, "method": m, "error": e[:160]} for (a, m), e in fails.items()]) if fails else Markdown("Every cell trained.")
"""),
("md", """
## Δm heat map, ours beside seed 002

Left: our Δm% of every cell against the **vanilla single-task network** (the HPS single-task
runs, i.e. a plain SegNet per task), mean over seeds. Right: seed 002's NYUv2 numbers as Δm% over
all nine of its metrics against **HPS + EW** — seed 002 has no single-task runs, so its reference
differs; grey cells are its OOM cells. Compare the patterns (which methods and architectures
stand out), not the values.
"""),
("code", """
ours = A.delta_table(result, reference="vanilla")
ours_se = A.delta_table(result, reference="vanilla", stat="se")
paper = A.paper_delta_table()
fig, axes = plt.subplots(1, 2, figsize=(14, 0.45 * len(paper) + 1.5), gridspec_kw={"width_ratios": [len(ours.columns), len(paper.columns)]})
sns.heatmap(ours, annot=True, fmt=".1f", center=0, cmap="RdBu", ax=axes[0], cbar_kws={"label": "Δm% ↑"})
axes[0].set_title("ours: scenes, Δm% ↑ vs vanilla single-task")
sns.heatmap(paper, annot=True, fmt=".1f", center=0, cmap="RdBu", ax=axes[1], cbar_kws={"label": "Δm% ↑"})
axes[1].set_title("seed 002 NYUv2: Δm% ↑ vs HPS + EW")
fig.tight_layout()
fig.savefig(OUT / "delta_heatmap.png", dpi=120, bbox_inches="tight")
plt.show()
"""),
("code", """
display(Markdown("**Ours** — Δm% ↑ vs vanilla single-task, mean ± SE over seeds"))
ours.round(2).astype(str) + " ± " + ours_se.round(2).astype(str)
"""),
("code", """
display(Markdown(f"**Seed 002** — Δm% ↑ vs HPS + EW over nine metrics ({A.SEED002_SOURCE}); NaN = OOM"))
paper.round(2)
"""),
("md", """
## Each architecture against its own single-task variant (seed 004 Fig. 4)

Per task, the improvement (%) over the vanilla single-task network of each architecture's own
single-task variant and of its multi-task model with uniform weights (`ew`), mean ± SE over seeds.
A multi-task bar below its own single-task bar is imbalance the architecture did not remove.
"""),
("code", """
fig4 = A.arch_vs_stl(result, "ew")
g = sns.catplot(data=fig4, x="task", y="improvement %", hue="kind", col="architecture", col_wrap=4, kind="bar",
                errorbar="se", height=2.6, aspect=1.1, sharey=False)
for ax in g.axes.flat:
    ax.axhline(0, color="k", lw=0.8)
g.figure.suptitle("Improvement over the vanilla single-task network (%, ↑)", y=1.03)
g.figure.savefig(OUT / "arch_vs_own_stl.png", dpi=120, bbox_inches="tight")
plt.show()
"""),
("code", """
own = pd.DataFrame({a: {m: np.mean(A.cell_deltas(result, a, m, "own")) if A.cell_deltas(result, a, m, "own") else np.nan
                        for m in result["methods"]} for a in result["archs"]})
display(Markdown("Δm% ↑ of each cell against **its own architecture's** single-task variant (mean over seeds)"))
own.round(2)
"""),
("md", """
## Cost per cell

Parameters, median time of one training step and peak memory of the first step (model,
gradients, Adam state and activations), from `mtl.memory.step_cost`. On CPU the peak is the
tracked peak of live tensor bytes; on CUDA the allocator's peak. A cell over the profile's memory
limit (the `gpu` profile: seed 002's 24 GB) is marked OOM.
"""),
("code", """
costs = A.cell_costs(OUT, P)
costs.round(2)
"""),
("code", """
fig, axes = plt.subplots(1, 2, figsize=(12, 3.2))
for ax, col, label in zip(axes, ["step_ms", "peak_mb"], ["step time (ms)", "peak memory (MiB)"]):
    sns.barplot(data=costs, x="architecture", y=col, hue="method", ax=ax)
    ax.set_ylabel(label); ax.tick_params(axis="x", rotation=45)
fig.tight_layout()
fig.savefig(OUT / "costs.png", dpi=120, bbox_inches="tight")
plt.show()
"""),
("md", """
## Do method rankings change with the architecture?

Spearman correlation between architectures of their rankings of the methods (by mean Δm%), ours
and seed 002's (13 methods, OOM cells left out pairwise). Values near 1 mean the same ranking.
"""),
("code", """
fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
for ax, (name, t) in zip(axes, {"ours": A.delta_table(result), "seed 002": paper}.items()):
    sns.heatmap(A.rank_correlation(t), annot=True, fmt=".2f", vmin=-1, vmax=1, cmap="PuOr", ax=ax)
    ax.set_title(f"{name}: rank correlation of methods")
fig.tight_layout()
fig.savefig(OUT / "rank_correlation.png", dpi=120, bbox_inches="tight")
plt.show()
"""),
("md", """
## Verdicts on claims C3 and C19

> *C3: Specialised architectures mitigate but do not remove the imbalance, and still rely on loss
> weights.* (seed 004 §V-C, Fig. 4)
>
> *C19: Across the eight architectures no single optimisation method is best; rankings of
> methods change with the architecture.* (seed 002 Tables 2–9)
"""),
("code", """
verdicts = [A.c3_architectures(result, "ew"), A.c19_no_single_best(result)]
claims.write_claims(OUT, verdicts)
display(Markdown(verdict_markdown(verdicts)))
"""),
("md", """
**Reading.** Both verdicts are computed from the runs above. For C3 a task counts as below its
architecture's own single-task variant only when the seed-paired gap exceeds two standard
errors, and an architecture *mitigates* only when its gap to its own single-task variant is
smaller than HPS's gap by that margin; seed 004's third clause (reliance on loss weights) is not
tested here. For C19 a *rank reversal* needs two methods to swap order between two architectures,
each order beyond two standard errors; the mean rank correlation is context, not the test. At
the `cpu` profile (small images, a narrow SegNet, few epochs, three seeds and four methods) the
spread over seeds is large, so an `inconclusive` is an honest outcome; the `gpu` profile runs
seed 002's full grid.
"""),
]

write("book/sections/architectures.ipynb", cells, "Architectures and optimisers")
