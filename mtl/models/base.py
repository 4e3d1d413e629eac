"""The model contract every architecture meets, so weightings and step rules never look inside."""
from __future__ import annotations

import torch
from torch import nn


class MultiTaskModel(nn.Module):
    """``forward(x) -> {task: prediction}`` split as ``decode(encode(x))``.

    ``encode`` returns the shared representation ``z`` (the tensor "rep" mode differentiates
    against); ``shared_parameters`` / ``task_parameters`` tell the gradient engine what is shared.
    """

    def __init__(self, encoder: nn.Module, heads: dict[str, nn.Module]):
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(heads)

    @property
    def tasks(self) -> list[str]:
        return list(self.heads.keys())

    def encode(self, x) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        return {t: head(z) for t, head in self.heads.items()}

    def forward(self, x) -> dict[str, torch.Tensor]:
        return self.decode(self.encode(x))

    def shared_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.encoder.parameters() if p.requires_grad]

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return [p for p in self.heads[task].parameters() if p.requires_grad]

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """Parameters of the last shared layer with weights (seed 004's AvgNorm and Fig. 8 use it)."""
        last = [m for m in self.encoder.modules() if any(True for _ in m.parameters(recurse=False))
                and isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d))]
        if not last:
            raise ValueError("the encoder has no convolution or linear layer")
        return [p for p in last[-1].parameters(recurse=False) if p.requires_grad]

    def regularization(self) -> torch.Tensor | None:
        """An extra loss term some architectures add (DSelect-k, LTB); ``None`` for most."""
        return None
