"""Backbones of issue 5: dilated ResNets, timm ViTs, stages, and VFM initialisations from a local file.

The stage contract runs over the registry (``backbone_names()``): every registered backbone has a
tiny configuration in :data:`TINY` or an entry in :data:`EXCLUDED` saying why not."""
import pytest
import torch
from torch import nn

from mtl import tasks as T
from mtl.models import backbone_names, create_model
from mtl.models.backbones import BACKBONES, run_stages
from mtl.models.pretrained import VFM_INITIALISATIONS, create_vit, save_checkpoint

timm = pytest.importorskip("timm")

SMALL_VIT = dict(img_size=(32, 32), patch_size=8, embed_dim=16, depth=2, num_heads=2)


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


# backbone -> (tiny keyword arguments, input shape) for the contract below
TINY = {
    "segnet": (dict(width=4), (2, 3, 32, 32)),
    "lenet": ({}, (2, 1, 28, 28)),
    "cnn9": (dict(width=4), (2, 3, 32, 32)),
    "resnet18": (dict(width=8), (2, 3, 32, 32)),
    "resnet50": (dict(width=8), (2, 3, 32, 32)),
    "vit": (dict(SMALL_VIT, depth=4, stages=3), (2, 3, 32, 32)),
}
EXCLUDED = {  # registered backbones without a tiny tensor input -> why, and where they are tested
    "mpnn": "takes PyG graph batches, not a tensor; tests/test_data_qm9.py trains it on real QM9 graphs",
}


def test_every_registered_backbone_is_covered_or_excluded_with_a_reason():
    assert set(TINY) | set(EXCLUDED) == set(backbone_names()) and not set(TINY) & set(EXCLUDED)
    assert all(EXCLUDED.values())


@pytest.mark.parametrize("name", list(TINY))
def test_stages_compose_to_the_encoder(name):
    """Forward on a tiny input: [B, C, ...] features whose C is the declared width, equal to running the stages."""
    kw, shape = TINY[name]
    torch.manual_seed(0)
    bb = BACKBONES.create(name, **kw)
    bb.encoder.eval()
    x = torch.randn(shape)
    with torch.no_grad():
        z = bb.encoder(x)
        h, _ = run_stages(bb.stages, x)
    torch.testing.assert_close(h, z)
    assert z.shape[0] == shape[0] and torch.isfinite(z).all()
    assert bb.stages[-1].out_channels == bb.out_features == z.shape[1]
    enc = {id(p) for p in bb.encoder.parameters()}
    staged = {id(p) for s in bb.stages for p in s.parameters()}
    assert staged == enc                          # the stages are the encoder, not a copy


