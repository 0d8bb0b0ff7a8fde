"""``quantal.nn``: composable stochastic spiking layers for your own PyTorch model (docs/guide.md).

Synapses (:class:`Linear`, :class:`Conv2d`, :class:`BlankOutLinear`, :class:`BlankOutConv2d`,
:class:`SumPool2d`, :class:`AvgPool2d`, :class:`Flatten`) and neurons (:class:`LIF`, :class:`Binary`,
:class:`RecurrentLIF`, :class:`Readout`) on tensors of shape (batch, T, *features). A model built from them (and
from plain ``nn.Linear``) lowers to the fixed-point IR with :func:`quantal.compile.from_torch`. Importing this
module imports torch.
"""

from quantal.train.layers import (
    LIF,
    AvgPool2d,
    Binary,
    BlankOutConv2d,
    BlankOutLinear,
    Conv2d,
    Flatten,
    Linear,
    Readout,
    RecurrentLIF,
    S2MLinear,
    SumPool2d,
    logits,
)

__all__ = ["AvgPool2d", "Binary", "BlankOutConv2d", "BlankOutLinear", "Conv2d", "Flatten", "LIF", "Linear",
           "Readout", "RecurrentLIF", "S2MLinear", "SumPool2d", "logits"]  # fmt: skip
