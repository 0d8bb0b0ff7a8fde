"""quantal's NIR exchange measured against the peers themselves (snnTorch, Norse, sinabs, spyx).

* ``export_agreement(peer, net)``: a quantal network (tests/targets/nets.py) exported to NIR, run in the peer by
  the peer's own importer (tests/targets/peer_run.py, in the peer's venv), against ``quantal run`` (hwsim) on the
  same spikes, with the output shifted by the network's depth (the IR's one step per layer; see
  quantal.targets.nir).
* ``import_agreement(peer, model)``: a model built in the peer and written by its own exporter, imported by
  quantal (calibrated on the spikes) and run in hwsim, against the peer's own simulation of that file (or of the
  original model where the peer cannot read its own file).

``python -m tests.targets.peers`` prints both tables (docs/targets.md); the tests assert the rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("peer_run.py")
VENVS = {"snntorch": None, "norse": None, "sinabs": ".venv-sinabs", "spyx": ".venv-spyx"}
# dt of the exchanged files: snnTorch's importer assumes 1e-4 s; sinabs reads time constants in steps; spyx and
# Norse take dt as an argument
DT = {"snntorch": 1e-4, "norse": 1e-4, "sinabs": 1.0, "spyx": 1.0}
NETS = ("dense", "cuba", "conv", "recurrent", "readout")
# (peer, model, input shape, dt, reference, reset). Norse 1.1 writes tau = dt * tau_mem (1e-5 s for its 10 ms
# default), so its file is read at dt = 2e-6 s, where both sides decay by 0.8 per step; sinabs resets by
# subtraction, which its files do not say (NIR's v_reset means reset to a value).
IMPORTS = (("snntorch", "synaptic", (20,), 1e-4, "run", "zero"), ("snntorch", "cnn", (1, 8, 8), 1e-4, "model", "zero"),
           ("snntorch", "recurrent", (20,), 1e-4, "model", "zero"), ("norse", "lif", (20,), 2e-6, "run", "zero"),
           ("sinabs", "cnn", (1, 8, 8), 1.0, "run", "zero"), ("sinabs", "cnn", (1, 8, 8), 1.0, "run", "subtract"),
           ("spyx", "lif", (20,), 1.0, "run", "subtract"))
# fmt: skip
SAMPLES, STEPS = 16, 30


class PeerMissing(RuntimeError):
    """The peer's venv is not built (``make peer-envs``)."""


def python(peer: str) -> str:
    env = os.environ.get(f"QUANTAL_{peer.upper()}_PYTHON")
    if env:
        return env
    venv = VENVS[peer]
    if venv is None:
        return sys.executable
    p = ROOT / venv / "bin" / "python"
    if not p.exists():
        raise PeerMissing(f"{peer}: no {venv} (make peer-envs builds it)")
    return str(p)


def _run(args: list[str]) -> tuple[np.ndarray | None, str]:
    """Run peer_run.py with ``args`` (the last one, "OUT", stands for the output file); its output or the error."""
    with tempfile.TemporaryDirectory(prefix="quantal-peer-") as tmp:
        out = Path(tmp) / "out.npy"
        r = subprocess.run([*args[:-1], str(out)], capture_output=True, text=True, timeout=900)
        if r.returncode:
            lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
            return None, lines[-1][:160] if lines else f"exit {r.returncode}"
        return np.load(out), ""


def _spikes(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((SAMPLES, STEPS, *shape)) < 0.3).astype(np.uint8)


def _quantal(net: Any, x: np.ndarray, shift: int) -> tuple[np.ndarray, bool]:
    """The output layer's spikes (or v / 64 of a readout: the NIR units) at steps shift .. shift + T - 1."""
    from quantal.hwsim import simulate

    pad = np.zeros((x.shape[0], shift, *x.shape[2:]), x.dtype)
    out = net.layers[-1]
    readout = out.neuron.kind == "readout"
    rec = simulate(net, np.concatenate([x, pad], 1), steps=x.shape[1] + shift, record=("spikes", "v"))
    y = rec[f"{out.name}.v"] / 64 if readout else rec[f"{out.name}.spikes"]
    return y[:, shift:], readout


def _compare(got: np.ndarray | None, want: np.ndarray, readout: bool, err: str) -> dict[str, Any]:
    if got is None:
        return {"status": "fails", "error": err}
    if got.size != want.size:
        return {"status": "fails", "error": f"output of shape {got.shape}, expected {want.shape}"}
    got = got.reshape(want.shape)
    if readout:
        scale = max(float(np.abs(want).max()), 1e-12)
        return {"status": "runs", "rel_error": float(np.abs(got - want).max() / scale)}
    return {"status": "runs", "agreement": float(((got > 0) == (want > 0)).mean()), "spikes_peer": float(got.sum()),
            "spikes_quantal": float(want.sum())}  # fmt: skip


