"""Bring your own model: a stochastic spiking CNN of quantal.nn layers, trained in your own loop, lowered with
from_torch, fine-tuned in exact fixed point, evaluated in hwsim on 20 simulated PCM chips, verified in Lava.

    python examples/own_model.py [--epochs 6] [--out runs/own_model]

Runs on the 8x8 digits that scikit-learn ships (no download), rate-coded over 8 steps. docs/guide.md walks
through it line by line; every number it prints comes from this script.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from quantal import nn as qnn
from quantal.compile import from_torch, save
from quantal.hwsim import devices, simulate
from quantal.train import data

STEPS = 8


class DigitCNN(nn.Module):
    """conv 1->8 3x3 (blank-out, p = 0.75) -> escape-noise LIF -> sum-pool 2 -> dense 128->32 -> LIF -> readout."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = qnn.BlankOutConv2d(1, 8, 3, padding=1, p=0.75)  # moment mode while training
        self.lif1 = qnn.LIF((8, 8, 8), alpha=0.0, beta=0.5, threshold=0.5, escape="sigmoid", escape_beta=8.0)
        self.pool = qnn.SumPool2d(2)
        self.flat = qnn.Flatten()
        self.fc = qnn.Linear(8 * 4 * 4, 32)
        self.lif2 = qnn.LIF(32, alpha=0.0, beta=0.5, threshold=0.5)
        self.out = qnn.Linear(32, 10)
        self.readout = qnn.Readout(10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.lif1(self.conv(x))
        s = self.lif2(self.fc(self.flat(self.pool(s))))
        return self.readout(self.out(s))


def spikes(images: np.ndarray, seed: int) -> torch.Tensor:
    """Rate-coded (n, T, 1, 8, 8) spikes of images in [0, 1]."""
    return torch.from_numpy(data.rate_encode(images, STEPS, seed=seed)).float().reshape(-1, STEPS, 1, 8, 8)


def run(epochs: int = 6, out_dir: str | Path = "runs/own_model", log=print) -> dict:  # noqa: ANN001
    """The whole path; returns the numbers it printed (``make demo`` stores them in its summary)."""
    torch.manual_seed(0)
    res: dict = {}
    train, test = data.load("digits", "train"), data.load("digits", "test")
    y_train, y_test = torch.from_numpy(train.y), test.y
    x_test = spikes(test.x, seed=1)
    run_steps = STEPS + 3  # the input, plus one step per layer for the last spikes to reach the readout
    pad = lambda x: torch.cat([x, torch.zeros(x.shape[0], run_steps - STEPS, *x.shape[2:])], 1)  # noqa: E731

    # 1. train in float, in your own loop
    model = DigitCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(epochs):
        t0, x_train = time.perf_counter(), pad(spikes(train.x, seed=100 + epoch))
        for idx in torch.randperm(len(y_train)).split(64):
            loss = nn.functional.cross_entropy(qnn.logits(model(x_train[idx])), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = (qnn.logits(model(pad(x_test))).argmax(1).numpy() == y_test).mean()
        log(f"float epoch {epoch + 1}: loss {loss.item():.3f}, test accuracy {acc:.1%} "
            f"({time.perf_counter() - t0:.1f} s)")
        res["float_accuracy"] = float(acc)
    model.conv.mode = "sampled"  # what the hardware does: every link draws its release

    # 2. lower to the IR (calibrated on training spikes) and fine-tune in exact fixed point
    qnet, report = from_torch(model, pad(x_test[:8]), calibration=pad(spikes(train.x[:256], seed=7)))
    qopt = torch.optim.Adam(qnet.parameters(), lr=1e-3)
    x_train = pad(spikes(train.x, seed=200))
    for b, idx in enumerate(torch.randperm(len(y_train)).split(64)):
        out = qnet(x_train[idx], seed=0, trial=b, samples=idx)  # stochastic streams of training trial b
        loss = nn.functional.cross_entropy(out.logits, y_train[idx])
        qopt.zero_grad()
        loss.backward()
        qopt.step()
    # the input encoding in the metadata lets `quantal eval --data digits` and `quantal report` encode test digits
    spec = {"dataset": "digits", "encoder": "rate", "steps": STEPS, "run_steps": run_steps}
    net = qnet.to_network("digit_cnn", metadata={"input": spec})
    path = save(net, Path(out_dir) / "digit_cnn.qnet")
    res["network"] = str(path)
    log(f"wrote {path}: " + ", ".join(f"{r['name']} scale {r['scale']:g}" for r in report))

    # 3. evaluate: fake-quant = hwsim bit for bit; then on 20 PCM chips one day after programming
    x = pad(x_test).numpy().astype(bool)
    hw = simulate(net, x, seed=0, record=("counts",), layers=("readout",))["readout.counts"]
    fq = qnet(pad(x_test), seed=0).final_v.detach().numpy()
    res["hwsim_accuracy"], res["fake_quant_equals_hwsim"] = float((hw.argmax(1) == y_test).mean()), bool(
        np.array_equal(hw, fq))
    log(f"hwsim test accuracy {res['hwsim_accuracy']:.1%}; fake-quant identical: {res['fake_quant_equals_hwsim']}")
    pcm = devices.from_config("pcm", time=86400.0)
    chips = simulate(net, x, seed=0, trials=20, record=("counts",), layers=("readout",), device=pcm)
    accs = (chips["readout.counts"].argmax(2) == y_test).mean(1)
    res["pcm_1day_mean"], res["pcm_1day_sd"] = float(accs.mean()), float(accs.std(ddof=1))
    log(f"on PCM after 1 day, 20 chips: {accs.mean():.1%} +- {accs.std(ddof=1):.1%} (mean +- sd)")

    # 4. verify in Lava (when its venv exists): spikes, u and v identical to hwsim
    try:
        from quantal.targets.verify import verify_lava

        div, _ = verify_lava(net, x[:4])
        res["lava"] = "identical to hwsim" if div is None else f"differs: {div}"
    except Exception as e:  # noqa: BLE001 - Lava is optional here
        res["lava"] = f"not checked: {e}"
    log(f"Lava: {res['lava']}")
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--out", default="runs/own_model")
    args = p.parse_args()
    run(args.epochs, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
