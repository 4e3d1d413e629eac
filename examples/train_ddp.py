"""One run on N processes, exact for every method that declares it (see README "Multi-GPU and mixed precision").

    torchrun --nproc-per-node 4 examples/train_ddp.py cagrad bf16

Each rank trains on its shard of a global batch of 4 × ``batch_size``; the steps are those of one
process on the whole batch. Only rank 0 prints (every rank holds the same model and history).
"""
import sys

import torch.distributed as dist

import mtl
from mtl.models import create_model
from mtl.train import TrainConfig, fit


def main(method: str = "cagrad", amp: str | None = None) -> None:
    data = mtl.data.load("scenes", height=48, width=64)
    model = create_model("hps", "segnet", data.tasks, backbone_kw={"width": 16})
    hist = fit(model, data, mtl.weighting.create(method), TrainConfig(epochs=2, batch_size=4, amp=amp),
               distributed=True)
    if dist.get_rank() == 0:
        print(hist.final, hist.info["distributed"], sep="\n")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:3])
