"""Section "Vision foundation models": Table IV transcription, offline checkpoints through timm, C4 logic."""
import pytest
import torch

from mtl.models.pretrained import create_vit
from mtl.studies import vfm

BK = {"model_name": "vit_tiny_patch16_224", "img_size": [16, 24], "patch_size": 8, "embed_dim": 16, "depth": 1,
      "num_heads": 2, "stages": 1}


def test_paper_table_recomputes_printed_delta():
    t = vfm.paper_table()
    assert len(t) == 21 and set(t.index.get_level_values(0)) == set(vfm.VFM_INITIALISATIONS)
    # the ImageNet-1K block is the printed reference, so own-STL Δm must match the printed Δm (rounding)
    blk = t.loc["imagenet-1k"]
    assert blk[vfm.DM_OWN].to_numpy() == pytest.approx(blk[vfm.DM_REF_PAPER].to_numpy(), abs=0.05)
    assert (t.xs("Single-task", level="method")[vfm.DM_OWN] == 0).all()


def test_vit_kw_matches_backbone_arguments():
    kw = vfm.vit_kw(BK)
    assert kw["img_size"] == (16, 24) and kw["in_chans"] == 3 and kw["patch_size"] == 8
    assert not {"stages", "model_name", "checkpoint"} & set(kw)


def test_patchify_first_patch():
    x = torch.arange(2 * 3 * 16 * 24, dtype=torch.float).reshape(2, 3, 16, 24)
    p = vfm._patchify(x, 8)
    assert p.shape == (2, 6, 3 * 64)
    assert torch.equal(p[1, 0], x[1, :, :8, :8].reshape(-1)) and torch.equal(p[0, 1], x[0, :, :8, 8:16].reshape(-1))


def test_random_checkpoint_round_trip_through_timm(tmp_path):
    path = vfm.make_checkpoint(tmp_path, "random", {"kind": "random", "seed": 3}, BK)
    saved = torch.load(path)
    vit = create_vit(BK["model_name"], checkpoint=path, **vfm.vit_kw(BK))
    for k, v in vit.state_dict().items():
        assert torch.equal(v, saved[k]), k
    mtime = path.stat().st_mtime_ns
    assert vfm.make_checkpoint(tmp_path, "random", {"kind": "random", "seed": 3}, BK) == path
    assert path.stat().st_mtime_ns == mtime                          # cached, not remade


@pytest.mark.parametrize("init", [
    {"kind": "masked", "dataset": "scenes", "epochs": 1, "batch_size": 4, "mask_ratio": 0.5,
     "dataset_kw": {"height": 16, "width": 24, "train_scenes": 1, "val_scenes": 1, "test_scenes": 1,
                    "scans_per_scene": 4, "seed": 1}},
    {"kind": "supervised", "dataset": "multimnist", "epochs": 1, "batch_size": 32,
     "dataset_kw": {"n_train": 64, "n_val": 8, "n_test": 8}},
])
def test_pretraining_changes_the_weights(tmp_path, init):
    rand = torch.load(vfm.make_checkpoint(tmp_path, "r", {"kind": "random", "seed": 0}, BK))
    pre = torch.load(vfm.make_checkpoint(tmp_path, "p", {**init, "seed": 0}, BK))
    assert set(pre) == set(rand)
    assert any(not torch.equal(pre[k], rand[k]) for k in rand)
    log = vfm.make_checkpoint(tmp_path, "p", {**init, "seed": 0}, BK).with_suffix(".json")
    assert log.exists() and "loss_per_epoch" in log.read_text()


def test_bad_kind_and_backbone_raise(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        vfm.make_checkpoint(tmp_path, "x", {"kind": "imagenet"}, BK)
    with pytest.raises(ValueError, match="vit"):
        vfm.compare_initialisations(tmp_path, {"spec": {"backbone": "segnet"}, "initialisations": {}})


def test_hub_initialisation_uses_table_viii_name(tmp_path):
    spec = vfm.init_spec(tmp_path, {"backbone": "vit", "backbone_kw": dict(BK)}, "dino", {"kind": "hub"})
    assert spec["backbone_kw"]["model_name"] == "vit_base_patch16_224.dino" and spec["backbone_kw"]["pretrained"]


def _res(uniform_b):
    def recs(a, b):
        return [{"metrics": {"a": {"acc": x}, "b": {"acc": y}}} for x, y in zip(a, b)]
    one = recs([1, 1, 1], [1, 1, 1])
    stl = {"a": one, "b": one}
    return {"stl": stl, "base": {"a": {"acc": 1.0}, "b": {"acc": 1.0}},
            "dirs": {"a": {"acc": True}, "b": {"acc": True}}, "seeds": [0, 1, 2],
            "methods": {"Uniform": recs([1.0, 1.01, 1.0], uniform_b),
                        "Grid Search": recs([1, 1, 1], [1, 1, 1])}}


def test_c4_verdict_logic():
    low, high = [0.8, 0.81, 0.8], [1.1, 1.12, 1.11]
    assert vfm.c4_initialisations({"x": _res(low), "y": _res(low)})["verdict"] == "supports"
    r = _res(high)
    r["methods"]["Uniform"] = [{"metrics": {"a": {"acc": 1.1 + i / 100}, "b": {"acc": 1.1}}} for i in range(3)]
    assert vfm.c4_initialisations({"x": _res(low), "y": r})["verdict"] == "contradicts"
    assert vfm.c4_initialisations({"x": _res(low), "y": _res([0.9, 1.1, 1.0])})["verdict"] == "inconclusive"


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu", "paper"])
def test_offline_profiles_never_use_the_hub(profile):
    from mtl import profiles

    P = profiles.load("vfm", profile)
    kinds = {i["kind"] for i in P["initialisations"].values()}
    if profile in ("smoke", "cpu"):
        assert "hub" not in kinds and kinds <= set(vfm.KINDS)
    else:
        assert kinds == {"hub"} and set(P["initialisations"]) == set(vfm.VFM_INITIALISATIONS)
