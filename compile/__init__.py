"""The fixed-point IR (``.qnet``), its reference semantics and the random streams (numpy + pyyaml only).

``from_torch`` (which needs torch) is imported on first use, so importing this package stays cheap.
"""

from typing import Any

from .ir import Conv2dSynapse, DenseSynapse, EscapeNoise, IRError, Layer, Network, Neuron, Projection, load, save
from .runspec import RunError, RunSpec

__all__ = [
    "Conv2dSynapse",
    "DenseSynapse",
    "EscapeNoise",
    "IRError",
    "Layer",
    "Network",
    "Neuron",
    "Projection",
    "RunError",
    "RunSpec",
    "load",
    "save",
]


def __getattr__(name: str) -> Any:
    if name == "from_torch":
        from .torch_graph import from_torch

        return from_torch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
