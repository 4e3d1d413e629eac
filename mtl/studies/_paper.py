"""Numbers the papers report, transcribed from the seeds (``../shared/seeds``), to show beside ours.

Each table names its source (seed file, table, row) so a reader can check it. Rows keep the
papers' own labels (seed 004 writes "Nash-MTL" in its per-metric rows and "NashMTL" in its Δm
rows); :func:`method_of` resolves either spelling to the registry entry through its aliases.
"""
from __future__ import annotations

from ..weighting import WEIGHTINGS

NOT_METHODS = ("Single-task", "Grid Search")   # reference rows that are protocols, not weightings


def method_of(row: str) -> str | None:
    """The weighting registry name of a reference row (None for :data:`NOT_METHODS`).

    >>> method_of("Nash-MTL"), method_of("NashMTL"), method_of("Uniform"), method_of("Grid Search")
    ('nashmtl', 'nashmtl', 'ew', None)
    """
    if row in NOT_METHODS:
        return None
    return WEIGHTINGS.resolve(row)


# seed 004 (Guo et al., "Revisit the Imbalance Optimization in MTL"), Tables II and III, NYUD-v2, per metric.
# Columns: Seg. mIoU ↑, Dep. RMSE ↓, Norm. mErr ↓, Edge odsF ↑, Δm% ↑ (improvement convention).
SEED004_NYUD_COLUMNS = {"segmentation/miou": True, "depth/rmse": False, "normal/mean": False, "edge/odsf": True}


def _row(seg, dep, nor, edge, dm):
    return {"segmentation/miou": seg, "depth/rmse": dep, "normal/mean": nor, "edge/odsf": edge, "delta_m": dm}


# Table II, ResNet-18, the rows the sections quote.
SEED004_TABLE2_NYUD_R18_ROWS = {
    "Single-task": _row(39.38, 0.6111, 21.94, 72.40, 0.00),
    "Uniform": _row(39.70, 0.6030, 23.37, 67.10, -2.93),
    "Grid Search": _row(39.87, 0.5999, 22.74, 72.40, -0.15),
    "CAGrad": _row(40.22, 0.6052, 23.03, 72.80, -0.34),
    "Nash-MTL": _row(39.59, 0.5979, 22.37, 72.90, +0.35),
    "URL": _row(40.17, 0.5940, 22.70, 71.00, -0.16),
}
# Table III, ResNet-50.
SEED004_TABLE3_NYUD_R50_ROWS = {
    "Single-task": _row(42.94, 0.5905, 20.54, 73.40, 0.00),
    "Uniform": _row(43.70, 0.5733, 21.71, 73.50, -0.22),
    "Grid Search": _row(43.98, 0.5735, 21.47, 74.60, +0.60),
    "CAGrad": _row(43.84, 0.5789, 21.70, 74.60, +0.02),
    "Nash-MTL": _row(43.93, 0.5741, 21.17, 74.60, +0.62),
    "URL": _row(44.98, 0.5598, 20.84, 74.20, +1.91),
}
FIXED = ("Single-task", "Uniform", "Grid Search")

