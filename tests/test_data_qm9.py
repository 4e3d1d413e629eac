"""``qm9`` from qm9pack: units against PyG's QM9, the fixed split, the cache, the graphs and the MPNN."""
from pathlib import Path

import numpy as np
import pytest
import torch

from mtl import data as D
from mtl.data import qm9 as Q
from mtl.models import create_model

# PyG's QM9: atomrefs in eV for U0, U, H, G (torch_geometric/datasets/qm9.py, keys 7-10) ...
PYG_ATOMREF_EV = {
    "H": (-13.61312172, -13.5745904, -13.54887564, -13.90303183),
    "C": (-1029.86312267, -1029.82456413, -1029.79887659, -1030.25891228),
    "N": (-1485.30251237, -1485.26398105, -1485.2382935, -1485.71166277),
    "O": (-2042.61123593, -2042.5727046, -2042.54701705, -2043.01812778),
    "F": (-2713.48485589, -2713.44632457, -2713.42063702, -2713.88796536),
}
# ... and QM9[0].y (methane, gdb_1) at the literature's indices [0, 1, 2, 3, 5, 6, 12, 13, 14, 15, 11]
PYG_METHANE = [0.0, 13.21, -10.5499, 3.1865, 35.3641, 1.2177, -17.1722, -17.2868, -17.3897, -16.1519, 6.469]


def test_atomrefs_match_pyg():
    for el, refs in Q.ATOMREF_HARTREE.items():
        np.testing.assert_allclose(np.array(refs) * Q.HARTREE_TO_EV, PYG_ATOMREF_EV[el], atol=1e-4)


def test_units_match_pyg_on_methane(qm9_tensors):
    d = qm9_tensors
    assert len(d["index"]) == Q.N_MOLECULES and int(d["index"][0]) == 1
    np.testing.assert_allclose(d["y"][0].numpy(), PYG_METHANE, atol=2e-4)
    assert d["z"][:5].tolist() == [6, 1, 1, 1, 1]
    assert set(d["z"].unique().tolist()) == {1, 6, 7, 8, 9}
    assert int(d["ptr"][-1]) == len(d["z"]) == len(d["pos"]) and (d["ptr"].diff() >= 1).all()
    # PyG's well-known mean of U0_atom (target 12) is about -76.1 eV
    assert abs(float(d["y"][:, Q.TASKS.index("U0")].mean()) + 76.1) < 0.1


def test_cache_reused_atomic_and_keyed(qm9_tensors, tmp_path, monkeypatch):
    _, how = Q.load_tensors()
    assert how["parsed"] is False
    assert Path(how["cache"]).is_file()
    assert not [p for p in Path(how["cache"]).parent.iterdir() if ".tmp" in p.name]   # written atomically
    files = [tmp_path / f"f{i}.csv" for i in range(2)]
    for f in files:
        f.write_text("a,b\n1,2\n")
    key = Q.cache_key(files)
    monkeypatch.setattr(Q, "PROCESSING_VERSION", Q.PROCESSING_VERSION + 1)
    assert Q.cache_key(files) != key                                   # a new processing version
    monkeypatch.undo()
    files[1].write_text("a,b\n1,22\n")
    assert Q.cache_key(files) != key                                   # a changed source


def test_fixed_split_subsets_and_standardisation(qm9_tensors):
    rows = Q.split_rows(Q.N_MOLECULES, 0)
    assert {k: len(v) for k, v in rows.items()} == {"test": 10_000, "val": 10_000, "train": 110_831}
    assert len(np.unique(np.concatenate(list(rows.values())))) == Q.N_MOLECULES
    np.testing.assert_array_equal(Q.split_rows(Q.N_MOLECULES, 0)["train"], rows["train"])
    b = D.load("qm9", n_train=500, n_val=50, n_test=60)
    assert (len(b.train), len(b.val), len(b.test)) == (500, 50, 60)
    np.testing.assert_array_equal(b.train.rows.numpy(), rows["train"][:500])
    y = torch.stack([b.train[i][1]["U0"] for i in range(500)])
    assert abs(float(y.mean())) < 1e-4 and abs(float(y.std()) - 1) < 1e-2   # z-scored on train statistics
    t = b.task("U0")
    assert t.info["scale"] == 1000 and t.info["unit"] == "meV" and b.task("mu").info["unit"] == "D"
    assert [t.name for t in b.tasks] == list(Q.TASKS)


