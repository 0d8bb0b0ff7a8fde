"""The fixed-point IR (``.qnet``), its reference semantics and the random streams (numpy + pyyaml only)."""

from .ir import DenseSynapse, EscapeNoise, IRError, Layer, Network, Neuron, load, save
from .runspec import RunError, RunSpec

__all__ = [
    "DenseSynapse",
    "EscapeNoise",
    "IRError",
    "Layer",
    "Network",
    "Neuron",
    "RunError",
    "RunSpec",
    "load",
    "save",
]