# seed 004, Table II (ResNet-18): Δm% ↑ on NYUD-v2 and PASCAL-Context, every method row.
SEED004_TABLE2_DELTA = {
    "source": "seed 004, Table II, ResNet-18, Δm% (improvement)",
    "rows": {"Single-task": (0.00, 0.00), "Uniform": (-2.93, -4.04), "Grid Search": (-0.15, -2.64),
             "UW": (-3.37, -4.15), "GradNorm": (-1.95, -3.38), "DWA": (-2.46, -3.80), "MGDA": (-2.85, -7.19),
             "RLW": (-3.82, -6.23), "FAMO": (-3.62, -4.17), "PCGrad": (-2.90, -3.41), "CAGrad": (-0.34, -2.98),
             "GradDrop": (-3.02, -4.42), "URL": (-0.16, -1.32), "NashMTL": (0.35, -2.40), "FairGrad": (0.59, -3.12)},
    "columns": ("NYUD-v2", "PASCAL-Context"),
}
# seed 004, Table III: NYUD-v2 with ResNet-50, Δm% ↑.
SEED004_TABLE3_DELTA = {
    "source": "seed 004, Table III, NYUD-v2, ResNet-50, Δm% (improvement)",
    "rows": {"Single-task": 0.00, "Uniform": -0.22, "Grid Search": 0.60, "UW": -0.76, "GradNorm": 0.58, "DWA": 0.32,
             "MGDA": 0.21, "RLW": -0.64, "FAMO": -0.57, "PCGrad": 0.67, "CAGrad": 0.02, "GradDrop": -0.55,
             "URL": 1.91, "NashMTL": 0.62, "FairGrad": 0.76},
}
# seed 002 (LibMTL), Table 2: NYUv2, 3 tasks, HPS. Columns and their direction (True: higher is better).
SEED002_TABLE2_COLUMNS = {"segmentation/miou": True, "segmentation/pix_acc": True, "depth/abs_err": False,
                          "depth/rel_err": False, "normal/mean": False, "normal/median": False,
                          "normal/within_11": True, "normal/within_22": True, "normal/within_30": True}
SEED002_TABLE2 = {
    "source": "seed 002 (LibMTL), Table 2, NYUv2, HPS",
    "rows": {
        "Uniform": (54.10, 75.78, 0.3771, 0.1596, 23.53, 17.20, 34.55, 60.75, 72.06),
        "GradNorm": (53.57, 75.21, 0.3853, 0.1623, 23.32, 16.62, 35.81, 61.85, 72.73),
        "UW": (54.02, 75.66, 0.3838, 0.1573, 23.45, 16.86, 35.43, 61.32, 72.33),
        "MGDA": (50.15, 73.44, 0.3839, 0.1563, 22.78, 16.05, 37.04, 63.07, 73.65),
        "DWA": (53.55, 75.42, 0.3811, 0.1589, 23.63, 17.15, 34.78, 60.71, 71.87),
        "GLS": (54.46, 76.01, 0.3793, 0.1566, 22.73, 16.16, 36.76, 62.94, 73.68),
        "PCGrad": (54.03, 75.66, 0.3814, 0.1570, 23.62, 17.01, 35.10, 60.96, 71.97),
        "GradDrop": (53.90, 75.62, 0.3851, 0.1580, 23.67, 17.04, 34.99, 60.88, 71.91),
        "IMTL": (53.53, 75.46, 0.3842, 0.1578, 22.99, 16.44, 36.16, 62.28, 73.20),
        "GradVac": (53.99, 75.74, 0.3842, 0.1602, 23.51, 16.93, 35.26, 61.14, 72.17),
        "CAGrad": (53.77, 75.80, 0.3836, 0.1584, 22.53, 15.86, 37.40, 63.58, 74.20),
        "NashMTL": (53.38, 75.01, 0.3814, 0.1570, 22.61, 15.87, 37.30, 63.68, 74.28),
        "RLW": (54.52, 75.78, 0.3890, 0.1566, 23.34, 16.83, 35.45, 61.43, 72.45),
    },
}

SEED004_TABLE2_NYUD_R18 = {
    "source": "seed 004, Table II, NYUD-v2, ResNet-18",
    "columns": SEED004_NYUD_COLUMNS,
    "rows": {m: SEED004_TABLE2_NYUD_R18_ROWS[m] for m in FIXED},
    "grid_weights": {"segmentation": 1, "depth": 1, "normal": 2, "edge": 50},  # seed 004 Table VI
}
# Table II, PASCAL-Context, ResNet-18 (five tasks): Δm only, for the same three rows.
SEED004_TABLE2_PASCAL_R18 = {
    "source": "seed 004, Table II, PASCAL-Context, ResNet-18",
    "rows": {m: {"delta_m": SEED004_TABLE2_DELTA["rows"][m][1]} for m in FIXED},
}
