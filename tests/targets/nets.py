"""Small IR networks for the interchange tests, built from quantal.nn models (random weights and biases)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from quantal import nn as qnn
from quantal.compile.ir import Network
from quantal.compile.torch_graph import from_torch


class _Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc0 = qnn.Linear(20, 16)
        self.rec = qnn.RecurrentLIF(16, alpha=0.5, beta=0.8)
        self.fc1 = qnn.Linear(16, 6)
        self.out = qnn.LIF(6, beta=0.9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.fc1(self.rec(self.fc0(x))))


def models() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    """name -> (model, input shape)."""
    return {
        "dense": (nn.Sequential(qnn.Linear(20, 16), qnn.LIF(16, beta=0.8), qnn.Linear(16, 6), qnn.LIF(6, beta=0.9)),
                  (20,)),
        "cuba": (nn.Sequential(qnn.Linear(20, 16), qnn.LIF(16, alpha=0.5, beta=0.75), qnn.Linear(16, 6),
                               qnn.LIF(6, alpha=0.25, beta=0.9)), (20,)),
        "conv": (nn.Sequential(qnn.Conv2d(1, 4, 3, padding=1), qnn.LIF((4, 8, 8), beta=0.9), qnn.SumPool2d(2),
                               qnn.Conv2d(4, 6, 3), qnn.LIF((6, 2, 2), beta=0.9), qnn.Flatten(), qnn.Linear(24, 5),
                               qnn.LIF(5, beta=0.9)), (1, 8, 8)),
        "recurrent": (_Recurrent(), (20,)),
        "readout": (nn.Sequential(qnn.Linear(20, 16), qnn.LIF(16, beta=0.8), qnn.Linear(16, 6),
                                  qnn.Readout(6, beta=0.9)), (20,)),
    }  # fmt: skip


def network(name: str, seed: int = 0) -> Network:
    """The IR network of model ``name`` with random weights and biases, calibrated on random spikes."""
    model, shape = models()[name]
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 2.5 / np.sqrt(p[0].numel()))
        for m in model.modules():
            if getattr(m, "bias", None) is not None and isinstance(m.bias, torch.Tensor) and m.bias.dim() == 1:
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.1)
    x = (torch.rand((64, 24, *shape), generator=g) < 0.3).float()
    qnet, _ = from_torch(model, x, name=name)
    return qnet.to_network(name)
