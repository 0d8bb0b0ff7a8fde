"""Drive Lava from the host process: Lava 0.10 lives in its own Python 3.10 venv (``make lava-env``).

:func:`run_in_lava` writes the network and the input to a temporary folder, runs
``python -m quantal.targets.lava.runner`` with the Lava venv's interpreter and reads the result back.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from quantal.compile.ir import Network, save

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The largest total of weight-matrix entries a Lava graph may hold: every projection is one (target size x n,
#: source size x n) block-diagonal matrix for n samples (a conv2d projection expanded), int32 in Lava.
MAX_MATRIX_CELLS = 2**28


class LavaUnavailable(RuntimeError):
    """No Lava environment: Lava 0.10 needs Python 3.10 (see ``make lava-env``)."""


class LavaRunError(RuntimeError):
    """The Lava run failed; the message holds the runner's last lines of output."""


def lava_python() -> Path | None:
    """The Lava venv's interpreter: ``$QUANTAL_LAVA_PYTHON``, else ``<repo>/.venv-lava/bin/python``."""
    env = os.environ.get("QUANTAL_LAVA_PYTHON")
    candidates = [Path(env)] if env else [REPO_ROOT / ".venv-lava" / "bin" / "python"]
    for p in candidates:
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


def run_netx_in_lava(path: str | Path, spikes: np.ndarray, steps: int | None = None, timeout: float = 600) -> dict:
    """Run a NetX HDF5 file in Lava, built by lava-dl's own reader (``lava.lib.dl.netx.hdf5.Network``, see
    quantal.targets.lava.netx_reader); outputs ``layer<k>.spikes/u/v``."""
    return _run(["--netx"], path, spikes, steps, timeout)


def run_in_lava(net: Network, spikes: np.ndarray, steps: int | None = None, timeout: float = 600, *,
                seed: int = 0, trial: int = 0, stock_only: bool = False, timing: dict | None = None,
                spikes_only: bool = False) -> dict:  # fmt: skip
    """Run ``spikes`` (n_samples, T_in, input.size) through ``net`` in Lava; returns spikes/u/v per layer.

    ``seed`` and ``trial`` select the random streams of stochastic layers; ``stock_only`` refuses layers that
    need quantal's own Lava processes; ``timing``, if given, receives ``seconds``: the Lava run's wall time
    (graph compilation included), and ``steady_seconds``: steps 2..T only, as the runner measured them.
    ``spikes_only`` runs steps 2..T in one call without reading u and v (they come back as zeros)."""
    n = int(spikes.shape[0])
    cells = sum(n * net.layer(p.target).size * n * int(np.prod(net.source_shape(p))) for p in net.projections)
    if cells > MAX_MATRIX_CELLS:  # block-diagonal matrices of n samples: checked before Lava allocates them
        raise LavaRunError(f"the Lava graph of {n} samples needs {cells:,} weight-matrix entries (at most "
                           f"{MAX_MATRIX_CELLS:,}); verify fewer samples at a time")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="quantal-lava-") as tmp:
        netp = Path(tmp, "net.qnet")
        save(net, netp)
        extra = ["--seed", str(seed), "--trial", str(trial)] + (["--stock-only"] if stock_only else [])
        extra += ["--spikes-only"] if spikes_only else []
        return _run(extra, netp, spikes, steps, timeout, timing)


def _run(extra: list[str], netp: str | Path, spikes: np.ndarray, steps: int | None, timeout: float,
         timing: dict | None = None) -> dict:  # fmt: skip
    py = lava_python()
    if py is None:
        raise LavaUnavailable(
            "Lava is not set up: it needs Python 3.10; run `make lava-env` (or set QUANTAL_LAVA_PYTHON)"
        )
    with tempfile.TemporaryDirectory(prefix="quantal-lava-") as tmp:
        xp, outp = Path(tmp, "x.npy"), Path(tmp, "out.npz")
        np.save(xp, np.asarray(spikes != 0, dtype=np.uint8))
        cmd = [str(py), "-m", "quantal.targets.lava.runner", str(Path(netp).resolve()), str(xp), str(outp)]
        if steps is not None:
            cmd += ["--steps", str(steps)]
        cmd += extra
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp)
        if r.returncode != 0:
            tail = "\n".join((r.stderr or r.stdout).strip().splitlines()[-15:])
            raise LavaRunError(f"Lava runner exited with {r.returncode}: {tail}")
        if timing is not None:  # the runner prints lava_seconds=... and lava_steady_seconds=...
            names = {"lava_seconds": "seconds", "lava_steady_seconds": "steady_seconds"}
            for key, _, value in (line.partition("=") for line in r.stdout.splitlines()):
                if key in names:
                    timing[names[key]] = float(value)
        with np.load(outp) as f:
            return {k: f[k] for k in f.files}
