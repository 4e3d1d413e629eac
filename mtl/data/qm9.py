"""``qm9``: the real QM9 (Ramakrishnan et al., Sci. Data 2014) from the ``qm9pack`` CSV, as graphs.

Source: the PyPI package ``qm9pack`` ships all 130,831 molecules (elements, B3LYP/6-31G(2df,p)
coordinates in Å and every property in atomic units) as CSV; nothing is downloaded. The CSV is
parsed once into flat tensors (atomic numbers, positions, targets) cached under
``cache_dir()/qm9/`` keyed by the source files' size and mtime and :data:`PROCESSING_VERSION`.

Targets are the 11 of the MTL literature (LibMTL/Nash-MTL/FAMO use PyG's indices
``[0, 1, 2, 3, 5, 6, 12, 13, 14, 15, 11]``): μ (D), α (a₀³), ε_HOMO, ε_LUMO, ⟨R²⟩ (a₀²), ZPVE,
U₀, U, H, G (atomization energies, i.e. minus the QM9 atomic reference energies, as PyG's
targets 12–15), c_v (cal/mol·K). Energies are converted Hartree → eV (× 27.211386246) and their
MAE is reported in meV (× 1000), as LibMTL does for indices {2, 3, 6, 12, 13, 14, 15}.

Graphs (built per batch by :class:`MoleculeCollate`): a complete directed graph over the atoms
(optionally cut at ``cutoff`` Å) with edge features ``[distance Å, covalently bonded]`` and node
features ``[one-hot H,C,N,O,F, Z, covalent degree, bonded H count]``. This differs from PyG's
``QM9``, whose edges are RDKit bonds with a one-hot bond type (single/double/triple/aromatic) and
whose nodes carry aromaticity and hybridisation; LibMTL/Nash-MTL turn it into a complete graph with
``T.Complete()`` + ``T.Distance`` (bond type zero on non-bonded pairs). Without RDKit we infer
bonds geometrically (d < 1.15 · (r_cov,i + r_cov,j)); bond order stays implicit in the distance.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import tasks as T
from ..paths import cache_dir
from ._registry import DataBundle, register
from .cache import cached_entry, load_tensors_checked, save_tensors

PROCESSING_VERSION = 1
HARTREE_TO_EV = 27.211386246            # CODATA 2018, as PyG
N_MOLECULES = 130_831
ELEMENTS = "HCNOF"
ATOMIC_NUMBER = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
# Cordero et al. 2008 covalent radii (Å), indexed by atomic number
COVALENT_RADIUS = torch.tensor([0, 0.31, 0, 0, 0, 0, 0.76, 0.71, 0.66, 0.57])
BOND_TOLERANCE = 1.15
# QM9 atomref.txt (Ramakrishnan et al. 2014): free-atom energies in Hartree, columns U0, U, H, G
ATOMREF_HARTREE = {
    "H": (-0.500273, -0.498857, -0.497912, -0.510927),
    "C": (-37.846772, -37.845355, -37.844411, -37.861317),
    "N": (-54.583861, -54.582445, -54.581501, -54.598897),
    "O": (-75.064579, -75.063162, -75.062219, -75.079532),
    "F": (-99.718730, -99.717314, -99.716370, -99.733544),
}
# name, qm9pack column, factor to the base unit, MAE scale, reported unit
TARGETS = (
    ("mu", "Dipole_debye", 1.0, 1.0, "D"),
    ("alpha", "Polarizability_bohr3", 1.0, 1.0, "a0^3"),
    ("homo", "HOMO_au", HARTREE_TO_EV, 1000.0, "meV"),
    ("lumo", "LUMO_au", HARTREE_TO_EV, 1000.0, "meV"),
    ("r2", "R2_bohr2", 1.0, 1.0, "a0^2"),
    ("zpve", "ZPVE_au", HARTREE_TO_EV, 1000.0, "meV"),
    ("U0", "InternalEnergy_0K_au", HARTREE_TO_EV, 1000.0, "meV"),
    ("U", "InternalEnergy_298K_au", HARTREE_TO_EV, 1000.0, "meV"),
    ("H", "Enthalphy_298K_au", HARTREE_TO_EV, 1000.0, "meV"),
    ("G", "GibbsFreeEnergy_298K_au", HARTREE_TO_EV, 1000.0, "meV"),
    ("cv", "Heatcapacity_Cv_cal_mol_K", 1.0, 1.0, "cal/mol/K"),
)
TASKS = tuple(t[0] for t in TARGETS)
ATOMIZED = ("U0", "U", "H", "G")          # minus the atomic reference energies
NODE_FEATURES = 8
EDGE_FEATURES = 2
SPLIT_SIZES = {"test": 10_000, "val": 10_000}  # train: the remaining 110,831 (Nash-MTL / FAMO)


# ----------------------------------------------------------------------------- source and cache


def source_files() -> list[Path]:
    """The four qm9pack CSVs (found without importing qm9pack, whose import needs pkg_resources)."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("qm9 needs the PyPI package qm9pack (it ships the QM9 CSV): pip install qm9pack "
                          "or pip install 'mtl-imbalance[graph]'")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    files = [folder / f"qm9_part{i}.csv" for i in (1, 2, 3)]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"qm9pack is installed but its data files are missing: {missing}; reinstall qm9pack")
    return files


