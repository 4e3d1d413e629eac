"""Generates book/sections/features.ipynb (section "Feature similarity")."""
from nb import write

cells = [
("md", """
# Feature similarity

*Seed 004 (Guo et al., "Revisit the Imbalance Optimization in Multi-task Learning"), §V-F(1) and
Fig. 6, with the URL rows of Tables II–III; claim C7.* The paper trains a single-task network per
task, then measures, for several multi-task optimisation (MTO) methods, how far the shared
multi-task feature is from each single-task feature (an L2 distance after a light adapter, as in
URL, Li, Liu & Bilen, IJCV 2023). It finds that the methods that do well (grid search, CAGrad,
Nash-MTL) stay closer to the single-task features than uniform weighting, and that URL, which
distils the single-task features into the multi-task network, is the best method of Table III.
We run uniform, grid search, CAGrad, Nash-MTL, AvgNorm and URL on `scenes` (four tasks, SegNet)
and ask the same question.
"""),
("params", """
profile = "cpu"      # smoke | cpu | gpu (book/profiles/features.yaml)
out_dir = ""         # output folder, from the repository root or absolute (empty: runs/features/<profile>)
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

from mtl import claims, profiles, study
from mtl.report import metric_label, paper_beside, verdict_markdown
from mtl.studies import features as F

warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", message="An input array is constant")  # ρ of a constant column is NaN
P = profiles.load("features", profile)
OUT = profiles.out_dir("features", profile, out_dir)
pd.set_option("display.precision", 4)
"""),
("md", """
## Protocol

Every run is recorded in `runs/features/<profile>/<run-id>/` with its trained weights
(`model.pt`) and loaded instead of re-trained when it exists. Single-task networks are trained
first, one per task and seed; the grid of loss weights is searched at the first seed on
validation Δm. **URL** adds to the uniform sum of task losses λ Σ_t ‖n(A_t φ(x)) − n(φ*_t(x))‖²,
where φ is the shared feature, φ*_t the frozen single-task network of the same seed, A_t a 1×1
convolution trained jointly and n(·) the per-pixel L2 normalisation (the authors' dense-prediction
code; λ = 1). **Feature distance** (the diagnostic): for a trained multi-task model and the
single-task networks of the same seed, both frozen, a fresh adapter per task is fitted on the
train split by the same loss, and the distance is measured on the test split (0: identical up to
the adapter; 4: opposite). The paper instead updates the adapter while the multi-task model
trains; fitting it afterwards treats every method (URL included) alike. Δm% is seed 004's Eq. 5,
**higher is better**, against the mean single-task result.
"""),
("hidden", """
spec = P["spec"]
pd.Series({"dataset": spec["dataset"], "image": f"{spec['dataset_kw']['height']}×{spec['dataset_kw']['width']}",
           "backbone": f"{spec['backbone']} {spec['backbone_kw']}", "epochs": spec["train"]["epochs"],
           "seeds": len(P["seeds"]), "grid": P["grid"], "URL": P["url"], "diagnostic": P["diagnostic"]}).to_frame("setting")
"""),
("code", """
res = F.feature_similarity(OUT, P)
dist = res["distances"]
"""),
("md", """
## Feature distance to single-task and Δm

Per method: the distance of each task's feature to its single-task network (mean over seeds,
lower is closer), their mean, and Δm% ↑ (improvement over single-task, seed 004 convention;
mean and standard error over seeds).
"""),
("code", """
table = F.distance_table(dist).sort_values("dist_mean")
table.rename(columns={"dist_mean": "dist mean", "delta_m": "Δm% ↑", "delta_m_se": "Δm SE"}).round(4)
"""),
("md", """
## Distance against Δm

Each point is one run (method × seed): its mean feature distance over the four tasks against
its Δm; the large markers are the method means. The title gives Spearman's rank correlation
over all runs (negative: closer features go with better Δm).
"""),
("code", """
runs = F.per_run(dist)
rc = F.rank_correlation(runs)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
sns.scatterplot(data=runs, x="distance", y="delta_m", hue="method", style="method", s=45, ax=axes[0])
means = runs.groupby("method", sort=False)[["distance", "delta_m"]].mean()
axes[0].scatter(means["distance"], means["delta_m"], s=160, facecolors="none", edgecolors="k", lw=1)
axes[0].set(xlabel="mean feature distance to STL (↓ closer)", ylabel="Δm% ↑",
            title=f"Spearman ρ = {rc['rho']:+.2f} (p = {rc['p']:.3f}, n = {rc['n']})")
axes[0].legend(fontsize=7)
sns.barplot(data=dist, x="task", y="distance", hue="method", errorbar="se", ax=axes[1])
axes[1].set(ylabel="feature distance to STL (↓)", title="Per task (seed 004 Fig. 6)")
axes[1].legend(fontsize=7)
fig.tight_layout()
fig.savefig(OUT / "distance_vs_delta_m.png", dpi=120, bbox_inches="tight")
plt.show()
"""),
("md", """
Per task, the rank correlation between a run's feature distance on that task and its
improvement on that task (% over single-task):
"""),
("code", """
from scipy.stats import spearmanr
pd.DataFrame({t: dict(zip(("ρ", "p"), spearmanr(g["distance"], g["improvement"]))) | {"runs": len(g)}
              for t, g in dist.groupby("task")}).T.round(3)
"""),
("md", """
## URL among the MTO methods

Mean over seeds of each task's primary metric and Δm% ↑ (improvement over single-task, seed 004
convention), URL included:
"""),
("code", """
summary = study.summary_table(res["methods"], res["base"], res["dirs"])
summary.rename(columns=metric_label).round(4)
"""),
("md", """
Beside the paper (seed 004, Table II, NYUD-v2, ResNet-18, and Table III, ResNet-50). Absolute
values are not comparable (other data and scale; our fractions are shown in %); the order of
the methods and the signs of Δm are.
"""),
("code", """
display(Markdown(f"**{F.SEED004_TABLE2_NYUD_R18_MTO['source']}**"))
display(paper_beside(summary, F.SEED004_TABLE2_NYUD_R18_MTO))
display(Markdown(f"**{F.SEED004_TABLE3_NYUD_R50_URL['source']}**"))
display(paper_beside(summary, F.SEED004_TABLE3_NYUD_R50_URL))
"""),
("md", """
## Verdict on claim C7

> *Methods whose multi-task features stay closer to single-task features do better.*
> (seed 004 §V-F(1), Fig. 6)
"""),
("code", """
verdicts = [F.c7_verdict(dist, setting=f"scenes, {profile}")]
claims.write_claims(OUT, verdicts)
display(Markdown(verdict_markdown(verdicts)))
"""),
("md", """
**Reading.** The verdict is computed from the runs: within each seed the six methods are ranked
by mean feature distance and by Δm, and C7 is supported only when the mean rank correlation over
seeds is negative by more than two standard errors. URL lowers the distance by construction (it
trains on it), so the evidence also gives the correlation without URL. At the `cpu` profile
(three seeds, a few epochs, small images and a narrow SegNet) differences between methods are
of the order of the seed spread, and an `inconclusive` verdict is the honest outcome; the `gpu`
profile trains longer on larger scenes.
"""),
]

write("book/sections/features.ipynb", cells, "Feature similarity")
