"""Your own model: any ``nn.Module`` encoder plus a dict of heads, trained with any weighting.

``MultiTaskModel(encoder, heads)`` is the contract every method, gradient mode and probe works
through: ``encoder(x)`` returns one tensor z, the shared representation ("rep" mode differentiates
the task losses w.r.t. it), every encoder parameter is shared (what "param" mode's Jacobian is
taken of), ``heads[task](z)`` is the task's prediction, and the encoder's last convolution or
linear layer is its "last shared layer" (AvgNorm, the gradient probe). The README's recipe; run
by ``tests/test_own_model.py``:  ``python examples/own_model.py``.
"""
import torch
from torch import nn

import mtl
from mtl.diagnostics import GradientProbe
from mtl.models import MultiTaskModel
from mtl.train import TrainConfig, fit


def own_model(width: int = 32) -> MultiTaskModel:
    """A small CNN of our own over MultiMNIST's images [B, 1, 28, 28], one linear head per digit."""
    encoder = nn.Sequential(                                          # x [B, 1, 28, 28] -> z [B, width]
        nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2),               # [B, 8, 12, 12]
        nn.Conv2d(8, 16, 5), nn.ReLU(), nn.MaxPool2d(2),              # [B, 16, 4, 4]
        nn.Flatten(), nn.Linear(16 * 4 * 4, width), nn.ReLU())
    heads = {"left": nn.Linear(width, 10), "right": nn.Linear(width, 10)}   # z -> logits [B, 10] per task
    return MultiTaskModel(encoder, heads)


def main(methods=("ew", "mgda", "cagrad", "famo"), epochs: int = 2, n_train: int = 256) -> dict:
    """Train the model with each weighting (MGDA in its default "rep" mode) with a gradient probe;
    returns the test metrics per method."""
    data = mtl.data.load("multimnist", n_train=n_train, n_val=64, n_test=64)
    final = {}
    for name in methods:
        torch.manual_seed(0)                                          # the same initial weights for every method
        hist = fit(own_model(), data, mtl.weighting.create(name), TrainConfig(epochs=epochs, batch_size=32),
                   probes=[GradientProbe(every=4)])
        final[name] = hist.final
        cos = hist.epochs[-1]["probes"][-1]["cos"][0][1]
        print(f"{name:8s} left acc {hist.final['left']['acc']:.3f}  right acc {hist.final['right']['acc']:.3f}  "
              f"gradient cosine {cos:+.2f}")
    return final


if __name__ == "__main__":
    main()
