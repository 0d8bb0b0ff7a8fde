"""lava-dl's own NetX reader (``lava.lib.dl.netx.hdf5.Network``) in the Lava venv, without torch.

lava-dl 0.6 pins CUDA builds of torch < 2.4, so the Lava venv installs it with ``--no-deps``. Its NetX reader
needs torch at two imports only, neither on the path of the neurons quantal writes:

* ``lava.lib.dl.slayer.neuron.rf.neuron_params`` (slayer is lava-dl's torch training library), used for
  resonate-and-fire neurons: the stand-in raises if a file asks for them;
* ``lava.lib.dl.netx.sequential_modules`` (a torch data pipeline that ``lava.lib.dl.netx`` imports): an empty
  module stands in.

:func:`install_standin` registers those two in ``sys.modules`` before lava-dl is imported; every other line that
runs is lava-dl's. Runs in the Lava venv only (Python 3.10, numpy < 2).
"""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np


def install_standin() -> None:
    if "lava.lib.dl.netx.hdf5" in sys.modules:
        return

    def neuron_params(*_: Any, **__: Any) -> Any:
        raise NotImplementedError("resonate-and-fire NetX neurons need lava-dl's slayer (torch), which quantal's "
                                  "Lava venv does not install")  # fmt: skip

    for name in ("lava.lib.dl.slayer", "lava.lib.dl.slayer.neuron", "lava.lib.dl.slayer.neuron.rf",
                 "lava.lib.dl.netx.sequential_modules"):  # fmt: skip
        mod = types.ModuleType(name)
        mod.__path__ = []  # a package, so that submodules resolve to the stand-ins
        mod.__file__ = __file__  # Lava's compiler looks up the source file of every module it meets
        sys.modules[name] = mod
    sys.modules["lava.lib.dl.slayer.neuron.rf"].neuron_params = neuron_params


def network(path: str) -> Any:
    """``lava.lib.dl.netx.hdf5.Network(net_config=path)``: the file built into Lava processes by lava-dl."""
    install_standin()
    from lava.lib.dl import netx

    return netx.hdf5.Network(net_config=str(path))


def run(path: str, spikes: np.ndarray, steps: int) -> dict[str, np.ndarray]:
    """Run a NetX file with lava-dl's reader, one sample at a time (a NetX network has no batch axis); spikes,
    u and v of every layer (``layer<k>.*``, in the IR's flat C-order) at every step."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    from .processes import SpikeInput, SpikeRecorder

    n = spikes.shape[0]
    x = spikes.reshape(n, spikes.shape[1], -1).astype(np.int32)
    out: dict[str, list[np.ndarray]] = {}
    for k in range(n):
        net = network(path)
        src = SpikeInput(data=_to_lava(x[k].T, net.inp.shape))
        (src.s_out if len(net.inp.shape) == 1 else src.s_out.reshape(net.inp.shape)).connect(net.inp)
        recs, neurons = [], []
        for block in net.layers:
            rec = SpikeRecorder(shape=(int(np.prod(block.out.shape)), steps))
            block.out.flatten().connect(rec.a_in)
            recs.append((rec, block.out.shape))
            neurons.append(block.neuron)
        u = [np.zeros((steps, int(np.prod(b.out.shape))), np.int64) for b in net.layers]
        v = [np.zeros_like(a) for a in u]
        try:
            for t in range(steps):
                src.run(condition=RunSteps(num_steps=1), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
                for i, neu in enumerate(neurons):
                    u[i][t] = _from_lava(neu.u.get(), net.layers[i].out.shape)
                    v[i][t] = _from_lava(neu.v.get(), net.layers[i].out.shape)
            s = [rec.data.get() for rec, _ in recs]
        finally:
            src.stop()
        for i, (_, shape) in enumerate(recs):
            sp = _from_lava_flat(s[i].T, shape)  # (steps, size) in C-order of (C, H, W)
            out.setdefault(f"layer{i}.spikes", []).append(sp.astype(np.uint8))
            out.setdefault(f"layer{i}.u", []).append(u[i].astype(np.int32))
            out.setdefault(f"layer{i}.v", []).append(v[i].astype(np.int32))
    return {k: np.stack(v) for k, v in out.items()}


def _to_lava(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(size, T) input in the IR's C-order (C, H, W) -> (size, T) in the order of Lava's (W, H, C) port."""
    if len(shape) == 1:
        return x
    w, h, c = shape
    return x.reshape(c, h, w, -1).transpose(2, 1, 0, 3).reshape(w * h * c, -1)


def _from_lava(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A Lava (W, H, C) (or flat) state -> the IR's flat C-order (C, H, W)."""
    a = np.asarray(a)
    if len(shape) == 1:
        return a.reshape(-1)
    return a.reshape(shape).transpose(2, 1, 0).reshape(-1)


def _from_lava_flat(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(T, size) spikes flattened in Lava's (W, H, C) order -> (T, size) in the IR's C-order."""
    if len(shape) == 1:
        return a
    w, h, c = shape
    return a.reshape(-1, w, h, c).transpose(0, 3, 2, 1).reshape(a.shape[0], -1)
