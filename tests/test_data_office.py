"""``office31`` / ``office_home`` on tiny fixtures in their standard folder layouts (JPEGs made here with
PIL), one clear error per kind of malformed layout, the root from the argument or the environment,
and a few training steps of the multi-input loop on them."""
import math
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from mtl import data as D
from mtl.data.dense import DatasetFormatError, DatasetNotFoundError
from mtl.data.office import OFFICE31, OFFICE_HOME
from mtl.models import MultiTaskModel
from mtl.tasks import TaskInputs
from mtl.train import TrainConfig, fit
from mtl.weighting import create

pytestmark = pytest.mark.usefixtures("one_thread")


def write_office(root, spec: dict, per_class: int = 3, size: int = 6):
    """``spec``'s layout under ``root``: every domain, every class ``c000…``, ``per_class`` JPEGs whose
    red channel encodes the class (so a label can be checked from the pixels)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for d in spec["domains"]:
        base = root / d / spec["sub"] if spec["sub"] else root / d
        for c in range(spec["classes"]):
            folder = base / f"c{c:03d}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                a = np.empty((size, size, 3), dtype=np.uint8)
                a[..., 0] = 3 * c                                              # the class, in red
                a[..., 1:] = rng.integers(0, 256, 2)                           # flat colours: JPEG keeps them
                Image.fromarray(a).save(folder / f"img_{i}.jpg", quality=100)
    return root


@pytest.fixture(scope="module")
def office31(tmp_path_factory):
    return write_office(tmp_path_factory.mktemp("o31") / "office31", OFFICE31)


@pytest.fixture(scope="module")
def office_home(tmp_path_factory):
    return write_office(tmp_path_factory.mktemp("oh") / "office_home", OFFICE_HOME, per_class=2)


def _red_class(x: torch.Tensor) -> int:
    return round(float(x[0].mean()) * 255 / 3)


def test_office31_loads_three_domains_of_31_classes(office31):
    b = D.load("office31", root=office31, image_size=8, seed=1)
    assert isinstance(b, D.MultiInputBundle) and [t.name for t in b.tasks] == ["amazon", "dslr", "webcam"]
    assert all(t.out_channels == 31 and t.kind == "classification" for t in b.tasks)
    for t in ("amazon", "dslr", "webcam"):
        sizes = [len(b.split(s)[t]) for s in ("train", "val", "test")]
        assert sizes == [55, 19, 19] and b.info["sizes"]["train"][t] == 55
        files = {str(b.split(s)[t].items[i][0]) for s in ("train", "val", "test") for i in range(len(b.split(s)[t]))}
        assert len(files) == 93                                               # disjoint splits, every image once
    x, y = b.train["dslr"][0]
    assert x.shape == (3, 8, 8) and x.dtype == torch.float32 and 0 <= float(x.min()) <= float(x.max()) <= 1
    assert y.dtype == torch.int64 and int(y) == _red_class(x)                 # label = sorted class folder index
    assert b.info["classes"][:2] == ["c000", "c001"] and len(b.info["classes"]) == 31
    again = D.load("office31", root=office31, image_size=8, seed=1)
    assert [p for p, _ in again.test["webcam"].items] == [p for p, _ in b.test["webcam"].items]
    xs, ys = next(iter(b.loader("train", 4, shuffle=True)))
    assert isinstance(xs, TaskInputs) and {t: v.shape for t, v in xs.items()} == {t: (4, 3, 8, 8) for t in xs}


def test_office_home_loads_four_domains_of_65_classes(office_home):
    b = D.load("office_home", root=office_home, image_size=8, domains=("Art", "Real World"))
    assert [t.name for t in b.tasks] == ["art", "real_world"] and b.task("art").out_channels == 65
    assert [len(b.split(s)["real_world"]) for s in ("train", "val", "test")] == [78, 26, 26]
    x, y = b.test["art"][3]
    assert int(y) == _red_class(x)
    assert len(D.load("office_home", root=office_home, image_size=8).tasks) == 4


@pytest.mark.parametrize("name, env, spec", [("office31", "MTL_OFFICE31", OFFICE31),
                                             ("office_home", "MTL_OFFICE_HOME", OFFICE_HOME)])
def test_root_from_argument_or_environment(request, tmp_path, monkeypatch, name, env, spec):
    root = request.getfixturevalue(name)
    monkeypatch.delenv(env, raising=False)
    with pytest.raises(DatasetNotFoundError, match=rf"{name} needs its data folder: pass root=.* or set the "
                                                   rf"environment variable {env}"):
        D.load(name)
    monkeypatch.setenv(env, str(root))
    assert D.load(name, image_size=4).info["root"] == str(root)
    monkeypatch.setenv(env, str(tmp_path / "elsewhere"))
    assert D.load(name, root=root, image_size=4).info["root"] == str(root)      # the argument wins
    with pytest.raises(DatasetNotFoundError, match=rf"{tmp_path / 'elsewhere'} does not exist; expected "
                                                   rf"{spec['layout'].replace('{', '.').replace('}', '.')}"):
        D.load(name)


BREAKERS = {  # name -> (how to break an Office-31 copy, error type, words the message must contain)
    "missing domain": (lambda r: shutil.rmtree(r / "dslr"), DatasetNotFoundError,
                       ["dslr/images", "<root>/{amazon,dslr,webcam}/images/<class>/<file>.jpg", "31 classes"]),
    "a class too few": (lambda r: shutil.rmtree(r / "webcam" / "images" / "c007"), DatasetFormatError,
                        ["webcam/images holds 30 class folders, expected 31"]),
    "class names differ": (lambda r: (r / "webcam" / "images" / "c007").rename(r / "webcam" / "images" / "zz"),
                           DatasetFormatError, ["'amazon' and 'webcam' have different class folders", "zz"]),
    "empty class": (lambda r: [p.unlink() for p in (r / "amazon" / "images" / "c003").iterdir()],
                    DatasetNotFoundError, ["no image", "amazon/images/c003"]),
}


@pytest.mark.parametrize("case", list(BREAKERS))
def test_malformed_layout_is_a_clear_error(office31, tmp_path, case):
    root = tmp_path / "copy"
    shutil.copytree(office31, root)
    brk, err, words = BREAKERS[case]
    brk(root)
    with pytest.raises(err) as e:
        D.load("office31", root=root, image_size=4)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_unreadable_image_is_named_when_read(office31, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(office31, root)
    bad = root / "amazon" / "images" / "c000" / "img_0.jpg"
    bad.write_bytes(b"not a jpeg")
    b = D.load("office31", root=root, image_size=4)
    i = next(s for s in ("train", "val", "test") if any(p == bad for p, _ in b.split(s)["amazon"].items))
    k = [p for p, _ in b.split(i)["amazon"].items].index(bad)
    with pytest.raises(DatasetFormatError, match=rf"{bad} is not a readable image"):
        b.split(i)["amazon"][k]
    with pytest.raises(ValueError, match="no domain.*valid domains"):
        D.load("office31", root=root, domains=("clipart",))


@pytest.mark.parametrize("method", ["ew", "mgda", "famo"])
def test_the_multi_input_loop_trains_on_the_office31_fixture(office31, method):
    data = D.load("office31", root=office31, image_size=8, preload=True)
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten())
    model = MultiTaskModel(enc, {t.name: nn.Linear(8, 31) for t in data.tasks})
    hist = fit(model, data, create(method), TrainConfig(epochs=3, batch_size=16, lr=3e-2, device="cpu"))
    first, last = hist.epochs[0]["train_loss"], hist.epochs[-1]["train_loss"]
    assert all(math.isfinite(v) for v in last.values()) and sum(last.values()) < sum(first.values())
    assert set(hist.final) == {"amazon", "dslr", "webcam"} and all(0 <= m["acc"] <= 1 for m in hist.final.values())
