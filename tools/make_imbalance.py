"""Generates book/sections/imbalance.ipynb (section "Imbalance in vanilla MTL")."""
from nb import write

cells = [
("md", """
# Imbalance in vanilla MTL

*Seed 004 (Guo et al., "Revisit the Imbalance Optimization in Multi-task Learning"), §V-A and the
top rows of Table II; claim C1.* A single network per task (**Single-task**, STL) against one
shared encoder with task heads trained on the plain sum of losses (**Uniform**) and on loss
weights found by a grid search (**Grid Search**). The paper finds that uniform MTL gains on
some tasks (depth) and loses on others (normals, edges), and that searched weights close most of
the gap. We ask the same of two embedded datasets: procedural indoor `scenes` (segmentation,
depth, normals, edges; a SegNet encoder-decoder) and `multimnist` (two real MNIST digits per
image; LeNet).
"""),
("params", """
profile = "cpu"      # smoke | cpu | gpu | paper (book/profiles/imbalance.yaml)
out_dir = ""         # output folder, from the repository root or absolute (empty: runs/imbalance/<profile>)
progress = False     # tqdm bars (off in CI and in the rendered book)
"""),
("hidden", """
import warnings

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from mtl import claims, profiles, reference, study
from mtl.report import metric_label, paper_beside, verdict_markdown

warnings.filterwarnings("ignore", category=UserWarning)
P = profiles.load("imbalance", profile)
OUT = profiles.out_dir("imbalance", profile, out_dir)
pd.set_option("display.precision", 4)
"""),
("md", """
## Protocol

Every run below is recorded in `runs/imbalance/<profile>/<run-id>/` and loaded instead of
re-trained when it exists. The grid is searched once, at the first seed, by validation Δm
against the single-task validation result; the chosen weights are then trained at every seed.
Test metrics are those of the last epoch. Δm% is seed 004's Eq. 5 over one primary metric per
task, in the paper's convention: **higher is better**, 0 = the single-task baseline (the mean of
the single-task runs over seeds).
"""),
("hidden", """
settings = pd.DataFrame({name: {"dataset": c["spec"]["dataset"], "backbone": c["spec"]["backbone"],
                                 "epochs": c["spec"]["train"]["epochs"], "seeds": len(c["seeds"]),
                                 "grid": {t: v for t, v in c["grid"].items()}}
                         for name, c in P["datasets"].items()}).T
settings
"""),
("code", """
results = {name: study.vanilla_imbalance(OUT, cfg) for name, cfg in P["datasets"].items()}
"""),
("md", """
## Results

Mean over seeds of the primary metric of each task and Δm% (± standard error over seeds).
For `scenes`, the paper's NYUD-v2 numbers (ResNet-18, Table II) are shown beside ours: the
absolute values are not comparable (different data and scale), the signs of the per-task gaps
and of Δm are.
"""),
("code", """
tables = {}
for name, r in results.items():
    tables[name] = t = study.summary_table(r["methods"], r["base"], r["dirs"])
    display(Markdown(f"**{name}** — Δm% ↑ (improvement over single-task, seed 004 convention)"))
    display(t.rename(columns=metric_label).round(4))
"""),
("code", """
paper_beside(tables.get("scenes"), reference.SEED004_TABLE2_NYUD_R18) if "scenes" in tables else None
"""),
("md", """
Every metric (not only the primary ones), mean over seeds:
"""),
("code", """
for name, r in results.items():
    full = study.summary_table(r["methods"], r["base"], r["dirs"], all_dirs=r["all_dirs"])
    display(Markdown(f"**{name}** — all metrics (↑/↓ as in the protocol page)"))
    display(full.drop(columns=["delta_m", "delta_m_se", "seeds"]).rename(columns=metric_label).round(4))
"""),
("md", """
## Per-task gap to single-task learning

Relative improvement of each task's primary metric over the single-task baseline (%, higher is
better), mean and standard error over seeds.
"""),
("code", """
rows = []
for name, r in results.items():
    for method in ("Uniform", "Grid Search"):
        for rec in r["methods"][method]:
            for task, v in study.per_task_improvement(rec["metrics"], r["base"], r["dirs"]).items():
                rows.append({"dataset": name, "method": method, "task": task, "improvement %": v})
gaps = pd.DataFrame(rows)
g = sns.catplot(data=gaps, x="task", y="improvement %", hue="method", col="dataset", kind="bar",
                errorbar="se", sharex=False, sharey=False, height=3.2, aspect=1.3)
for ax in g.axes.flat:
    ax.axhline(0, color="k", lw=0.8)
g.figure.suptitle("Gap to single-task learning per task", y=1.04)
g.figure.savefig(OUT / "gap_per_task.png", dpi=120, bbox_inches="tight")
plt.show()
"""),
("md", """
## The grid searched

Validation Δm% of every weight combination tried (first seed), best first.
"""),
("code", """
for name, r in results.items():
    display(Markdown(f"**{name}** — tasks {list(r['best_weights'])}"))
    display(r["grid"][["weights", "val_delta_m"]].round(3))
"""),
("md", """
## Verdict on claim C1

> *Uniform loss weights leave multi-task learning below single-task on some tasks (imbalance);
> grid-searched loss weights narrow the gap.* (seed 004 §V-A, Table II)
"""),
("code", """
verdicts = [claims.c1_vanilla_imbalance(r, setting=name) for name, r in results.items()]
claims.write_claims(OUT, verdicts)
display(Markdown(verdict_markdown(verdicts)))
"""),
("md", """
**Reading.** The verdict line above is computed from the runs: a task counts as *below*
single-task only when its seed-paired gap exceeds two standard errors, and grid search
*narrows the gap* only when its Δm beats uniform's by two standard errors. At the `cpu` profile
(three seeds, ten epochs, small images) an `inconclusive` is an honest outcome: the spread over
seeds is then as large as the effect. The `gpu` profile trains longer on larger scenes.
"""),
]

write("book/sections/imbalance.ipynb", cells, "Imbalance in vanilla MTL")
