"""Customized Gate Control (Tang et al., RecSys 2020 — the single-level PLE, paper §4.2 Eq. (2)–(3)).

Shared experts E_s and per-task experts E_t; task t's gate mixes [E_s ∪ E_t]:
y_t = h_t(Σ_e g_t(x)_e f_e(x)), g_t = softmax(W_t u(x)). As in :mod:`mtl.models.mmoe`, gates read
the pooled expert features, not raw pixels. ``encode`` returns every expert's output stacked
[S + T·K, B, C, ...] (``rep_layout == "shared"``; the task-expert slices only reach their task).
Shared experts are shared; task t's experts, gate and head belong to task t.
"""
from __future__ import annotations

from ..checks import check_count
from ._registry import ARCHITECTURES
from .mmoe import Gate, MixtureOfExperts


def expert_layout(tasks, num_shared: int, num_task: int) -> tuple[dict, dict]:
    """Routes and ownership over experts ordered [shared..., task 1's..., task 2's...]."""
    routes, owned = {}, {}
    for i, t in enumerate(tasks):
        own = list(range(num_shared + i * num_task, num_shared + (i + 1) * num_task))
        routes[t.name], owned[t.name] = list(range(num_shared)) + own, own
    return routes, owned


@ARCHITECTURES.register("cgc", label="CGC", paper="Tang et al., RecSys 2020")
def cgc(backbone_fn, tasks, num_shared: int = 1, num_task: int = 1) -> MixtureOfExperts:
    """CGC with ``num_shared`` shared and ``num_task`` experts per task (LibMTL's NYUv2 benchmark: [1, 1, 1, 1]).
    One task gives its single-task variant (shared + own experts, one gate)."""
    s, k = check_count("num_shared", num_shared, 0), check_count("num_task", num_task, 0)
    if s + k == 0:
        raise ValueError("CGC needs at least one expert per task: num_shared + num_task ≥ 1")
    bbs = [backbone_fn() for _ in range(s + k * len(tasks))]
    routes, owned = expert_layout(tasks, s, k)
    gates = {t.name: Gate(bbs[0].out_features, s + k) for t in tasks}
    return MixtureOfExperts([b.encoder for b in bbs], {t.name: bbs[0].make_head(t) for t in tasks}, gates,
                            routes, owned)
