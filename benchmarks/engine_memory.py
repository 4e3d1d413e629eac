"""Peak live tensor bytes of one training step per gradient method on the ``cpu`` profile's scenes SegNet.

The engine's update must not hold more memory than before: run this with the old and the new
code on ``PYTHONPATH`` and compare (``mtl.memory.PeakMemory``: live CPU tensor bytes above the
state before the step; kernel scratch buffers are not seen).

    PYTHONPATH=. python benchmarks/engine_memory.py mgda:param mgda:rep imtl:rep dbmtl:param
"""
from __future__ import annotations

import sys

import torch

import mtl.weighting as W
from mtl.experiment import RunSpec
from mtl.memory import PeakMemory
from mtl.train import PlainStep, StepInfo, batches

SCENES = {"dataset": "scenes", "backbone": "segnet", "backbone_kw": {"width": 16, "stages": 3, "convs": 2},
          "dataset_kw": {"height": 48, "width": 64, "train_scenes": 24, "val_scenes": 6, "test_scenes": 8,
                         "scans_per_scene": 10}}


def peak_mib(data, spec: RunSpec, method: str) -> float:
    name, _, mode = method.partition(":")
    torch.manual_seed(0)
    model = spec.build_model(data)
    weighting = W.create(name, **({"mode": mode} if mode else {}))
    stream = batches(data, "train", 8, 0, torch.device("cpu"))
    batch = next(stream)
    step = PlainStep()
    weighting.reset()
    opt = torch.optim.Adam(list(model.parameters()) + list(weighting.parameters()), lr=1e-3)
    info = StepInfo(next_batch=lambda split: next(stream))
    step.step(model, data, batch, weighting, opt, info)                      # optimizer state exists
    with PeakMemory(torch.device("cpu")) as m:
        step.step(model, data, batch, weighting, opt, info)
    return m.peak_bytes / 2**20


def main(methods: list[str]) -> None:
    torch.set_num_threads(1)
    spec = RunSpec.from_dict({**SCENES, "name": "memory"})
    data = spec.build_data()
    for method in methods or ["ew", "mgda:param", "mgda:rep", "imtl:param", "imtl:rep", "pcgrad:param",
                              "dbmtl:param", "gradnorm:param", "upgrad:param"]:
        print(f"{method:16s} {peak_mib(data, spec, method):8.2f} MiB")


if __name__ == "__main__":
    main(sys.argv[1:])
