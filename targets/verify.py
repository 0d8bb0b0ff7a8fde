"""``quantal verify``: run a network on a target and in hwsim, and compare every recorded value.

The comparison covers spikes, u and v of every layer at every step of every sample; the first divergence is
the earliest step (then layer order, sample, neuron) where any of them differ.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from quantal.compile.ir import Network

QUANTITIES = ("spikes", "u", "v")


def first_divergence(net: Network, got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """None when ``got`` equals ``want`` everywhere, else where they first differ."""
    best: tuple | None = None
    for li, layer in enumerate(net.layers):
        for q in QUANTITIES:
            k = f"{layer.name}.{q}"
            if k not in got or got[k].shape != want[k].shape:
                return {"layer": layer.name, "quantity": q, "message": f"{k} missing or of another shape"}
            diff = np.argwhere(got[k] != want[k])  # (sample, step, neuron)
            if diff.size:
                n, t, i = (int(v) for v in diff[np.lexsort((diff[:, 2], diff[:, 0], diff[:, 1]))][0])
                cand = (t, li, n, i, layer.name, q, int(got[k][n, t, i]), int(want[k][n, t, i]))
                best = cand if best is None or cand[:4] < best[:4] else best
    if best is None:
        return None
    t, _, n, i, name, q, g, w = best
    return {"layer": name, "quantity": q, "sample": n, "step": t, "neuron": i, "target": g, "hwsim": w}


def verify_lava(net: Network, spikes: np.ndarray, *, steps: int | None = None, seed: int = 0,
                trial: int = 0) -> tuple[dict[str, Any] | None, dict[str, np.ndarray]]:  # fmt: skip
    """Run ``spikes`` in Lava (its venv, a subprocess) and in hwsim; returns (first divergence or None, hwsim)."""
    from quantal.hwsim import simulate

    from .lava import driver

    steps = spikes.shape[1] if steps is None else steps
    lava = driver.run_in_lava(net, spikes, steps, seed=seed, trial=trial)
    hw = simulate(net, spikes, steps=steps, seed=seed, trials=trial + 1, record=QUANTITIES)
    hw = {k: v[trial] for k, v in hw.items()}
    return first_divergence(net, lava, hw), hw


def verify_netx(net: Network, spikes: np.ndarray, *, steps: int | None = None) -> tuple[dict[str, Any] | None,
                                                                                         dict[str, np.ndarray]]:
    """Export ``net`` to NetX HDF5, build it in Lava with lava-dl's own reader (``netx.hdf5.Network``), and compare
    spikes, u and v with hwsim."""
    import tempfile
    from pathlib import Path

    from quantal.hwsim import simulate

    from . import netx
    from .lava import driver

    steps = spikes.shape[1] if steps is None else steps
    with tempfile.TemporaryDirectory(prefix="quantal-netx-") as tmp:
        path = netx.export(net, Path(tmp) / "net.h5", steps=steps)
        got = driver.run_netx_in_lava(path, spikes, steps)
    got = {k.replace(f"layer{i}.", f"{la.name}.", 1): v for i, la in enumerate(net.layers)
           for k, v in got.items() if k.startswith(f"layer{i}.")}  # fmt: skip
    hw = simulate(net, spikes, steps=steps, record=QUANTITIES)
    return first_divergence(net, got, hw), hw
