"""Generates book/sections/vfm.ipynb (section "Vision foundation models")."""
from nb import write

cells = [
("md", """
# Vision foundation models

*Seed 004 (Guo et al.) §V-D, Table IV and Table VIII; claim C4.* Does a strong initialisation of
the shared encoder remove the imbalance of multi-task learning? For each initialisation of a ViT
encoder (timm, patch tokens reshaped to a feature map with an upsampling head per task) we train
**Single-task** (one network per task), **Uniform** loss weights and **Grid Search** loss weights
on `scenes` (segmentation, depth, normals). The paper finds that with every foundation model it
tried (ImageNet, CLIP, SAM, DINO, DINOv2) uniform MTL stays below its own single-task learning.
Offline we cannot fetch those weights, so the `cpu` profile compares initialisations made here on
a small ViT — random, supervised classification on another dataset (MultiMNIST digits), and a
self-supervised masked-image reconstruction on unlabeled scenes — each saved as a checkpoint file
and loaded through the same timm pretrained path as the Table VIII names (`gpu` profile).
"""),
("params", """
profile = "cpu"      # smoke | cpu | gpu | paper (book/profiles/vfm.yaml)
out_dir = ""         # output folder, from the repository root or absolute (empty: runs/vfm/<profile>)
progress = False     # tqdm bars (off in CI and in the rendered book)
"""),
("hidden", """
import json
import warnings

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from mtl import claims, profiles
from mtl.report import metric_label, verdict_markdown
from mtl.studies import vfm

warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm.auto in a kernel without ipywidgets
P = profiles.load("vfm", profile)
OUT = profiles.out_dir("vfm", profile, out_dir)
pd.set_option("display.precision", 4)
"""),
("md", """
## Protocol

Every initialisation runs `mtl.study.vanilla_imbalance`: single-task runs per task and seed, the
loss-weight grid searched once at the first seed by validation Δm, then uniform and the chosen
weights at every seed (last-epoch test metrics). Runs are recorded under
`runs/vfm/<profile>/<initialisation>/`. Δm% is seed 004's Eq. 5 over one primary metric per task,
**improvement convention: higher is better**, against the initialisation's **own** single-task
runs (the imbalance question) and, as in Table IV, against the single-task runs of the first
initialisation (how good the initialisation is).
"""),
("hidden", """
pd.DataFrame({name: {"kind": i["kind"], "pretext data": i.get("dataset", "—"), "epochs": i.get("epochs", "—")}
              for name, i in P["initialisations"].items()}).T
"""),
("code", """
results = vfm.compare_initialisations(OUT, P)
"""),
("md", """
The pretraining of each offline checkpoint (mean loss per epoch; random has none):
"""),
("code", """
logs = {p.stem: json.loads(p.read_text()) for p in sorted((OUT / "checkpoints").glob("*.json"))} if (OUT / "checkpoints").exists() else {}
pd.DataFrame({v["name"]: {"kind": v["init"]["kind"], "first epoch loss": (v["loss_per_epoch"] or [None])[0],
                          "last epoch loss": (v["loss_per_epoch"] or [None])[-1], "checkpoint": f"checkpoints/{k}.pt"}
              for k, v in logs.items()}).T
"""),
("md", """
## Results

Mean over seeds of each task's primary metric, Δm% ↑ (improvement) against the initialisation's
own single-task baseline (± SE over seeds) and against the first initialisation's single-task
baseline.
"""),
("code", """
ours = vfm.table(results)
ours.rename(columns=metric_label).round(3)
"""),
("md", """
Seed 004's Table IV (NYUD-v2 columns, ViT-B/16), with Δm% ↑ as printed (against ImageNet-1K
single-task) and recomputed against each initialisation's own single-task row:
"""),
("code", """
paper = vfm.paper_table()
display(Markdown(f"*Source: {vfm.SEED004_TABLE4_SOURCE}.*"))
paper.rename(columns=metric_label).round(3)
"""),
("code", """
beside = pd.concat({"paper (NYUD-v2, ViT-B)": paper[vfm.DM_OWN].unstack("method"),
                    "ours (scenes, small ViT)": ours[vfm.DM_OWN].unstack("method")}, names=["source"])
display(Markdown("Δm% ↑ against each initialisation's own single-task baseline, paper beside ours"))
beside[["Uniform", "Grid Search"]].round(2)
"""),
("md", """
## Per-task gap to the initialisation's own single-task learning

Improvement (%) of each task's primary metric over the same initialisation's single-task runs,
mean and SE over seeds. Bars below zero are the imbalance the initialisation did not remove.
"""),
("code", """
gaps = vfm.per_task_gaps(results)
g = sns.catplot(data=gaps, x="task", y="improvement %", hue="method", col="initialisation", kind="bar",
                errorbar="se", height=3.0, aspect=1.1, sharey=True)
for ax in g.axes.flat:
    ax.axhline(0, color="k", lw=0.8)
g.figure.suptitle("Gap to the initialisation's own single-task learning (%, ↑)", y=1.04)
g.figure.savefig(OUT / "gap_per_task.png", dpi=120, bbox_inches="tight")
plt.show()
"""),
("md", """
## Verdict on claim C4

> *No foundation-model initialisation removes the imbalance.* (seed 004 §V-D, Table IV)
"""),
("code", """
verdicts = [vfm.c4_initialisations(results)]
claims.write_claims(OUT, verdicts)
display(Markdown(verdict_markdown(verdicts)))
"""),
("md", """
**Reading.** The verdict is computed from the runs: an initialisation *keeps* the imbalance when a
task of uniform MTL is below the same initialisation's single-task result by more than two
standard errors over seeds, and *removes* it when uniform MTL is above on every task by that
margin. The offline initialisations are small and pretrained briefly, so they test the logic of
the claim — does a better starting point by itself balance the tasks? — not the foundation models
of Table IV; those are in the `gpu` profile (timm hub names of Table VIII). With three seeds an
`inconclusive` is an honest outcome.
"""),
]

write("book/sections/vfm.ipynb", cells, "Vision foundation models")
