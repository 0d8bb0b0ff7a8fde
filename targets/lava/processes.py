"""quantal's own Lava processes (imported only inside the Lava venv).

``SpikeInput`` plays a recorded spike array, one column per time step; ``SpikeRecorder`` stores the spikes
it receives. Both have ``fixed_pt`` process models so that a ``Loihi2SimCfg(select_tag="fixed_pt")`` run
picks them beside Lava's bit-accurate Dense and LIF models.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class SpikeInput(AbstractProcess):
    """Sends ``data[:, t - 1]`` at Lava time step t (1-based), then zeros once the data run out."""

    def __init__(self, *, data: np.ndarray, **kwargs) -> None:
        super().__init__(data=data, **kwargs)
        self.data = Var(shape=data.shape, init=data.astype(np.int32))
        self.s_out = OutPort(shape=(data.shape[0],))


class SpikeRecorder(AbstractProcess):
    """Stores the spikes received at Lava time step t in ``data[:, t - 1]``."""

    def __init__(self, *, shape: tuple[int, int], **kwargs) -> None:
        super().__init__(shape=shape, **kwargs)
        self.data = Var(shape=shape, init=np.zeros(shape, np.int32))
        self.a_in = InPort(shape=(shape[0],))


@implements(proc=SpikeInput, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikeInputModel(PyLoihiProcessModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, bool, precision=1)
    data: np.ndarray = LavaPyType(np.ndarray, np.int32)

    def run_spk(self) -> None:
        t = self.time_step - 1
        if t < self.data.shape[1]:
            self.s_out.send(self.data[:, t] != 0)
        else:
            self.s_out.send(np.zeros(self.data.shape[0], dtype=bool))


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikeRecorderModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, bool, precision=1)
    data: np.ndarray = LavaPyType(np.ndarray, np.int32)

    def run_spk(self) -> None:
        s = self.a_in.recv()
        t = self.time_step - 1
        if t < self.data.shape[1]:
            self.data[:, t] = s.astype(np.int32)


# ------------------------------------------------------------------------------------------------------------
# What stock Lava lacks: stochastic synapses (random streams v1, stream 1) and reliable parts on any projection
# (dense or an expanded conv2d), with the projection's delay; and IR neurons with per-neuron decays and
# thresholds, subtractive reset, escape noise (stream 2) or readouts. The process models compute docs/ir.md with
# the same numpy functions as the reference executor, per sample block of the batched graph: block k of every
# layer belongs to sample ``samples[k]`` (its index in the whole input), which selects its random streams.


def _seed_halves(seed: int) -> np.ndarray:
    """A seed in [0, 2**64) as two 32-bit halves (Var data are numpy arrays of one dtype)."""
    return np.array([seed >> 32, seed & 0xFFFFFFFF], np.int64)


class IRProjection(AbstractProcess):
    """An IR projection given as its (target size, source size) matrix: ``a_p`` from the spikes of ``delay``
    steps before the one-step synaptic delay, with release probabilities and a reliable part.

    At Lava step tau it sends the synaptic input computed at step tau - 1, which the target integrates at IR
    step tau - 1 (the one-step delay of Lava's Dense); that input was computed from the spikes received at
    Lava step tau - 1 - delay, i.e. the source's IR step tau - 2 - delay."""

    def __init__(self, *, weight: np.ndarray, weight_exp: int, release: np.ndarray | None,
                 weight_fixed: np.ndarray | None, index: int, delay: int, seed: int, trial: int,
                 samples: np.ndarray, **kwargs) -> None:  # fmt: skip
        super().__init__(**kwargs)
        size, n_in = weight.shape
        n = len(samples)
        self.weight = Var(shape=weight.shape, init=weight.astype(np.int64))
        self.weight_fixed = Var(shape=weight.shape, init=np.zeros_like(weight, np.int64) if weight_fixed is None
                                else weight_fixed.astype(np.int64))  # fmt: skip
        self.release = Var(shape=weight.shape, init=np.full(weight.shape, 255, np.int64) if release is None
                           else release.astype(np.int64))  # fmt: skip
        self.stochastic = Var(shape=(1,), init=np.array([int(release is not None)], np.int64))
        self.weight_exp = Var(shape=(1,), init=np.array([weight_exp], np.int64))
        self.index = Var(shape=(1,), init=np.array([index], np.int64))  # the projection index of stream 1
        self.seed = Var(shape=(2,), init=_seed_halves(seed))
        self.trial = Var(shape=(1,), init=np.array([trial], np.int64))
        self.samples = Var(shape=(n,), init=np.asarray(samples, np.int64))
        self.history = Var(shape=(delay + 1, n * n_in), init=np.zeros((delay + 1, n * n_in), np.int64))
        self.a_buff = Var(shape=(n * size,), init=np.zeros(n * size, np.int64))
        self.s_in = InPort(shape=(n * n_in,))
        self.a_out = OutPort(shape=(n * size,))


class IRNeuron(AbstractProcess):
    """IR neurons (docs/ir.md §2, §4): LIF with per-neuron decays, thresholds and biases, zero or subtractive
    reset, optional logistic escape noise, or a readout. Per-neuron values are given for one sample and tiled
    over the sample blocks."""

    def __init__(self, *, size: int, samples: np.ndarray, current_decay: np.ndarray, voltage_decay: np.ndarray,
                 threshold: np.ndarray, bias: np.ndarray, spiking: bool, subtract: bool, escape_scale: float | None,
                 layer: int, seed: int, trial: int, **kwargs) -> None:  # fmt: skip
        super().__init__(**kwargs)
        n = len(samples)
        tile = lambda a: np.tile(np.broadcast_to(np.asarray(a, np.int64), (size,)), n)  # noqa: E731
        self.u = Var(shape=(n * size,), init=np.zeros(n * size, np.int64))
        self.v = Var(shape=(n * size,), init=np.zeros(n * size, np.int64))
        self.current_decay = Var(shape=(n * size,), init=tile(current_decay))
        self.voltage_decay = Var(shape=(n * size,), init=tile(voltage_decay))
        self.threshold = Var(shape=(n * size,), init=tile(threshold))
        self.bias = Var(shape=(n * size,), init=tile(bias))
        self.samples = Var(shape=(n,), init=np.asarray(samples, np.int64))
        from quantal.compile.streams import escape_thresholds

        theta = np.zeros(1, np.int64) if escape_scale is None else escape_thresholds(escape_scale)
        self.theta = Var(shape=theta.shape, init=theta)
        self.flags = Var(shape=(3,), init=np.array([int(spiking), int(subtract), int(escape_scale is not None)],
                                                   np.int64))  # fmt: skip
        self.layer = Var(shape=(1,), init=np.array([layer], np.int64))  # the layer index of stream 2
        self.seed = Var(shape=(2,), init=_seed_halves(seed))
        self.trial = Var(shape=(1,), init=np.array([trial], np.int64))
        self.a_in = InPort(shape=(n * size,))
        self.s_out = OutPort(shape=(n * size,))


@implements(proc=IRProjection, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyIRProjectionModel(PyLoihiProcessModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, bool, precision=1)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=32)
    weight: np.ndarray = LavaPyType(np.ndarray, np.int64)
    weight_fixed: np.ndarray = LavaPyType(np.ndarray, np.int64)
    release: np.ndarray = LavaPyType(np.ndarray, np.int64)
    stochastic: np.ndarray = LavaPyType(np.ndarray, np.int64)
    weight_exp: np.ndarray = LavaPyType(np.ndarray, np.int64)
    index: np.ndarray = LavaPyType(np.ndarray, np.int64)
    seed: np.ndarray = LavaPyType(np.ndarray, np.int64)
    trial: np.ndarray = LavaPyType(np.ndarray, np.int64)
    samples: np.ndarray = LavaPyType(np.ndarray, np.int64)
    history: np.ndarray = LavaPyType(np.ndarray, np.int64)
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def run_spk(self) -> None:
        from quantal.compile.reference import synaptic_sum, transmits

        self.a_out.send(self.a_buff.astype(np.int32))  # the input computed at the previous step
        # the spikes received now enter the history; row 0 holds those of `delay` steps ago
        self.history[:] = np.roll(self.history, -1, axis=0)
        self.history[-1] = self.s_in.recv().astype(np.int64)
        s = self.history[0].astype(bool)
        seed = (int(self.seed[0]) << 32) | int(self.seed[1])
        size, n_in = self.weight.shape
        # The IR step at which this input is integrated (Lava step tau = IR step tau - 1, sent at tau + 1).
        t = self.time_step
        delay = self.history.shape[0] - 1
        for k, sample in enumerate(self.samples):
            active = np.flatnonzero(s[k * n_in:(k + 1) * n_in]) if self.time_step > delay else np.zeros(0, np.int64)
            xi = None
            if self.stochastic[0]:
                xi = transmits(self.release, seed, int(self.trial[0]), int(sample), t, int(self.index[0]), active)
            self.a_buff[k * size:(k + 1) * size] = synaptic_sum(self.weight, self.weight_fixed, int(self.weight_exp[0]),
                                                                active, xi)  # fmt: skip


@implements(proc=IRNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyIRNeuronModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=32)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, bool, precision=1)
    u: np.ndarray = LavaPyType(np.ndarray, np.int64)
    v: np.ndarray = LavaPyType(np.ndarray, np.int64)
    current_decay: np.ndarray = LavaPyType(np.ndarray, np.int64)
    voltage_decay: np.ndarray = LavaPyType(np.ndarray, np.int64)
    threshold: np.ndarray = LavaPyType(np.ndarray, np.int64)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int64)
    samples: np.ndarray = LavaPyType(np.ndarray, np.int64)
    theta: np.ndarray = LavaPyType(np.ndarray, np.int64)
    flags: np.ndarray = LavaPyType(np.ndarray, np.int64)
    layer: np.ndarray = LavaPyType(np.ndarray, np.int64)
    seed: np.ndarray = LavaPyType(np.ndarray, np.int64)
    trial: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def run_spk(self) -> None:
        from quantal.compile.reference import LIFParams, LIFState, lif_step
        from quantal.compile.streams import escape_uniforms

        a = self.a_in.recv().astype(np.int64)  # the sum of the incoming projections (int32 arithmetic)
        spiking, subtract, escape = (bool(f) for f in self.flags)
        seed = (int(self.seed[0]) << 32) | int(self.seed[1])
        n = len(self.samples)
        size = a.shape[0] // n
        t = self.time_step - 1  # IR step
        out = np.zeros(a.shape, dtype=bool)
        for k, sample in enumerate(self.samples):
            sl = slice(k * size, (k + 1) * size)
            p = LIFParams(self.current_decay[sl], self.voltage_decay[sl], self.threshold[sl], self.bias[sl], spiking,
                          subtract, self.theta if escape else None)  # fmt: skip
            esc_u = None
            if escape:
                esc_u = escape_uniforms(seed, int(self.trial[0]), int(sample), t, int(self.layer[0]), size)
            s, st = lif_step(a[sl], LIFState(self.u[sl], self.v[sl]), p, esc_u)
            self.u[sl], self.v[sl] = st.u, st.v
            out[sl] = s
        self.s_out.send(out)
