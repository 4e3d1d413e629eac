"""``nyuv2`` on a tiny fixture in MTAN's .npy layout, and one clear error per kind of malformed input."""
import shutil

import numpy as np
import pytest
import torch

from fixtures.realdata import write_dense
from mtl import data as D
from mtl.data.dense import DatasetFormatError, DatasetNotFoundError


@pytest.fixture()
def root(tmp_path):
    return write_dense(tmp_path / "nyuv2", sizes={"train": 10, "val": 3})


def test_loads_with_shapes_dtypes_and_holdout(root):
    b = D.load("nyuv2", root=root, val_fraction=0.2, seed=1)
    assert [t.name for t in b.tasks] == ["segmentation", "depth", "normal"]
    assert b.task("segmentation").out_channels == 13
    assert (len(b.train), len(b.val), len(b.test)) == (8, 2, 3)
    assert not set(b.train.indices) & set(b.val.indices)                # the hold-out is disjoint from train
    assert b.val.split == "train" and b.test.split == "val"             # the layout's val/ is the test set
    x, y = next(iter(b.loader("train", 4)))
    assert x.shape == (4, 3, 8, 16) and x.dtype == torch.float32
    assert y["segmentation"].shape == (4, 8, 16) and y["segmentation"].dtype == torch.int64
    assert y["depth"].shape == (4, 1, 8, 16) and y["normal"].shape == (4, 3, 8, 16)
    first = np.load(root / "train" / "image" / f"{b.train.indices[0]}.npy")
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), first, rtol=1e-6)
    again = D.load("nyuv2", root=root, val_fraction=0.2, seed=1)
    assert again.val.indices == b.val.indices                           # deterministic by seed


def test_val_fraction_zero_is_libmtl_protocol(root):
    b = D.load("nyuv2", root=root, val_fraction=0, tasks=("depth",))
    assert b.val is b.test and len(b.train) == 10 and "test" in b.info["val_protocol"]
    assert list(b.train[0][1]) == ["depth"]


def _save(path, a):
    np.save(path, a)


BREAKERS = {  # name -> (how to break the fixture, error type, words the message must contain)
    "missing root": (lambda r: shutil.rmtree(r), DatasetNotFoundError, ["does not exist", "mtan"]),
    "missing field folder": (lambda r: shutil.rmtree(r / "train" / "normal"), DatasetNotFoundError,
                             ["train/normal", "mtan"]),
    "numbering gap": (lambda r: (r / "val" / "depth" / "1.npy").rename(r / "val" / "depth" / "7.npy"),
                      DatasetFormatError, ["gaps", "1.npy"]),
    "count mismatch": (lambda r: (r / "val" / "label" / "2.npy").unlink(), DatasetFormatError, ["different numbers"]),
    "bad file name": (lambda r: _save(r / "val" / "image" / "x.npy", np.zeros(1)), DatasetFormatError, ["x"]),
    "image 0-255": (lambda r: _save(r / "val" / "image" / "0.npy", np.full((8, 16, 3), 200, np.uint8)),
                    DatasetFormatError, ["0.npy", "uint8", "divide by 255"]),
    "image out of range": (lambda r: _save(r / "val" / "image" / "0.npy", np.full((8, 16, 3), 3.0)),
                           DatasetFormatError, ["values in [3, 3]", "[0, 1]"]),
    "image shape": (lambda r: _save(r / "val" / "image" / "0.npy", np.zeros((8, 16))), DatasetFormatError,
                    ["shape (8, 16)", "H×W×3"]),
    "label range": (lambda r: _save(r / "val" / "label" / "1.npy", np.full((8, 16), 13.0)), DatasetFormatError,
                    ["label/1.npy", "class values", "[-1, 12]"]),
    "label non-integer": (lambda r: _save(r / "val" / "label" / "1.npy", np.full((8, 16), 0.5)), DatasetFormatError,
                          ["non-integer"]),
    "label size": (lambda r: _save(r / "val" / "label" / "1.npy", np.zeros((4, 16))), DatasetFormatError,
                   ["size (4, 16)", "image's (8, 16)"]),
    "depth negative": (lambda r: _save(r / "val" / "depth" / "2.npy", -np.ones((8, 16, 1), np.float32)),
                       DatasetFormatError, ["depth/2.npy", "≥ 0"]),
    "depth nan": (lambda r: _save(r / "val" / "depth" / "2.npy", np.full((8, 16, 1), np.nan, np.float32)),
                  DatasetFormatError, ["non-finite"]),
    "normal range": (lambda r: _save(r / "val" / "normal" / "0.npy", np.full((8, 16, 3), 2.0, np.float32)),
                     DatasetFormatError, ["normal/0.npy", "[-1, 1]"]),
    "unreadable file": (lambda r: (r / "val" / "normal" / "0.npy").write_bytes(b"not numpy"), DatasetFormatError,
                        ["not a readable .npy"]),
}


@pytest.mark.parametrize("case", list(BREAKERS))
def test_each_malformed_input_has_its_own_error(root, case):
    breaker, error, words = BREAKERS[case]
    breaker(root)
    with pytest.raises(error) as info:
        D.load("nyuv2", root=root)
    msg = str(info.value)
    assert all(w in msg for w in words), msg


def test_argument_errors(root):
    with pytest.raises(DatasetNotFoundError, match="root=<folder>"):
        D.load("nyuv2")
    with pytest.raises(ValueError, match="valid tasks"):
        D.load("nyuv2", root=root, tasks=("edge",))
    with pytest.raises(ValueError, match="val_fraction"):
        D.load("nyuv2", root=root, val_fraction=1.0)