def test_collate_builds_complete_graphs_with_features(qm9_tensors):
    b = D.load("qm9", n_train=8, n_val=1, n_test=1)
    samples = [b.train[i] for i in range(4)]
    g, y = b.collate(samples)
    n = torch.tensor([len(s[0].z) for s in samples])
    assert g.edge_index.shape[1] == int((n * (n - 1)).sum()) and g.num_graphs == 4
    src, dst = g.edge_index
    assert (g.batch[src] == g.batch[dst]).all() and (src != dst).all()          # within molecules, no self loops
    torch.testing.assert_close(g.edge_attr[:, 0], (g.pos[src] - g.pos[dst]).norm(dim=-1))
    assert g.x.shape == (int(n.sum()), Q.NODE_FEATURES) and y["mu"].shape == (4,)
    # methane: the carbon has 4 covalent neighbours, all hydrogens, each hydrogen has one
    methane = Q.QM9Graphs(qm9_tensors, np.array([0]), qm9_tensors["y"].float())
    meth, _ = Q.MoleculeCollate()([methane[0]])
    assert meth.x[:, 6].tolist() == [4, 1, 1, 1, 1] and meth.x[:, 7].tolist() == [4, 0, 0, 0, 0]
    cut, _ = Q.MoleculeCollate(cutoff=2.0)(samples)
    assert cut.edge_index.shape[1] < g.edge_index.shape[1] and (cut.edge_attr[:, 0] < 2.0).all()
    torch.testing.assert_close(cut.x, g.x)                                      # features come from the full graph


def test_mpnn_shapes_and_errors(qm9_tensors):
    b = D.load("qm9", n_train=8, n_val=1, n_test=1, tasks=("mu", "cv"))
    model = create_model("hps", "mpnn", b.tasks, backbone_kw=dict(dim=16))
    x, y = next(iter(b.loader("train", 5)))
    out = model(x)
    assert set(out) == {"mu", "cv"} and out["mu"].shape == (5,)
    with pytest.raises(ValueError, match="valid tasks"):
        D.load("qm9", tasks=("gap",))
    with pytest.raises(ValueError, match="n_train must be in"):
        D.load("qm9", n_train=200_000)
    with pytest.raises(ValueError, match="cutoff must be positive"):
        Q.MoleculeCollate(cutoff=0)


def test_single_task_mpnn_beats_the_training_mean(qm9_tensors):
    """A radius-2 Å MPNN (complete graphs are ~8x slower on CPU) trained 4 epochs on 1000 molecules."""
    from mtl import weighting as W
    from mtl.train import TrainConfig, fit

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        b = D.load("qm9", n_train=1000, n_val=50, n_test=500, cutoff=2.0, tasks=("U0",))
        torch.manual_seed(0)
        model = create_model("hps", "mpnn", b.tasks, backbone_kw=dict(dim=32))
        hist = fit(model, b, W.create("ew"), TrainConfig(epochs=4, batch_size=32, lr=3e-3, device="cpu"))
    finally:
        torch.set_num_threads(n)
    t = b.task("U0")
    z = torch.stack([b.test[i][1]["U0"] for i in range(len(b.test))])        # z-scored with the train mean
    mean_mae = float(z.abs().mean()) * t.info["std"] * t.info["scale"]        # meV of predicting the train mean
    mae = hist.final["U0"]["mae"]
    print(f"QM9 U0 test MAE: MPNN {mae:.0f} meV vs training mean {mean_mae:.0f} meV")
    assert mae < 0.6 * mean_mae