@pytest.mark.parametrize("name, params", [("resnet18", 11_176_512), ("resnet50", 23_508_032)])
def test_dilated_resnet_is_torchvision_with_output_stride_8(name, params):
    bb = BACKBONES.get(name)()
    assert sum(p.numel() for p in bb.encoder.parameters()) == params   # torchvision's, minus the classifier
    convs = [m for m in bb.encoder.net.layer4.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert all(c.stride == (1, 1) for c in convs) and {c.dilation for c in convs} <= {(2, 2), (4, 4)}
    with torch.no_grad():
        z = bb.encoder.eval()(torch.randn(1, 3, 48, 64))
    assert z.shape == (1, bb.out_features, 6, 8)


def test_dense_heads_return_input_resolution():
    seg = T.segmentation()
    for name, kw in [("resnet18", dict(width=8)), ("vit", SMALL_VIT)]:
        model = create_model("hps", name, [seg, T.normal()], backbone_kw=kw)
        out = model(torch.randn(2, 3, 32, 32))
        assert out["segmentation"].shape == (2, 13, 32, 32) and out["normal"].shape == (2, 3, 32, 32)


def test_bad_sizes_raise():
    bb = BACKBONES.get("resnet18")(width=8)
    with pytest.raises(ValueError, match="divisible by 8"):
        bb.encoder(torch.randn(1, 3, 30, 32))
    with pytest.raises(ValueError, match="divisible by the patch size"):
        BACKBONES.get("vit")(**dict(SMALL_VIT, img_size=(30, 32), patch_size=5, dynamic_img_pad=False))
    with pytest.raises(ValueError, match="width=64"):
        BACKBONES.get("resnet18")(width=8, weights="IMAGENET1K_V1")


def test_vit_initialisation_from_a_local_checkpoint(tmp_path):
    """The seed 004 §V-D path: a timm checkpoint file -> timm's pretrained loader -> our backbone."""
    torch.manual_seed(1)
    source = create_vit("vit_tiny_patch16_224", **SMALL_VIT)
    path = save_checkpoint(source, tmp_path / "vit.pth")
    torch.manual_seed(2)                          # a different random init, so equality means "loaded"
    model = create_model("mtan", "vit", [T.depth()], backbone_kw=dict(SMALL_VIT, checkpoint=str(path)))
    fresh = create_model("mtan", "vit", [T.depth()], backbone_kw=SMALL_VIT)
    got = {id(p) for p in model.encoder.parameters()}
    loaded = dict(source.state_dict())
    vit = model.encoder[0].embed                  # the staged trunk references the timm modules
    torch.testing.assert_close(vit.pos_embed, loaded["pos_embed"])
    torch.testing.assert_close(vit.patch_embed.proj.weight, loaded["patch_embed.proj.weight"])
    assert not torch.equal(fresh.encoder[0].embed.pos_embed, loaded["pos_embed"])
    assert got                                    # the trunk has parameters
    # the same file at another image size: timm's filter resamples the position embedding
    bigger = create_vit("vit_tiny_patch16_224", checkpoint=path, **dict(SMALL_VIT, img_size=(48, 64)))
    assert bigger.pos_embed.shape[1] == 1 + 6 * 8
    torch.testing.assert_close(bigger.blocks[1].mlp.fc1.weight, loaded["blocks.1.mlp.fc1.weight"])


def test_checkpoint_errors_are_loud(tmp_path):
    with pytest.raises(FileNotFoundError):
        create_vit("vit_tiny_patch16_224", checkpoint=tmp_path / "missing.pth", **SMALL_VIT)
    shallow = save_checkpoint(create_vit("vit_tiny_patch16_224", **dict(SMALL_VIT, depth=1)), tmp_path / "d1.pth")
    with pytest.raises(ValueError, match="Missing keys"):
        create_vit("vit_tiny_patch16_224", checkpoint=shallow, **SMALL_VIT)


def test_table_viii_names_are_timm_pretrained_configs():
    """Every seed 004 Table VIII initialisation is a pretrained tag timm knows (no download)."""
    assert len(VFM_INITIALISATIONS) == 7
    for name in VFM_INITIALISATIONS.values():
        cfg = timm.models.get_pretrained_cfg(name)
        assert cfg is not None and (cfg.hf_hub_id or cfg.url), name


@pytest.mark.parametrize("key", list(VFM_INITIALISATIONS))
def test_table_viii_structures_stage_and_train(key):
    """Tiny random versions of each Table VIII model (class/register tokens, CLIP pre-norm, SAM's
    windowed ViT as one stage) run as staged backbones under MTAN."""
    name = VFM_INITIALISATIONS[key]
    size = (28, 28) if "patch14" in name else (32, 32)
    kw = dict(embed_dim=16, depth=2, num_heads=2, head_width=8)
    if name.startswith("samvit"):
        kw.update(global_attn_indexes=(1,), window_size=2, neck_chans=8)
    bb = BACKBONES.get("vit")(model_name=key, img_size=size, **kw)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        z, (h, _) = bb.encoder.eval()(x), run_stages(bb.stages, x)
    torch.testing.assert_close(h, z)
    model = create_model("mtan", "vit", [T.depth()], backbone_kw=dict(kw, model_name=key, img_size=size))
    model(x)["depth"].mean().backward()
    assert model.encoder[0].body is not None and all(p.grad is not None for p in model.task_parameters("depth"))


def test_relative_checkpoint_paths_resolve_from_the_repository(tmp_path, monkeypatch):
    """Run specs store checkpoints relative to the checkout, so they load from any working folder."""
    from mtl.paths import repo_root
    folder = repo_root() / "runs" / ".test-tmp"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        path = save_checkpoint(create_vit("vit_tiny_patch16_224", **SMALL_VIT), folder / "rel.pth")
        monkeypatch.chdir(tmp_path)
        vit = create_vit("vit_tiny_patch16_224", checkpoint=str(path.relative_to(repo_root())), **SMALL_VIT)
        assert vit.pos_embed.shape[1] > 1
    finally:
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
