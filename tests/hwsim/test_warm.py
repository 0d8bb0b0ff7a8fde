"""Warm start: after ``quantal warmup`` a fresh process runs networks without compiling anything."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from quantal.compile import ir
from quantal.compile.testing import random_graph, random_network

pytestmark = pytest.mark.slow


def _cache_files(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*") if p.suffix in (".nbi", ".nbc")}


def test_after_warmup_runs_compile_nothing(tmp_path):
    cache = tmp_path / "numba-cache"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    r = subprocess.run([sys.executable, "-m", "quantal", "warmup", "-q"], env=env, capture_output=True, text=True,
                       timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stderr
    warm = _cache_files(cache)
    assert any("kernels.run_kernel" in f for f in warm) and any("device_kernel" in f for f in warm)
    rng = np.random.default_rng(11)
    nets = {"stoch": random_network(rng, [30, 20, 5], release="random", escape=True, readout=True),
            "det": random_network(rng, [30, 20, 5]),
            "graph": random_graph(rng, conv=True, release="random", escape=True)}  # fmt: skip
    (tmp_path / "pcm.yaml").write_text("preset: pcm\n")
    for name, net in nets.items():
        p = ir.save(net, tmp_path / f"{name}.qnet")
        x = (rng.random((5, 7, *net.input_shape)) < 0.3).astype(np.uint8)
        np.save(tmp_path / "x.npy", x.reshape(5, 7, -1))
        for extra in ([], ["--device", str(tmp_path / "pcm.yaml"), "--time", "86400", "--trials", "2"]):
            r = subprocess.run([sys.executable, "-m", "quantal", "run", str(p), "--input", str(tmp_path / "x.npy"),
                                "--out", str(tmp_path / "o.npz"), "--record", "spikes,u,v,counts", "-q", *extra],
                               env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
            assert r.returncode == 0, r.stderr
    assert _cache_files(cache) == warm  # nothing new was compiled
