"""Numbers the papers report, transcribed from the seeds (``../shared/seeds``), to show beside ours.

Each table names its source (seed file, table, row) so a reader can check it.
"""
from __future__ import annotations

# seed 004 (Guo et al., "Revisit the Imbalance Optimization in MTL"), Table II, NYUD-v2, ResNet-18.
# Columns: Seg. mIoU ↑, Dep. RMSE ↓, Norm. mErr ↓, Edge odsF ↑, Δm% ↑ (improvement convention).
SEED004_TABLE2_NYUD_R18 = {
    "source": "seed 004, Table II, NYUD-v2, ResNet-18",
    "columns": {"segmentation/miou": True, "depth/rmse": False, "normal/mean": False, "edge/odsf": True},
    "rows": {
        "Single-task": {"segmentation/miou": 39.38, "depth/rmse": 0.6111, "normal/mean": 21.94, "edge/odsf": 72.40, "delta_m": 0.00},
        "Uniform": {"segmentation/miou": 39.70, "depth/rmse": 0.6030, "normal/mean": 23.37, "edge/odsf": 67.10, "delta_m": -2.93},
        "Grid Search": {"segmentation/miou": 39.87, "depth/rmse": 0.5999, "normal/mean": 22.74, "edge/odsf": 72.40, "delta_m": -0.15},
    },
    "grid_weights": {"segmentation": 1, "depth": 1, "normal": 2, "edge": 50},  # seed 004 Table VI
}

# seed 004, Table II, PASCAL-Context, ResNet-18 (five tasks), for the same three rows.
SEED004_TABLE2_PASCAL_R18 = {
    "source": "seed 004, Table II, PASCAL-Context, ResNet-18",
    "rows": {
        "Single-task": {"delta_m": 0.00},
        "Uniform": {"delta_m": -4.04},
        "Grid Search": {"delta_m": -2.64},
    },
}
