"""Bounded mutation fuzzers over the other inputs a user hands quantal: training configurations, sweep files,
device files and ``.npy`` spike arrays. Every case is accepted or refused with the module's named error of one
line; anything else is a bug. Fixed seeds in CI; QUANTAL_FUZZ=N runs N cases per fuzzer, QUANTAL_FUZZ_SEED=S
another seed (docs/limits.md)."""

import io
import os

import numpy as np
import pytest
import yaml

from quantal.compile.testing import fuzz_bytes, fuzz_values

FUZZ_CASES = int(os.environ.get("QUANTAL_FUZZ", "150"))
FUZZ_SEED = int(os.environ.get("QUANTAL_FUZZ_SEED", "0"))
def mutations(base, seed):
    return fuzz_values(base, np.random.default_rng(seed), FUZZ_CASES)


def accepted_or_refused(call, error):
    """``call()`` returns, or raises ``error`` with a one-line message; any other exception fails the test."""
    try:
        call()
    except error as e:
        assert "\n" not in str(e), str(e)


def fuzz_yaml_file(path, base, seed, load, error):
    """Every mutation of ``base``, written to ``path`` as YAML, is loaded by ``load(path)`` or refused."""
    for m in mutations(base, seed):
        path.write_text(yaml.safe_dump(m))
        accepted_or_refused(lambda: load(path), error)


def test_fuzz_training_configs():
    from quantal.train import config as C

    base = {"name": "f", "seed": 0, "data": {"name": "digits", "encoder": "rate", "steps": 6, "limit": 100},
            "model": {"kind": "lif", "hidden": [32, 16], "p": 0.5, "escape": "sigmoid", "estimator": "surrogate"},
            "train": {"epochs": 2, "lr": 0.01, "batch_size": 32},
            "quant": {"epochs": 1, "lr": 0.001}}  # fmt: skip
    for m in mutations(base, FUZZ_SEED):
        accepted_or_refused(lambda m=m: C.validate(m), C.ConfigError)


def test_fuzz_sweep_files(tmp_path):
    from quantal import sweep
    from quantal.compile import ir
    from quantal.compile.testing import random_network

    net = ir.save(random_network(np.random.default_rng(0), [8, 4]), tmp_path / "n.qnet")
    base = {"name": "s", "networks": {"a": str(net)}, "data": {"name": "digits", "split": "test", "limit": 10},
            "trials": 2, "seed": 0, "grid": {"device": ["ideal", {"preset": "pcm", "drift_compensation": False}],
                                             "time": [1, 3600], "weight_bits": [8, 4], "release": [0.5]}}  # fmt: skip
    fuzz_yaml_file(tmp_path / "s.yaml", base, FUZZ_SEED + 1, sweep.load, sweep.SweepError)


def test_fuzz_device_files(tmp_path):
    from quantal.hwsim import devices

    base = {"model": "generic", "prog_sigma": 0.05, "read_sigma_rel": 0.01, "drift_nu": 0.05, "t0": 20.0,
            "levels": 16, "g_max": 25.0, "p_stuck_on": 0.0, "p_stuck_off": 0.001, "time": 3600}  # fmt: skip
    fuzz_yaml_file(tmp_path / "d.yaml", base, FUZZ_SEED + 2, devices.load, devices.DeviceError)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # numpy parses hostile headers with ast
def test_fuzz_spike_arrays(tmp_path):
    from quantal.cli import UsageError, _load_spikes

    buf = io.BytesIO()
    np.save(buf, (np.random.default_rng(0).random((3, 4, 10)) < 0.3))
    data = buf.getvalue()
    rng = np.random.default_rng(FUZZ_SEED + 3)
    p = tmp_path / "x.npy"
    for _ in range(FUZZ_CASES):
        p.write_bytes(fuzz_bytes(data, rng, within=140))  # mostly the header, where the parser lives
        accepted_or_refused(lambda: _load_spikes(str(p)), UsageError)
