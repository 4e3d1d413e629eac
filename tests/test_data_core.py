"""The embedded datasets of the foundation: registry, shapes, ranges, determinism, disjoint splits."""
import gzip
import hashlib

import numpy as np
import pytest
import torch

import mtl.data as D
from mtl.data import multimnist, scenes


def test_registry_lists_and_rejects():
    assert {"scenes", "multimnist"} <= set(D.names())
    with pytest.raises(KeyError) as e:
        D.load("nyu")
    assert "scenes" in str(e.value) and "unknown dataset 'nyu'" in str(e.value)


def test_scenes_shapes_dtypes_ranges(tiny_scenes):
    b = tiny_scenes
    assert [t.name for t in b.tasks] == ["segmentation", "depth", "normal", "edge"]
    assert len(b.train) == 6 and len(b.val) == 3 and len(b.test) == 3
    x, y = b.train[0]
    assert x.shape == (3, 16, 24) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert y["segmentation"].shape == (16, 24) and y["segmentation"].dtype == torch.int64
    assert 0 <= y["segmentation"].min() and y["segmentation"].max() < len(scenes.CLASSES)
    assert y["depth"].shape == (1, 16, 24) and (y["depth"] > 0).all()
    assert torch.allclose(y["normal"].norm(dim=0), torch.ones(16, 24), atol=1e-4)
    assert set(y["edge"].unique().tolist()) <= {0.0, 1.0}
    assert b.info["meta"]["train"][:3] == [{"scene": 0, "scan": s} for s in range(3)]


def test_scenes_deterministic_and_disjoint(tmp_path):
    cfg = scenes.SceneConfig(height=16, width=16, train_scenes=2, val_scenes=1, test_scenes=1, scans_per_scene=2,
                             seed=3)
    scenes.generate(cfg, tmp_path / "a")
    scenes.generate(cfg, tmp_path / "b")

    def digests(root, split):
        return [hashlib.sha1(np.load(p).tobytes()).hexdigest() for p in sorted((root / split / "image").glob("*.npy"))]
    assert digests(tmp_path / "a", "train") == digests(tmp_path / "b", "train")
    train, test = set(digests(tmp_path / "a", "train")), set(digests(tmp_path / "a", "test"))
    assert not train & test
    other = scenes.SceneConfig(**{**cfg.__dict__, "seed": 4})
    assert other.key() != cfg.key()


def test_scenes_rooms_differ_and_have_furniture():
    rng = np.random.default_rng(0)
    room = scenes.Room(rng)
    out = scenes.render(room, *scenes.camera(room, rng), 32, 48, 60.0, rng)
    labels = set(np.unique(out["label"]).tolist())
    assert scenes.C["wall"] in labels and len(labels) >= 4
    assert out["edge"].mean() < 0.3


def test_scenes_bad_parameters():
    with pytest.raises(ValueError, match="multiples of 8"):
        D.load("scenes", height=20, width=24)
    with pytest.raises(ValueError, match="valid tasks"):
        D.load("scenes", tasks=("segmentation", "saliency"))
    with pytest.raises(ValueError, match="train_scenes"):
        D.load("scenes", train_scenes=0)


def test_multimnist_pools_disjoint_and_samples(tiny_mnist):
    pools = multimnist.digit_pools(0)
    hashes = {s: {hashlib.sha1(x.tobytes()).hexdigest() for x in pools[s][0]} for s in pools}
    assert (not hashes["train"] & hashes["val"] and not hashes["train"] & hashes["test"]
            and not hashes["val"] & hashes["test"])
    assert sum(len(p[0]) for p in pools.values()) == 5000
    x, y = tiny_mnist.train[0]
    assert x.shape == (1, 28, 28) and set(y) == {"left", "right"}
    assert all(0 <= int(v) <= 9 for v in y.values())
    again = D.load("multimnist", n_train=64, n_val=32, n_test=32)
    assert torch.equal(again.train.tensors[0], tiny_mnist.train.tensors[0])


def test_multimnist_composition_puts_digits_in_corners():
    imgs = np.zeros((2, 28, 28), np.float32)
    imgs[0, :4, :4] = 255      # a blob at the digit's top-left
    imgs[1, -4:, -4:] = 255    # a blob at the digit's bottom-right
    x, y = multimnist.compose(imgs, np.array([3, 7]), 8, np.random.default_rng(0), offset=8)
    raw = x * multimnist.STD + multimnist.MEAN
    first = y[:, 0] == 3
    assert raw[first, 0, :3, :3].mean() > 0.5 and raw[first, 0, -3:, -3:].mean() > 0.5
    assert raw[first, 0, 12:16, 12:16].abs().max() < 0.05


def test_multimnist_reads_raw_idx_files(tmp_path):
    def write(name, arr, magic):
        header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
        with gzip.open(tmp_path / f"{name}.gz", "wb") as f:
            f.write(header + arr.astype(np.uint8).tobytes())
    rng = np.random.default_rng(0)
    write("train-images-idx3-ubyte", rng.integers(0, 255, (60, 28, 28)), 3)
    write("train-labels-idx1-ubyte", rng.integers(0, 10, 60), 1)
    write("t10k-images-idx3-ubyte", rng.integers(0, 255, (20, 28, 28)), 3)
    write("t10k-labels-idx1-ubyte", rng.integers(0, 10, 20), 1)
    b = D.load("multimnist", n_train=16, n_val=8, n_test=8, mnist_root=tmp_path)
    assert b.info["pool_sizes"] == {"train": 50, "val": 10, "test": 20}
    with pytest.raises(FileNotFoundError, match="t10k-images"):
        (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
        D.load("multimnist", mnist_root=tmp_path)


def test_bundle_errors(tiny_mnist):
    with pytest.raises(ValueError, match="valid"):
        tiny_mnist.split("dev")
    with pytest.raises(KeyError, match="tasks"):
        tiny_mnist.task("middle")
    x, y = next(iter(tiny_mnist.select(["right"]).loader("train", 8)))
    assert x.shape == (8, 1, 28, 28) and y["right"].shape == (8,)
