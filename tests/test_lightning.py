"""A weighting inside someone else's training loop: a PyTorch Lightning module with manual
optimisation calls :func:`mtl.train.weighted_step`, and trains exactly as :func:`mtl.train.fit` does."""
import runpy
from itertools import islice
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

import mtl.weighting as W
from mtl.tasks import task_losses
from mtl.train import TrainConfig, batches, fit, weighted_step
from mtl.weighting import StepContext

L = pytest.importorskip("lightning")
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "own_model.py"


class LitMTL(L.LightningModule):
    """Any multi-task model and any mtl weighting in Lightning: the step is the weighting's."""

    def __init__(self, model, weighting, data, lr=1e-3):
        super().__init__()
        self.model, self.weighting, self.data, self.lr = model, weighting, data, lr
        self.automatic_optimization = False                    # the weighting writes the gradients
        self.epoch_losses = []

    def losses(self, batch):                                   # batch -> task losses [T]
        x, y = batch
        return task_losses(self.model, self.data, self.model(x), y)

    def training_step(self, batch, batch_idx):
        x, y = batch
        z = self.model.encode(x)                               # kept for "rep" mode
        losses = task_losses(self.model, self.data, self.model.decode(z), y)          # [T]
        ctx = StepContext(self.model, batch, rep=z, loss_fn=self.losses, epoch=self.current_epoch, step=batch_idx)
        logs = weighted_step(self.weighting, losses, ctx, self.optimizers())
        self.epoch_losses.append(losses.detach())
        if "weights" in logs:                                  # [T]: what the method chose this step
            self.log_dict({f"weight/{t}": w for t, w in zip(self.model.tasks, logs["weights"])})

    def on_train_epoch_end(self):
        self.weighting.end_epoch(self.current_epoch, torch.stack(self.epoch_losses).mean(0))
        self.epoch_losses = []

    def configure_optimizers(self):
        return torch.optim.Adam(list(self.model.parameters()) + list(self.weighting.parameters()), lr=self.lr)


class InFitOrder(LitMTL):
    """Each epoch's batches are those :func:`mtl.train.fit` draws (its batch stream), to compare the two loops."""

    def train_dataloader(self):
        steps = len(self.data.train) // 16
        stream = islice(batches(self.data, "train", 16, seed=1, device="cpu"), steps * (self.current_epoch + 1))
        return DataLoader(list(stream)[-steps:], batch_size=None)


@pytest.mark.parametrize("name", ["mgda", "famo", "dwa"])      # rep mode; after_step with loss_fn; end_epoch
def test_lightning_manual_optimisation_trains_as_fit_does(name, tiny_mnist, one_thread):
    own_model = runpy.run_path(str(EXAMPLE))["own_model"]
    torch.manual_seed(0)
    ours = own_model(width=8)
    torch.manual_seed(0)
    theirs = own_model(width=8)
    fit(ours, tiny_mnist, W.create(name), TrainConfig(epochs=2, batch_size=16, device="cpu", seed=0))

    trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, reload_dataloaders_every_n_epochs=1)
    torch.manual_seed(0)                                       # fit seeds too (random methods, dropout)
    trainer.fit(InFitOrder(theirs, W.create(name), tiny_mnist))
    assert trainer.global_step == 2 * (len(tiny_mnist.train) // 16)
    for (n, a), b in zip(ours.named_parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7, msg=n)
    torch.manual_seed(0)
    assert not torch.equal(theirs.encoder[0].weight, own_model(width=8).encoder[0].weight)     # it did train


def test_a_method_that_needs_more_batches_says_what_to_pass(tiny_mnist):
    own_model = runpy.run_path(str(EXAMPLE))["own_model"]
    model = own_model(width=8)
    x, y = next(iter(tiny_mnist.loader("train", 8)))
    z = model.encode(x)
    losses = task_losses(model, tiny_mnist, model.decode(z), y)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"StepContext\.next_batch .*StepContext\(\.\.\., next_batch=\.\.\.\)"):
        weighted_step(W.create("autolambda"), losses, StepContext(model, (x, y), rep=z,
                                                                  loss_fn=lambda b: losses), opt)
