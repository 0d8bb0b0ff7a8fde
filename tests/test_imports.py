"""Importing quantal and its sub-packages stays cheap: no torch, no numba at import time."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    ["quantal", "quantal.compile", "quantal.compile.reference", "quantal.hwsim", "quantal.train",
     "quantal.targets", "quantal.cli", "quantal.inspect", "quantal.pipeline", "quantal.cost", "quantal.plots",
     "quantal.compile.transform", "quantal.train.data"],
)  # fmt: skip
def test_import_is_cheap(module):
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'numba') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"