def cache_key(files: list[Path]) -> str:
    """Source fingerprint (name, size, mtime of every file) plus :data:`PROCESSING_VERSION`."""
    stats = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    blob = json.dumps({"files": stats, "version": PROCESSING_VERSION})
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _atomref_ev(elements: np.ndarray, ptr: np.ndarray) -> np.ndarray:
    """[M, 4] summed free-atom energies (eV) of each molecule for U0, U, H, G."""
    table = np.zeros((128, 4))
    for sym, refs in ATOMREF_HARTREE.items():
        table[ord(sym)] = refs
    per_atom = table[elements]                                     # [A, 4]
    return np.add.reduceat(per_atom, ptr[:-1], axis=0) * HARTREE_TO_EV


def parse_csv(files: list[Path]) -> dict[str, torch.Tensor]:
    """Parse the qm9pack CSVs into flat tensors: z [A], pos [A, 3], ptr [M+1], y [M, 11], index [M]."""
    import pandas as pd

    cols = ["Index", "N_atoms", "Elements", "XYZ_Ang"] + [t[1] for t in TARGETS]
    df = pd.concat([pd.read_csv(f, usecols=cols) for f in files], ignore_index=True).sort_values("Index")
    n_atoms = df["N_atoms"].to_numpy(np.int64)
    ptr = np.concatenate([[0], np.cumsum(n_atoms)])
    symbols = "".join(df["Elements"].str.replace(r"[\[\]', ]", "", regex=True))
    xyz = np.array(",".join(df["XYZ_Ang"].str.replace("[", "", regex=False).str.replace("]", "", regex=False))
                   .split(","), dtype=np.float64)
    _check_parse(df, symbols, xyz, ptr)
    elements = np.frombuffer(symbols.encode(), dtype=np.uint8)      # ASCII codes [A]
    z = np.zeros(128, np.uint8)
    for sym, num in ATOMIC_NUMBER.items():
        z[ord(sym)] = num
    y = np.stack([df[col].to_numpy(np.float64) * f for _, col, f, _, _ in TARGETS], 1)   # [M, 11]
    refs = _atomref_ev(elements, ptr)                                                     # [M, 4]
    for k, name in enumerate(ATOMIZED):
        y[:, TASKS.index(name)] -= refs[:, k]
    return {"z": torch.from_numpy(z[elements]), "pos": torch.from_numpy(xyz.reshape(-1, 3).astype(np.float32)),
            "ptr": torch.from_numpy(ptr), "y": torch.from_numpy(y),
            "index": torch.from_numpy(df["Index"].to_numpy(np.int64, copy=True))}