def export_agreement(peer: str, name: str, seed: int = 0) -> dict[str, Any]:
    from quantal.targets import nir as qnir
    from tests.targets.nets import network

    net = network(name)
    x = _spikes(net.input_shape, seed)
    depth = qnir.depths(net)[0][net.layers[-1].name]
    # spyx emits the spike of the previous step's membrane: each layer lags one step, as in the IR, so only the
    # input's step remains to shift
    want, readout = _quantal(net, x, 1 if peer == "spyx" else depth)
    with tempfile.TemporaryDirectory(prefix="quantal-peer-") as tmp:
        path = Path(tmp) / f"{name}.nir"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qnir.export(net, path, dt=DT[peer])
        np.save(Path(tmp) / "x.npy", x)
        got, err = _run([python(peer), str(RUNNER), "run", peer, str(path), str(Path(tmp) / "x.npy"),
                         "--dt", repr(DT[peer]), "OUT"])  # fmt: skip
    return {"peer": peer, "net": name, **_compare(got, want, readout, err)}


def import_agreement(peer: str, model: str, shape: tuple[int, ...], dt: float, ref: str, reset: str = "zero",
                     seed: int = 5) -> dict[str, Any]:  # fmt: skip
    from quantal.targets import nir as qnir

    x = _spikes(shape, seed)
    with tempfile.TemporaryDirectory(prefix="quantal-peer-") as tmp:
        path, xs = Path(tmp) / f"{model}.nir", Path(tmp) / "x.npy"
        np.save(xs, x)
        r = subprocess.run([python(peer), str(RUNNER), "export", peer, model, str(path)], capture_output=True,
                           text=True, timeout=900)  # fmt: skip
        if r.returncode:
            return {"peer": peer, "net": model, "status": "fails", "error": r.stderr.strip().splitlines()[-1][:160]}
        args = ([python(peer), str(RUNNER), "run", peer, str(path), str(xs), "--dt", repr(dt)] if ref == "run" else
                [python(peer), str(RUNNER), "model", peer, model, str(xs)])  # fmt: skip
        got, err = _run([*args, "OUT"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net, _ = qnir.import_file(path, calib=x, dt=dt, name=model, reset=reset)
    # spyx's own simulation lags one step per layer, as the IR does (see export_agreement)
    want, readout = _quantal(net, x, 1 if peer == "spyx" else int(net.metadata["nir"]["delay_steps"]))
    row = {"peer": peer, "net": model, "reset": reset,
           "reference": "the peer's import" if ref == "run" else "the original model"}
    return {**row, **_compare(got, want, readout, err)}


def _cell(r: dict[str, Any]) -> str:
    if r["status"] == "fails":
        return f"fails: {r['error'].replace('|', '/')}"
    if "rel_error" in r:
        return f"runs; v max error {100 * r['rel_error']:.1f}% of max |v|"
    return (f"{100 * r['agreement']:.1f}% ({int(r['spikes_peer'])} vs {int(r['spikes_quantal'])} spikes)")


def main() -> None:
    print(f"quantal exports run in each peer ({SAMPLES} samples x {STEPS} steps of Bernoulli(0.3) spikes; "
          "entries = (sample, step, neuron) where peer and quantal run agree; peer vs quantal spike totals)\n")
    print("| network | " + " | ".join(VENVS) + " |")
    print("|---|" + "---|" * len(VENVS))
    for name in NETS:
        cells = []
        for peer in VENVS:
            try:
                cells.append(_cell(export_agreement(peer, name)))
            except PeerMissing as e:
                cells.append(str(e))
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\npeers' exports imported by quantal (hwsim) against the peer's own simulation\n")
    print("| peer | model | reference | quantal import | agreement (peer vs quantal spikes) |")
    print("|---|---|---|---|---|")
    for peer, model, shape, dt, ref, reset in IMPORTS:
        try:
            r = import_agreement(peer, model, shape, dt, ref, reset)
            print(f"| {peer} | {model} | {r.get('reference', '')} | dt {dt:g} s, reset {reset} | {_cell(r)} |")
        except PeerMissing as e:
            print(f"| {peer} | {model} | | | {e} |")


if __name__ == "__main__":
    main()
