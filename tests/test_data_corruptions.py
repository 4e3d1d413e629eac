"""Corruptions of seed 004 §V-E: label noise, depth/normal noise and scene/scan subsampling."""
import pytest
import torch

from fixtures.realdata import write_dense
from mtl import data as D
from mtl.data.corruptions import corrupt, depth_noise, normal_noise, segmentation_noise, subsample


@pytest.fixture(scope="module")
def scenes():
    return D.load("scenes", height=16, width=24, train_scenes=4, val_scenes=1, test_scenes=1, scans_per_scene=4)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_segmentation_noise_flips_five_classes_to_one_wrong_class_at_the_rate():
    label = torch.arange(8).repeat_interleave(2000).reshape(160, 100)        # 8 classes, 2000 pixels each
    label[0, :50] = -1
    out = segmentation_noise(label, _gen(), num_classes=13, rate=0.5, n_classes=5)
    changed = out != label
    assert (out[label == -1] == -1).all()                                    # ignore pixels untouched
    flipped = label[changed].unique()
    assert len(flipped) == 5
    for c in flipped.tolist():
        frac = float(changed[label == c].float().mean())
        assert abs(frac - 0.5) < 0.05
        targets = out[changed & (label == c)].unique()
        assert len(targets) == 1 and int(targets) != c and 0 <= int(targets) < 13   # one wrong category
    few = torch.tensor([[0, 0, 3, 3]]).repeat(50, 50)                       # 2 classes present: both chosen
    assert set(few[segmentation_noise(few, _gen(1), 13) != few].unique().tolist()) == {0, 3}


def test_depth_and_normal_noise_keep_validity():
    depth = torch.rand(1, 40, 40) * 5 + 0.5
    depth[0, :10] = 0
    out = depth_noise(depth, _gen(), sigma=0.3)
    assert (out[0, :10] == 0).all() and (out[0, 10:] > 0).all()
    assert abs(float((out - depth)[0, 10:].std()) - 0.3) < 0.03
    n = torch.nn.functional.normalize(torch.randn(3, 40, 40), dim=0)
    n[:, :5] = 0
    out = normal_noise(n, _gen(), sigma=0.2)
    assert (out[:, :5] == 0).all()
    torch.testing.assert_close(out[:, 5:].norm(dim=0), torch.ones(35, 40))
    cos = (out * n).sum(0)[5:]
    assert 0.8 < float(cos.mean()) < 0.999                                   # perturbed, not replaced


def test_corrupt_changes_labels_only_deterministically_and_keeps_test_clean(scenes):
    noisy = corrupt(scenes, label_noise=0.5, depth_sigma=0.1, normal_sigma=0.1, seed=3)
    x0, y0 = scenes.train[2]
    x1, y1 = noisy.train[2]
    torch.testing.assert_close(x1, x0)                                       # images untouched
    assert (y1["segmentation"] != y0["segmentation"]).any() and not torch.equal(y1["depth"], y0["depth"])
    torch.testing.assert_close(y1["edge"], y0["edge"])                       # edges are not corrupted
    assert noisy.test is scenes.test and noisy.val is scenes.val
    again = corrupt(scenes, label_noise=0.5, depth_sigma=0.1, normal_sigma=0.1, seed=3)
    torch.testing.assert_close(again.train[2][1]["depth"], y1["depth"])        # same seed, same noise
    torch.testing.assert_close(noisy.train[2][1]["depth"], y1["depth"])        # same noise every epoch
    other = corrupt(scenes, label_noise=0.5, depth_sigma=0.1, seed=4)
    assert not torch.equal(other.train[2][1]["depth"], y1["depth"])
    assert torch.equal(scenes.train[2][1]["depth"], y0["depth"])              # the source bundle is unchanged
    with_val = corrupt(scenes, depth_sigma=0.1, splits=("train", "val"))
    assert not torch.equal(with_val.val[0][1]["depth"], scenes.val[0][1]["depth"])


def test_subsampling_by_scene_and_scan(scenes):
    rows = scenes.info["meta"]["train"]
    half = corrupt(scenes, scenes=0.5, seed=1)
    kept = half.info["meta"]["train"]
    assert len(half.train) == len(kept) == 8 and len({r["scene"] for r in kept}) == 2
    one = corrupt(scenes, scenes=1)
    assert len({r["scene"] for r in one.info["meta"]["train"]}) == 1 and len(one.train) == 4
    quarter_scans = corrupt(scenes, scans=0.25)
    counts = {}
    for r in quarter_scans.info["meta"]["train"]:
        counts[r["scene"]] = counts.get(r["scene"], 0) + 1
    assert counts == {s: 1 for s in range(4)}
    assert len(corrupt(scenes, scans=3).train) == 12
    keep = subsample(rows, scenes=0.5, seed=1)
    torch.testing.assert_close(half.train[0][0], scenes.train[keep[0]][0])
    # noise is keyed by the original index, so subsampling does not change a sample's noise
    both = corrupt(scenes, label_noise=0.5, scenes=0.5, seed=1)
    full = corrupt(scenes, label_noise=0.5, seed=1)
    assert torch.equal(both.train[1][1]["segmentation"], full.train[keep[1]][1]["segmentation"])
    assert corrupt(scenes, scenes=0.5, seed=1).info["meta"]["train"] == kept   # deterministic by seed


def test_works_on_nyuv2_and_rejects_bad_requests(tmp_path, scenes):
    b = D.load("nyuv2", root=write_dense(tmp_path / "nyu", sizes={"train": 4, "val": 2}))
    noisy = corrupt(b, label_noise=0.5, normal_sigma=0.2)
    assert noisy.train[0][1]["segmentation"].shape == b.train[0][1]["segmentation"].shape
    with pytest.raises(ValueError, match=r"info\['meta'\]\['train'\]"):
        corrupt(b, scenes=0.5)
    with pytest.raises(ValueError, match="test split stays clean"):
        corrupt(scenes, label_noise=0.5, splits=("test",))
    with pytest.raises(ValueError, match=r"noise asked for \['segmentation'\]"):
        corrupt(scenes.select(["depth"]), label_noise=0.5)
    with pytest.raises(ValueError, match="only 4 are available"):
        corrupt(scenes, scans=12)
    with pytest.raises(ValueError, match="fraction"):
        corrupt(scenes, scenes=1.5)
    with pytest.raises(ValueError, match="flip rate"):
        corrupt(scenes, label_noise=2)