def _check_parse(df, symbols: str, xyz: np.ndarray, ptr: np.ndarray) -> None:
    if len(df) != N_MOLECULES:
        raise ValueError(f"qm9pack CSV has {len(df)} molecules, expected {N_MOLECULES}")
    if len(symbols) != ptr[-1] or set(symbols) - set(ELEMENTS):
        raise ValueError(f"qm9pack Elements column: {len(symbols)} atoms parsed for {ptr[-1]} expected, "
                         f"symbols {sorted(set(symbols))} (valid: {list(ELEMENTS)})")
    if xyz.size != 3 * ptr[-1]:
        raise ValueError(f"qm9pack XYZ_Ang column: {xyz.size} coordinates parsed, expected 3 × {ptr[-1]}")


def load_tensors(cache: Path | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """The processed tensors, from the cache when it matches the source (and verifies), else parsed
    and cached atomically under a lock (:mod:`mtl.data.cache`)."""
    files = source_files()
    key = cache_key(files)
    path = (Path(cache) if cache else cache_dir() / "qm9") / f"qm9_v{PROCESSING_VERSION}_{key}.pt"

    def shapes(d):
        atoms = int(d["ptr"][-1])
        return {"z": (atoms,), "pos": (atoms, 3), "ptr": (N_MOLECULES + 1,), "y": (N_MOLECULES, len(TARGETS)),
                "index": (N_MOLECULES,)}

    data, parsed = cached_entry(path, lambda p: load_tensors_checked(p, shapes),
                                lambda tmp: save_tensors(parse_csv(files), tmp))
    return data, {"cache": str(path), "parsed": parsed}


# ----------------------------------------------------------------------------- graphs


def _pyg():
    try:
        import torch_geometric.data as pyg_data
    except ImportError as e:
        raise ImportError("qm9 graphs need torch_geometric: pip install torch_geometric "
                          "or pip install 'mtl-imbalance[graph]'") from e
    return pyg_data


def complete_edges(counts: torch.Tensor) -> torch.Tensor:
    """[2, E] every ordered pair (i ≠ j) inside each molecule of a batch with ``counts`` atoms each."""
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])                      # [B+1]
    mol = torch.repeat_interleave(torch.arange(len(counts)), counts)               # [N]
    fan = counts[mol]                                                              # [N] partners incl. self
    src = torch.repeat_interleave(torch.arange(len(mol)), fan)                     # [N·n]
    start = torch.repeat_interleave(fan.cumsum(0) - fan, fan)
    dst = ptr[mol[src]] + torch.arange(len(src)) - start
    keep = src != dst
    return torch.stack([src[keep], dst[keep]])


class MoleculeCollate:
    """Collates ``(Data(z, pos), targets)`` samples into a PyG ``Batch`` with node/edge features (see module doc)."""

    def __init__(self, cutoff: float | None = None):
        if cutoff is not None and not cutoff > 0:
            raise ValueError(f"cutoff must be positive (Å) or None for a complete graph, got {cutoff}")
        self.cutoff = cutoff

    def __call__(self, samples):
        mols, ys = zip(*samples)
        z = torch.cat([m.z for m in mols]).long()                                   # [N]
        pos = torch.cat([m.pos for m in mols])                                      # [N, 3]
        counts = torch.tensor([len(m.z) for m in mols])                             # [B]
        edge_index = complete_edges(counts)                                         # [2, E]
        src, dst = edge_index
        dist = (pos[src] - pos[dst]).norm(dim=-1)                                   # [E]
        bonded = dist < BOND_TOLERANCE * (COVALENT_RADIUS[z[src]] + COVALENT_RADIUS[z[dst]])
        x = node_features(z, src, dst, bonded)                                      # [N, 8]
        if self.cutoff is not None:
            keep = dist < self.cutoff
            edge_index, dist, bonded = edge_index[:, keep], dist[keep], bonded[keep]
        batch = torch.repeat_interleave(torch.arange(len(counts)), counts)
        graph = _pyg().Batch(x=x, z=z, pos=pos, edge_index=edge_index,
                             edge_attr=torch.stack([dist, bonded.float()], 1), batch=batch,
                             ptr=torch.cat([counts.new_zeros(1), counts.cumsum(0)]))
        return graph, {t: torch.stack([y[t] for y in ys]) for t in ys[0]}


