"""The MPNN of Gilmer et al. (ICML 2017, "Neural Message Passing for Quantum Chemistry") for QM9.

As in the QM9 examples of Nash-MTL / FAMO / LibMTL: an input linear layer to ``dim`` features,
``steps`` rounds of an edge-conditioned convolution (NNConv, Gilmer Eq. 3 with the edge network
``A(e_vw)``: Linear(edge, 128)-ReLU-Linear(128, dim²), mean aggregation) whose messages update the
nodes through a GRU (the update function U_t), then a Set2Set readout (Vinyals et al. 2016) with
3 processing steps and a linear-ReLU layer to ``dim`` shared features. Each task gets a linear
head. Inputs are the PyG batches of :mod:`mtl.data.qm9` (``x``, ``edge_index``, ``edge_attr``,
``batch``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_count
from ._registry import BACKBONES
from .backbones import Backbone
from .cnn9 import linear_head


def _pyg_nn():
    try:
        import torch_geometric.nn as pyg_nn
    except ImportError as e:
        raise ImportError("the mpnn backbone needs torch_geometric: pip install torch_geometric "
                          "or pip install 'mtl-imbalance[graph]'") from e
    return pyg_nn


class MPNN(nn.Module):
    """Graph batch -> [B, dim] molecule features (NNConv + GRU message passing, Set2Set readout)."""

    def __init__(self, node_features: int = 8, edge_features: int = 2, dim: int = 64, steps: int = 3,
                 set2set_steps: int = 3, edge_hidden: int = 128):
        super().__init__()
        for k, v in dict(node_features=node_features, edge_features=edge_features, dim=dim, steps=steps,
                         set2set_steps=set2set_steps, edge_hidden=edge_hidden).items():
            check_count(k, v)
        pyg_nn = _pyg_nn()
        self.steps = steps
        self.lin0 = nn.Linear(node_features, dim)
        edge_net = nn.Sequential(nn.Linear(edge_features, edge_hidden), nn.ReLU(), nn.Linear(edge_hidden, dim * dim))
        self.conv = pyg_nn.NNConv(dim, dim, edge_net, aggr="mean")
        self.gru = nn.GRU(dim, dim)
        self.set2set = pyg_nn.Set2Set(dim, processing_steps=set2set_steps)
        self.lin1 = nn.Linear(2 * dim, dim)

    def forward(self, data) -> torch.Tensor:
        out = F.relu(self.lin0(data.x))                       # [N, dim]
        h = out.unsqueeze(0)                                  # [1, N, dim] GRU state
        for _ in range(self.steps):
            m = F.relu(self.conv(out, data.edge_index, data.edge_attr))   # [N, dim] messages
            out, h = self.gru(m.unsqueeze(0), h)
            out = out.squeeze(0)
        g = self.set2set(out, data.batch)                     # [B, 2·dim]
        return F.relu(self.lin1(g))                           # [B, dim]


@BACKBONES.register("mpnn", label="MPNN", paper="Gilmer et al., ICML 2017")
def mpnn(node_features: int = 8, edge_features: int = 2, dim: int = 64, steps: int = 3,
         set2set_steps: int = 3) -> Backbone:
    """Defaults match :mod:`mtl.data.qm9`'s features and Nash-MTL's ``dim=64``."""
    return Backbone(MPNN(node_features, edge_features, dim, steps, set2set_steps), linear_head(dim), dim)
