"""Neftci's scaling test on a short run of examples/s2m_fashion.py: multiplying the hidden weights by 0.1 at
inference leaves the S2M's error unchanged (its units normalise each weight row) and ruins the stochastic-sigmoid
network and the S2M without weight normalisation."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from s2m_fashion import run  # noqa: E402

from quantal.train import data  # noqa: E402


@pytest.mark.slow
def test_weight_scaling_leaves_s2m_unchanged_and_ruins_the_others():
    tr, te = data.load_fashion_mnist("train"), data.load_fashion_mnist("test")
    tr = (torch.tensor(tr.x[:5000]), torch.tensor(tr.y[:5000]))
    te = (torch.tensor(te.x[:2000]), torch.tensor(te.y[:2000]))
    r = {name: run(name, 0, 1, 2, tr, te, log=lambda s: None) for name in ("s2m", "s2m_no_wn", "sigmoid")}
    for name in r:
        assert r[name]["error"] < 0.4, name  # all learn (about 30% error after one short epoch; chance is 90%)
    # S2M: the same probabilities up to rounding of w / ||w||, so the same samples nearly everywhere
    assert abs(r["s2m"]["error_x0.1"] - r["s2m"]["error"]) < 0.005
    # without the normalisation the units' inputs shrink tenfold: near chance (about 89% error when measured)
    for name in ("s2m_no_wn", "sigmoid"):
        assert r[name]["error_x0.1"] > r[name]["error"] + 0.3, name
