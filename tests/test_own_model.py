"""The README's own-model recipe (examples/own_model.py): every method, in every mode it declares,
and both probes accept a model made of a plain ``nn.Module`` encoder and a dict of heads."""
import inspect
import math
import runpy
from pathlib import Path

import pytest
import torch

import mtl.weighting as W
from mtl.diagnostics import GradientProbe, RepresentationProbe
from mtl.train import TrainConfig, fit

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "own_model.py"
NEEDS_RUNS = {n for n in W.names() if getattr(W.WEIGHTINGS.get(n), "run_arguments", ())}   # url: teacher runs
CASES = [(n, m) for n in W.names() if n not in NEEDS_RUNS
         for m in (W.info(n).modes if "mode" in inspect.signature(W.WEIGHTINGS.get(n)).parameters else [None])]


@pytest.fixture(scope="module")
def example():
    return runpy.run_path(str(EXAMPLE))          # the module's functions, without running main


def test_the_example_runs_as_a_script(capsys, one_thread):
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["ew", "mgda", "cagrad", "famo"]
    assert all("gradient cosine" in line for line in lines)


@pytest.mark.parametrize("name,mode", CASES, ids=[f"{n}-{m or 'losses'}" for n, m in CASES])
def test_every_method_and_mode_trains_the_own_model(example, tiny_mnist, name, mode, one_thread):
    torch.manual_seed(0)
    model = example["own_model"](width=8)
    before = [p.detach().clone() for p in model.encoder.parameters()]
    w = W.create(name) if mode is None else W.create(name, mode=mode)
    hist = fit(model, tiny_mnist, w, TrainConfig(epochs=1, batch_size=16, max_steps_per_epoch=2, device="cpu"))
    assert all(math.isfinite(v) for v in hist.epochs[0]["train_loss"].values())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.encoder.parameters()))


def test_probes_and_the_last_shared_layer_work_on_the_own_model(example, tiny_mnist, one_thread):
    model = example["own_model"](width=8)
    assert model.last_shared_parameters()[0] is model.encoder[-2].weight      # the encoder's last Linear
    hist = fit(model, tiny_mnist, W.create("ew"), TrainConfig(epochs=1, batch_size=16, max_steps_per_epoch=2),
               probes=[GradientProbe(every=1), RepresentationProbe(tiny_mnist, every=1)])
    kinds = [p["probe"] for p in hist.epochs[0]["probes"]]
    assert kinds.count("gradients") == 2 and kinds.count("rep_cos") == 2
    grad = hist.epochs[0]["probes"][0]
    assert set(grad["grad_norm_last"]) == {"left", "right"} and grad["cos"][0][0] == pytest.approx(1.0)


def _readme_blocks(heading: str) -> list[str]:
    """The python code blocks of the README section under ``heading`` (up to the next heading)."""
    text = (EXAMPLE.parent.parent / "README.md").read_text()
    section = text.split(f"\n{heading}\n", 1)[1].split("\n### ", 1)[0]
    return [b.split("```", 1)[0] for b in section.split("```python\n")[1:]]


def test_the_readme_recipes_run(one_thread):
    own, lit = _readme_blocks("### Your own model")
    ns: dict = {}
    exec(own, ns)                                       # the recipe: own encoder and heads, trained with Nash-MTL
    assert set(ns["hist"].final) == {"left", "right"}
    assert ns["model"].encoder is ns["encoder"] and list(ns["model"].heads) == ["left", "right"]
    L = pytest.importorskip("lightning")
    exec(lit, ns)                                       # the Lightning module, one epoch of FAMO (needs loss_fn)
    module = ns["LitMTL"](ns["model"], W.create("famo"), ns["data"])
    before = ns["model"].encoder[0].weight.detach().clone()
    trainer = L.Trainer(max_epochs=1, max_steps=3, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, ns["data"].loader("train", 32, shuffle=True))
    assert trainer.global_step == 3 and not torch.equal(before, ns["model"].encoder[0].weight)
