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