def node_features(z: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, bonded: torch.Tensor) -> torch.Tensor:
    """[N, 8]: one-hot H,C,N,O,F, atomic number, covalent degree, number of bonded hydrogens."""
    kinds = torch.tensor([ATOMIC_NUMBER[e] for e in ELEMENTS])
    onehot = (z[:, None] == kinds[None]).float()                                    # [N, 5]
    degree = torch.zeros(len(z)).index_add_(0, src, bonded.float())
    n_h = torch.zeros(len(z)).index_add_(0, src, (bonded & (z[dst] == 1)).float())
    return torch.cat([onehot, z[:, None].float(), degree[:, None], n_h[:, None]], 1)


class QM9Graphs(Dataset):
    """Molecules ``rows`` of the processed tensors; a sample is ``(Data(z, pos), {task: z-scored target})``."""

    def __init__(self, data: dict[str, torch.Tensor], rows: np.ndarray, y_std: torch.Tensor):
        self.z, self.pos, self.ptr = data["z"], data["pos"], data["ptr"]
        self.rows = torch.as_tensor(rows)
        self.y = y_std                                                              # [M, 11] float32
        self._data_cls = _pyg().Data

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int):
        i = int(self.rows[k])
        a, b = int(self.ptr[i]), int(self.ptr[i + 1])
        y = self.y[i]
        return self._data_cls(z=self.z[a:b], pos=self.pos[a:b]), {t: y[j] for j, t in enumerate(TASKS)}


# ----------------------------------------------------------------------------- the dataset


def split_rows(n: int, seed: int) -> dict[str, np.ndarray]:
    """Seeded permutation: test = first 10k, val = next 10k, train = the rest (Nash-MTL / FAMO)."""
    perm = np.random.default_rng(seed).permutation(n)
    a, b = SPLIT_SIZES["test"], SPLIT_SIZES["test"] + SPLIT_SIZES["val"]
    return {"test": perm[:a], "val": perm[a:b], "train": perm[b:]}


def _subset(rows: np.ndarray, n: int | None, name: str) -> np.ndarray:
    if n is None:
        return rows
    if not 1 <= int(n) <= len(rows):
        raise ValueError(f"{name} must be in [1, {len(rows)}] or None for the whole split, got {n}")
    return rows[: int(n)]


@register("qm9")
def load_qm9(tasks=TASKS, n_train: int | None = None, n_val: int | None = None, n_test: int | None = None,
             seed: int = 0, cutoff: float | None = None, cache=None) -> DataBundle:
    """QM9 with the 11 targets of the MTL literature; ``n_*`` take the first molecules of each fixed split."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"qm9 has no task {unknown}; valid tasks: {TASKS}")
    data, how = load_tensors(cache)
    rows = split_rows(len(data["index"]), seed)
    rows = {s: _subset(rows[s], n, f"n_{s}") for s, n in (("train", n_train), ("val", n_val), ("test", n_test))}
    y = data["y"]                                                                   # [M, 11] float64
    mean, std = y[rows["train"]].mean(0), y[rows["train"]].std(0).clamp(min=1e-12)  # train statistics
    y_std = ((y - mean) / std).float()
    task_list = [T.regression(name, float(mean[j]), float(std[j]), scale, unit)
                 for j, (name, _, _, scale, unit) in enumerate(TARGETS) if name in tasks]
    splits = {s: QM9Graphs(data, r, y_std) for s, r in rows.items()}
    return DataBundle("qm9", task_list, splits["train"], splits["val"], splits["test"], collate=MoleculeCollate(cutoff),
                      info={"node_features": NODE_FEATURES, "edge_features": EDGE_FEATURES, "cutoff": cutoff,
                            "sizes": {s: len(r) for s, r in rows.items()}, "units": {t[0]: t[4] for t in TARGETS},
                            **how})
