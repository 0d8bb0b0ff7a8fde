"""A user's own nn.Module of quantal.nn layers, end to end: it trains, lowers with from_torch, runs bit-exactly in
hwsim and on a device, verifies in Lava, and saves / exports."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from quantal import nn as qnn
from quantal.compile import from_torch, ir
from quantal.hwsim import devices, simulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))


@pytest.mark.slow
@pytest.mark.usefixtures("lava")
def test_the_guide_example_runs_end_to_end(tmp_path):
    import own_model

    lines = []
    res = own_model.run(epochs=1, out_dir=tmp_path, log=lines.append)
    assert res["fake_quant_equals_hwsim"] and res["lava"] == "identical to hwsim"
    assert 0.5 < res["hwsim_accuracy"] <= 1 and 0.3 < res["pcm_1day_mean"] <= 1
    net = ir.load(res["network"])
    assert net.projections[0].kind == "conv2d" and net.projections[0].synapse.stochastic
    assert any("hwsim test accuracy" in m for m in lines)


def test_an_mlp_of_quantal_layers_trains_compiles_and_exports_to_nir(tmp_path):
    import warnings

    from quantal.targets import nir as qnir

    torch.manual_seed(0)
    model = nn.Sequential(qnn.BlankOutLinear(16, 12, p=0.5, mode="moment"), qnn.LIF(12, beta=0.75),
                          qnn.Linear(12, 3), qnn.Readout(3))  # fmt: skip
    x = (torch.rand(64, 6, 16) < 0.3).float()
    y = torch.randint(0, 3, (64,))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    losses = []
    for _ in range(15):  # it trains in a plain loop
        loss = nn.functional.cross_entropy(qnn.logits(model(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    qnet, _ = from_torch(model, x[:4], calibration=x)
    qopt = torch.optim.Adam(qnet.parameters(), 1e-3)
    out = qnet(x, seed=0, trial=0)  # and trains in fixed point
    nn.functional.cross_entropy(out.logits, y).backward()
    qopt.step()
    net = qnet.to_network("mlp")
    assert net.layers[0].neuron.scalar("voltage_decay") == 1024  # beta 0.75 -> 4096 (1 - 0.75)
    hw = simulate(net, x.numpy().astype(bool), seed=0, record=("counts",))
    assert np.array_equal(hw["3.counts"], qnet(x, seed=0).final_v.detach().numpy())
    spec = devices.from_config({"preset": "rram", "read_sigma_rel": 0.0}, time=3600.0)
    from quantal.train.fakequant import DeviceRun

    dv = qnet(x, seed=0, device=DeviceRun(spec, seed=0, trial=0)).final_v.detach().numpy()
    hw_dev = simulate(net, x.numpy().astype(bool), seed=0, record=("counts",), device=spec)
    assert np.array_equal(hw_dev["3.counts"], dv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qnir.export(net, tmp_path / "mlp.nir")
    back, rows = qnir.import_file(tmp_path / "mlp.nir")  # exact: the IR travels in the NIR metadata
    assert [p.synapse for p in back.projections] == [p.synapse for p in net.projections] and rows == []
    assert back.layers == net.layers
