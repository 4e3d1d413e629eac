"""``attributes40``: determinism, planted group structure, imbalance, learnability; the ``cnn9`` backbone."""
import numpy as np
import pytest
import torch

from mtl import data as D
from mtl import tasks as T
from mtl.data import attributes as A
from mtl.models import create_model
from mtl.models.backbones import BACKBONES, run_stages


def _labels(n: int, seed: int = 0) -> np.ndarray:
    """[n, 40] labels from the factors alone (no rendering), as ``generate`` draws them."""
    return np.stack([A.labels(A.sample_factors(np.random.default_rng([seed, 0, i]))) for i in range(n)])


def test_deterministic_prefix_consistent_and_seeded():
    im, y = A.generate(12, 16, 3, "train")
    im2, y2 = A.generate(6, 16, 3, "train")
    np.testing.assert_array_equal(im[:6], im2)
    np.testing.assert_array_equal(y[:6], y2)
    im3, _ = A.generate(6, 16, 4, "train")
    assert not np.array_equal(im2, im3)
    np.testing.assert_array_equal(y, _labels(12, 3))


def test_groups_correlate_inside_and_not_across():
    y = _labels(6000).astype(float)
    c = np.corrcoef(y.T)
    g = np.repeat(np.arange(8), 5)
    same = (g[:, None] == g[None]) & ~np.eye(40, dtype=bool)
    across = g[:, None] != g[None]
    assert np.abs(c[same]).mean() > 0.2
    for k in range(8):                                # every group has a clearly dependent pair
        block = np.abs(c[g == k][:, g == k]) - np.eye(5)
        assert block.max() > 0.25, list(A.GROUPS)[k]
    assert np.abs(c[across]).mean() < 0.02 and np.abs(c[across]).max() < 0.07   # sampling noise ≈ 0.013


def test_imbalanced_base_rates_like_celeba():
    rates = _labels(4000).mean(0)
    assert rates.min() > 0.04 and rates.max() < 0.75
    assert (rates < 0.15).sum() >= 8 and (rates > 0.4).sum() >= 4


def test_bundle_exposes_true_groups(tmp_path):
    b = D.load("attributes40", n_train=20, n_val=5, n_test=5, size=16, cache=tmp_path)
    names = [t.name for t in b.tasks]
    assert len(names) == 40 and all(t.kind == "binary" for t in b.tasks)
    groups = b.info["groups"]
    assert len(groups) == 8 and sorted(sum(groups, [])) == sorted(names)
    for gid, members in enumerate(groups):
        assert all(b.task(n).info["group"] == gid == b.info["group_of"][n] for n in members)
    x, y = next(iter(b.loader("train", 4)))
    assert x.shape == (4, 3, 16, 16) and y["red"].shape == (4,) and set(y["red"].tolist()) <= {0.0, 1.0}
    again = D.load("attributes40", n_train=20, n_val=5, n_test=5, size=16, cache=tmp_path)   # from the cache
    torch.testing.assert_close(again.train[3][0], b.train[3][0])
    with pytest.raises(ValueError, match="multiple of 8"):
        D.load("attributes40", size=20)
    with pytest.raises(ValueError, match="n_train"):
        D.load("attributes40", n_train=0)


def test_cnn9_is_famos_network():
    bb = BACKBONES.get("cnn9")()
    layers = [m for m in bb.encoder.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == 9 and bb.out_features == 512
    assert sum(p.numel() for p in bb.encoder.parameters()) == 5_176_640     # FAMO's experiments/celeba Network
    bb = BACKBONES.get("cnn9")(width=4)
    bb.encoder.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(run_stages(bb.stages, x)[0], bb.encoder(x))
    model = create_model("hps", "cnn9", [T.binary("a"), T.classification("b", 3)], backbone_kw=dict(width=4))
    out = model.eval()(x)
    assert out["a"].shape == (2,) and out["b"].shape == (2, 3)


def test_a_cnn_beats_the_base_rate_on_most_tasks(tmp_path):
    """Learnable from pixels: 4 epochs on 3000 images beat the majority class on about half the tasks (22/40 here;
    10k images × 15 epochs reach 38/40), and on average by several points."""
    from mtl import weighting as W
    from mtl.train import TrainConfig, fit

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        b = D.load("attributes40", n_train=3000, n_val=100, n_test=1000, cache=tmp_path)
        torch.manual_seed(0)
        model = create_model("hps", "cnn9", b.tasks, backbone_kw=dict(width=16))
        hist = fit(model, b, W.create("ew"), TrainConfig(epochs=4, batch_size=64, lr=3e-3, device="cpu"))
    finally:
        torch.set_num_threads(n)
    p = b.test.labels.mean(0)
    base = torch.maximum(p, 1 - p)                                             # majority-class accuracy
    acc = torch.tensor([hist.final[t.name]["acc"] for t in b.tasks])
    print(f"attributes40: {int((acc > base + 0.01).sum())}/40 tasks beat the base rate, "
          f"mean gain {float((acc - base).mean()):.3f}")
    assert (acc > base + 0.01).sum() >= 18 and float((acc - base).mean()) > 0.04
