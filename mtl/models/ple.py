"""Progressive Layered Extraction (Tang et al., RecSys 2020, §4.3 Eq. (4)–(6)) on any staged backbone.

Levels are runs of backbone stages. At each level, task t's experts read task t's path and the
shared experts read the shared path; below the top level, gate t mixes [shared ∪ task t experts]
into task t's next path and a shared gate mixes all experts into the next shared path (the paper's
shared gate, which LibMTL omits). The top level is a CGC: ``encode`` returns its experts stacked
[S + T·K, B, C, ...] (``rep_layout == "shared"``) and ``decode`` gates and heads. Gates read the
experts' pooled features (see :mod:`mtl.models.mmoe`). A mixed path keeps the SegNet indices /
ViT prefix tokens of its first own expert (task path: task t's first expert; shared: the first
shared expert).

Partition by which losses reach a parameter: task t owns its top-level experts, its last two
gates and its head; lower task experts feed the shared gate, so they are shared with the rest.
"""
from __future__ import annotations

import torch
from torch import nn

from ..checks import check_count
from ._registry import ARCHITECTURES
from .backbones import run_stages
from .cgc import expert_layout
from .mmoe import Gate, MixtureOfExperts, mix

SHARED = "__shared__"


def split_levels(stages: list[nn.Module], levels: int | None) -> list[list[nn.Module]]:
    """``levels`` contiguous, even runs of ``stages`` (every stage its own level when ``None``)."""
    n = len(stages) if levels is None else check_count("levels", levels)
    if n > len(stages):
        raise ValueError(f"levels={n} exceeds the backbone's {len(stages)} stages")
    cuts = [round(i * len(stages) / n) for i in range(n + 1)]
    return [stages[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


class PLE(MixtureOfExperts):
    """``experts[e][l]`` is expert e's stage run at level l; ``level_gates[g][l]`` mixes path g below the top."""

    def __init__(self, experts: list[list[list[nn.Module]]], heads, top_gates, routes, owned, level_gates):
        super().__init__([nn.ModuleList(nn.ModuleList(run) for run in e) for e in experts], heads, top_gates,
                         routes, owned)
        self.level_gates = nn.ModuleDict({g: nn.ModuleList(v) for g, v in level_gates.items()})
        self.shared_ids = [i for i in range(len(experts)) if all(i not in o for o in self.owned.values())]

    def _path(self, g: str) -> list[int]:
        return self.shared_ids if g == SHARED else self.owned[g]

    def _route(self, g: str) -> list[int]:
        return list(range(len(self.encoder))) if g == SHARED else self.routes[g]

    def encode(self, x) -> torch.Tensor:
        paths = {g: (x, ()) for g in [SHARED, *self.heads]}
        for lvl in range(len(self.encoder[0])):
            outs = {}
            for g, (h, memo) in paths.items():
                for i in self._path(g):
                    outs[i] = run_stages(self.encoder[i][lvl], h, memo)
            z = torch.stack([outs[i][0] for i in range(len(self.encoder))])   # [E, B, C, ...]
            if lvl == len(self.encoder[0]) - 1:
                return z
            paths = {g: self._mix(g, lvl, z, outs) for g in paths}

    def _mix(self, g: str, lvl: int, z: torch.Tensor, outs: dict) -> tuple:
        route = self._route(g)
        zg = z[route]                                                   # [E_g, B, C, ...]
        first = (self._path(g) or self.shared_ids)[0]
        return mix(zg, self.level_gates[g][lvl](zg)), outs[first][1]

    def task_modules(self, task: str) -> list[nn.Module]:
        mods = [self.heads[task], self.gates[task]] + [self.encoder[i][-1] for i in self.owned[task]]
        return mods + ([self.level_gates[task][-1]] if len(self.level_gates[task]) else [])

    def last_shared_modules(self) -> list[nn.Module]:
        return [self.encoder[i][-1] for i in self.shared_ids]


@ARCHITECTURES.register("ple", label="PLE", paper="Tang et al., RecSys 2020")
def ple(backbone_fn, tasks, num_shared: int = 1, num_task: int = 1, levels: int | None = None) -> PLE:
    """PLE with ``num_shared`` shared and ``num_task`` per-task experts per level
    (LibMTL's NYUv2 benchmark: [1, 1, 1, 1]).
    One task gives the single-task variant (same experts and gates, one task path)."""
    s, k = check_count("num_shared", num_shared), check_count("num_task", num_task, 0)
    bbs = [backbone_fn() for _ in range(s + k * len(tasks))]
    experts = [split_levels(b.staged("ple"), levels) for b in bbs]
    chans = [run[-1].out_channels for run in experts[0]]
    routes, owned = expert_layout(tasks, s, k)
    below = range(len(chans) - 1)
    level_gates = {t.name: [Gate(chans[lvl], s + k) for lvl in below] for t in tasks}
    level_gates[SHARED] = [Gate(chans[lvl], len(bbs)) for lvl in below]
    top = {t.name: Gate(chans[-1], s + k) for t in tasks}
    return PLE(experts, {t.name: bbs[0].make_head(t) for t in tasks}, top, routes, owned, level_gates)
