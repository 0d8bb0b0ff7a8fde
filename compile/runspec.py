"""What a simulation run is asked to do, validated once for every executor (reference, hwsim, Lava).

``quantal run`` and the Python API share these rules: the input array, the number of steps, the seed, the
trials, and which quantities of which layers to record. Output arrays follow DESIGN.md: ``<layer>.spikes``
(uint8), ``<layer>.u`` and ``<layer>.v`` (int32) of shape (n_samples, T, size), ``<layer>.counts`` (int32,
spikes summed over steps, or the final v for a readout) of shape (n_samples, size), and a leading trial axis
when ``trials`` is given. Needs only numpy.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .ir import Network

RECORDABLE = ("spikes", "u", "v", "counts")
DTYPES = {"spikes": np.uint8, "u": np.int32, "v": np.int32, "counts": np.int32}
MAX_SEED = 2**64 - 1
MAX_STEPS = 2**20  # steps of one run (about a million: hours of simulated time at 1 ms per step)
MAX_TRIALS = 2**16
#: The largest total of output arrays a run allocates (8 GiB; QUANTAL_MAX_OUTPUT_BYTES overrides), checked
#: before anything is allocated.
MAX_OUTPUT_BYTES = 2**33


class RunError(ValueError):
    """Bad arguments or input for a simulation run (one line, names the problem)."""


@dataclass(frozen=True)
class RunSpec:
    """Validated run options: ``steps`` (None = the input's length), ``seed`` in [0, 2**64), ``trials``
    (None = a single run with trial index 0 and no trial axis), ``record`` and ``layers`` (names)."""

    steps: int | None = None
    seed: int = 0
    trials: int | None = None
    record: tuple[str, ...] = ("spikes",)
    layers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.steps is not None and (not _is_int(self.steps) or not 1 <= self.steps <= MAX_STEPS):
            raise RunError(f"steps must be an integer in [1, {MAX_STEPS}], got {self.steps!r}")
        if not _is_int(self.seed) or not 0 <= self.seed <= MAX_SEED:
            raise RunError(f"seed must be an integer in [0, 2**64), got {self.seed!r}")
        if self.trials is not None and (not _is_int(self.trials) or not 1 <= self.trials <= MAX_TRIALS):
            raise RunError(f"trials must be an integer in [1, {MAX_TRIALS}], got {self.trials!r}")
        record = tuple(self.record)
        if not record:
            raise RunError("record needs at least one of " + ", ".join(RECORDABLE))
        for q in record:
            if q not in RECORDABLE:
                raise RunError(f"cannot record {q!r} (choose from {', '.join(RECORDABLE)})")
        if len(set(record)) != len(record):
            raise RunError(f"record lists a quantity twice: {','.join(record)}")
        object.__setattr__(self, "record", record)
        if self.layers is not None:
            layers = tuple(self.layers)
            if not layers:
                raise RunError("layers must name at least one layer")
            object.__setattr__(self, "layers", layers)

    def layer_indices(self, net: Network) -> list[int]:
        """Indices of the recorded layers, in network order; unknown names raise :class:`RunError`."""
        if self.layers is None:
            return list(range(len(net.layers)))
        names = net.layer_names
        for name in self.layers:
            if name not in names:
                raise RunError(f"no layer named {name!r} (layers: {', '.join(names)})")
        return [i for i, n in enumerate(names) if n in self.layers]

    def n_trials(self) -> int:
        return 1 if self.trials is None else self.trials


def _is_int(x: object) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def check_input(spikes: np.ndarray, net: Network) -> np.ndarray:
    """Validate an input spike array and return it as C-contiguous uint8 of shape (n_samples, T_in, input size)
    (nonzero = spike), without a copy when it already is C-contiguous (a bool array is viewed as uint8).

    Accepts shape (n_samples, T_in, input size) or (n_samples, T_in, *input shape), dtype bool or uint8.
    """
    if not isinstance(spikes, np.ndarray):
        raise RunError(f"input spikes must be a numpy array, got {type(spikes).__name__}")
    if spikes.dtype not in (np.dtype(bool), np.dtype(np.uint8)):
        raise RunError(f"input spikes must be bool or uint8, got dtype {spikes.dtype.name}")
    shape = tuple(net.input_shape)
    expect = f"(n_samples, T_in, {net.input_size})" + (
        "" if len(shape) == 1 else f" or (n_samples, T_in, {', '.join(map(str, shape))})")
    if spikes.ndim < 3 or tuple(spikes.shape[2:]) not in ((net.input_size,), shape):
        if spikes.ndim == 3:
            raise RunError(
                f"input spikes have {spikes.shape[2]} channels but network '{net.name}' expects {net.input_size}"
            )
        raise RunError(f"input spikes must have shape {expect}, got {spikes.shape}")
    if spikes.shape[1] < 1:
        raise RunError("input spikes have no time steps (T_in = 0)")
    out = np.ascontiguousarray(spikes).reshape(spikes.shape[0], spikes.shape[1], net.input_size)
    return out.view(np.uint8) if out.dtype == np.bool_ else out


def n_steps(spec: RunSpec, spikes: np.ndarray) -> int:
    return spikes.shape[1] if spec.steps is None else spec.steps


def allocate(net: Network, n_samples: int, steps: int, spec: RunSpec) -> dict[str, np.ndarray]:
    """Zeroed output arrays named ``<layer>.<quantity>``, with a trial axis when ``spec.trials`` is set."""
    lead = () if spec.trials is None else (spec.trials,)
    if steps > MAX_STEPS:
        raise RunError(f"steps must be at most {MAX_STEPS}, got {steps}")
    total = 0
    for li in spec.layer_indices(net):  # the size first: nothing is allocated for a run that cannot fit
        for q in spec.record:
            per = net.layers[li].size * (1 if q == "counts" else steps)
            total += spec.n_trials() * n_samples * per * np.dtype(DTYPES[q]).itemsize
    limit = int(os.environ.get("QUANTAL_MAX_OUTPUT_BYTES", MAX_OUTPUT_BYTES))
    if total > limit:
        raise RunError(f"the recorded outputs would take {total / 2**30:,.1f} GiB ({spec.n_trials()} trial(s) x "
                       f"{n_samples} samples x {steps} steps of {', '.join(spec.record)}); the limit is "
                       f"{limit / 2**30:,.1f} GiB (QUANTAL_MAX_OUTPUT_BYTES): record fewer layers or quantities "
                       "(counts only), or run in batches")  # fmt: skip
    out: dict[str, np.ndarray] = {}
    for li in spec.layer_indices(net):
        layer = net.layers[li]
        for q in spec.record:
            shape = (n_samples, layer.size) if q == "counts" else (n_samples, steps, layer.size)
            out[f"{layer.name}.{q}"] = np.zeros(lead + shape, dtype=DTYPES[q])
    return out


def parse_list(text: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """``"a,b"`` -> ``("a", "b")``; None stays None."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    return tuple(s.strip() for s in items if s.strip())
