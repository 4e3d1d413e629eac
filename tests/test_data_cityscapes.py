"""``cityscapes`` on tiny fixtures in the three label layouts (label_7/, label_19/, LibMTL's label/)."""
import numpy as np
import pytest

from fixtures.realdata import write_dense
from mtl import data as D
from mtl.data.dense import DatasetFormatError, DatasetNotFoundError


@pytest.mark.parametrize("label_dir, classes", [("label_7", 7), ("label_19", 19), ("label", 7)])
def test_each_layout_loads_auto_detected(tmp_path, label_dir, classes):
    root = write_dense(tmp_path / "cs", label_dirs=(label_dir,), num_classes=classes, fields=("depth",))
    b = D.load("cityscapes", root=root)
    assert b.info["label_dir"] == label_dir and b.task("segmentation").out_channels == classes
    assert b.info["depth_kind"] == "disparity" and [t.name for t in b.tasks] == ["segmentation", "depth"]
    x, y = next(iter(b.loader("test", 3)))
    assert x.shape == (3, 3, 8, 16) and y["depth"].shape == (3, 1, 8, 16)
    seg = y["segmentation"]
    assert seg.min() >= -1 and seg.max() < classes
    np.testing.assert_array_equal(seg[0].numpy(), np.load(root / "val" / label_dir / "0.npy"))


def test_explicit_choice_when_several_layouts(tmp_path):
    root = write_dense(tmp_path / "cs", label_dirs=("label_7", "label_19"), fields=("depth",))
    with pytest.raises(DatasetFormatError, match=r"several segmentation folders \['label_7', 'label_19'\]"):
        D.load("cityscapes", root=root)
    b = D.load("cityscapes", root=root, label_dir="label_19")
    assert b.task("segmentation").out_channels == 19
    np.testing.assert_array_equal(b.test[1][1]["segmentation"].numpy(), np.load(root / "val" / "label_19" / "1.npy"))


def test_depth_only_needs_no_label_folder(tmp_path):
    root = write_dense(tmp_path / "cs", label_dirs=(), fields=("depth",))
    b = D.load("cityscapes", root=root, tasks=("depth",))
    assert [t.name for t in b.tasks] == ["depth"]


def test_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        D.load("cityscapes", root=tmp_path / "nowhere")
    root = write_dense(tmp_path / "cs", label_dirs=(), fields=("depth",))
    with pytest.raises(DatasetNotFoundError, match="no segmentation folder.*label_7"):
        D.load("cityscapes", root=root)
    with pytest.raises(ValueError, match="label_dir must be one of"):
        D.load("cityscapes", root=root, label_dir="label_8")
    root = write_dense(tmp_path / "cs19", label_dirs=("label_19",), fields=("depth",))
    with pytest.raises(DatasetFormatError, match=r"label_7/0\.npy|class values"):
        D.load("cityscapes", root=root, label_dir="label_19", num_classes=7)   # 19-class labels read as 7 classes
