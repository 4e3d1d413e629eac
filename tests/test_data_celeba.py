"""``celeba`` through torchvision's CelebA on a tiny fixture of the real files, and its clear errors."""
import shutil

import numpy as np
import pytest
import torch

from fixtures.realdata import CELEBA_ATTRIBUTES, write_celeba
from mtl import data as D
from mtl.data.dense import DatasetFormatError, DatasetNotFoundError


@pytest.fixture()
def root(tmp_path):
    return write_celeba(tmp_path / "data", n=9)


def _attr_table(root):
    lines = (root / "celeba" / "list_attr_celeba.txt").read_text().split("\n")[2:]
    return {ln.split()[0]: np.array(ln.split()[1:], int) for ln in lines if ln}


def test_loads_40_binary_tasks_per_official_partition(root):
    b = D.load("celeba", root=root, size=16)
    assert [t.name for t in b.tasks] == CELEBA_ATTRIBUTES and all(t.kind == "binary" for t in b.tasks)
    assert (len(b.train), len(b.val), len(b.test)) == (3, 3, 3)          # partition i % 3
    table = _attr_table(root)
    for split in ("train", "val", "test"):
        ds = b.split(split)
        for i in range(len(ds)):
            x, y = ds[i]
            assert x.shape == (3, 16, 16) and x.dtype == torch.float32
            expected = (table[ds.base.filename[i]] + 1) // 2                # -1/1 in the file -> 0/1
            np.testing.assert_array_equal([int(y[a]) for a in CELEBA_ATTRIBUTES], expected)
    x, y = next(iter(b.loader("train", 2)))
    assert x.shape == (2, 3, 16, 16) and y["Smiling"].shape == (2,)


def test_subset_sizes(root):
    b = D.load("celeba", root=root, size=8, n_train=2, n_test=1)
    assert (len(b.train), len(b.val), len(b.test)) == (2, 3, 1)


def _rewrite(path, fn):
    lines = path.read_text().split("\n")
    path.write_text("\n".join(fn(lines)))


BREAKERS = {
    "missing root": (lambda b: shutil.rmtree(b), DatasetNotFoundError, ["does not exist", "mmlab"]),
    "missing image folder": (lambda b: shutil.rmtree(b / "img_align_celeba"), DatasetNotFoundError,
                             ["img_align_celeba", "mmlab"]),
    "missing image": (lambda b: (b / "img_align_celeba" / "000004.jpg").unlink(), DatasetNotFoundError,
                      ["1 images", "000004.jpg"]),
    "wrong row count": (lambda b: _rewrite(b / "list_attr_celeba.txt", lambda ls: ["7", *ls[1:]]), DatasetFormatError,
                        ["list_attr_celeba.txt", "number of rows, 9"]),
    "39 attribute names": (lambda b: _rewrite(b / "list_attr_celeba.txt",
                                              lambda ls: [ls[0], " ".join(ls[1].split()[:39]), *ls[2:]]),
                           DatasetFormatError, ["names 39 attributes, expected 40"]),
    "attribute value 0": (lambda b: _rewrite(b / "list_attr_celeba.txt",
                                             lambda ls: [*ls[:3], ls[3].replace(" -1", " 0"), *ls[4:]]),
                          DatasetFormatError, ["000002.jpg", "-1/1"]),
    "short row": (lambda b: _rewrite(b / "list_landmarks_align_celeba.txt",
                                     lambda ls: [*ls[:4], " ".join(ls[4].split()[:-1]), *ls[5:]]),
                  DatasetFormatError, ["list_landmarks_align_celeba.txt", "line 5", "expected 11"]),
    "bad partition": (lambda b: _rewrite(b / "list_eval_partition.txt", lambda ls: [ls[0][:-1] + "3", *ls[1:]]),
                      DatasetFormatError, ["000001.jpg", "partition '3'"]),
    "names out of order": (lambda b: _rewrite(b / "identity_CelebA.txt", lambda ls: [ls[1], ls[0], *ls[2:]]),
                           DatasetFormatError, ["identity_CelebA.txt", "same order"]),
}
for _f in ("list_attr_celeba.txt", "list_eval_partition.txt", "identity_CelebA.txt", "list_bbox_celeba.txt",
           "list_landmarks_align_celeba.txt"):
    BREAKERS[f"missing {_f}"] = ((lambda f: lambda b: (b / f).unlink())(_f), DatasetNotFoundError, [_f, "mmlab"])


@pytest.mark.parametrize("case", list(BREAKERS))
def test_each_malformed_input_has_its_own_error(root, case):
    breaker, error, words = BREAKERS[case]
    breaker(root / "celeba")
    with pytest.raises(error) as info:
        D.load("celeba", root=root, size=8)
    assert all(w in str(info.value) for w in words), str(info.value)


def test_no_root_and_md5(root):
    with pytest.raises(DatasetNotFoundError, match="root=<folder holding celeba/>"):
        D.load("celeba")
    with pytest.raises(RuntimeError, match="not found or corrupted"):   # torchvision's md5 check, on request
        D.load("celeba", root=root, verify_md5=True)
