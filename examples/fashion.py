"""Fashion-MNIST with your own quantal.nn models: a stochastic spiking CNN, and a recurrent SNN that reads the
image row by row (28 steps), with and without its recurrence. Not part of the tests; the numbers in
docs/train.md come from these commands.

    python examples/fashion.py cnn [--epochs 5] [--mode moment|sampled] [--train N] [--chips-test N] [--out DIR]
    python examples/fashion.py rows [--epochs 6] [--recurrent | --no-recurrent] [--out runs/fashion]

Both train in float in a plain loop (the CNN's stochastic convolutions in ``moment`` mode by default: the
Gaussian with the release sum's mean and variance: two convolutions instead of a draw per synapse), lower with
from_torch (calibrated on 512 training samples), and measure
the fixed-point network in hwsim (= fake-quant bit for bit) on the test split, then on 20 simulated PCM chips one
year after programming. They print one line per result and write ``<out>/<task>.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from quantal import nn as qnn
from quantal.compile import from_torch, ir
from quantal.hwsim import devices, simulate
from quantal.train import data


class CNN(nn.Module):
    """conv 1->16 3x3 (stochastic release p = 0.75) -> escape-noise LIF -> sum-pool 2 -> conv 16->16 3x3 (p = 0.75)
    -> LIF -> sum-pool 2 -> dense 784->128 -> LIF -> dense 128->10 -> readout."""

    def __init__(self, mode: str = "moment") -> None:
        super().__init__()
        self.c1 = qnn.BlankOutConv2d(1, 16, 3, padding=1, p=0.75, mode=mode)
        self.l1 = qnn.LIF((16, 28, 28), beta=0.5, threshold=0.5, escape="sigmoid", escape_beta=8.0)
        self.p1 = qnn.SumPool2d(2)
        self.c2 = qnn.BlankOutConv2d(16, 16, 3, padding=1, p=0.75, mode=mode)
        self.l2 = qnn.LIF((16, 14, 14), beta=0.5, threshold=0.5)
        self.p2 = qnn.SumPool2d(2)
        self.flat = qnn.Flatten()
        self.fc = qnn.Linear(16 * 7 * 7, 128)
        self.l3 = qnn.LIF(128, beta=0.5, threshold=0.5)
        self.out = qnn.Linear(128, 10)
        self.readout = qnn.Readout(10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.p1(self.l1(self.c1(x)))
        s = self.p2(self.l2(self.c2(s)))
        return self.readout(self.out(self.l3(self.fc(self.flat(s)))))


class Rows(nn.Module):
    """28 binary channels per step (one image row), LIF 128 (recurrent or not) -> readout 10."""

    def __init__(self, recurrent: bool) -> None:
        super().__init__()
        self.fc = qnn.Linear(28, 128)
        kw = {"beta": 0.9, "alpha": 0.5, "threshold": 0.5}
        self.hidden = qnn.RecurrentLIF(128, **kw) if recurrent else qnn.LIF(128, **kw)
        self.out = qnn.Linear(128, 10)
        self.readout = qnn.Readout(10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.out(self.hidden(self.fc(x))))


def pad(x: torch.Tensor, extra: int) -> torch.Tensor:
    return torch.cat([x, torch.zeros(x.shape[0], extra, *x.shape[2:], dtype=x.dtype)], 1)


def cnn_inputs(images: np.ndarray, steps: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(data.rate_encode(images, steps, seed=seed)).reshape(-1, steps, 1, 28, 28)


def row_inputs(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy((images.reshape(-1, 28, 28) > 0.5).astype(np.uint8))  # step t = row t


def train_float(model: nn.Module, make_x, y: torch.Tensor, epochs: int, batch: int, log) -> None:  # noqa: ANN001
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for epoch in range(epochs):
        t0, x = time.perf_counter(), make_x(epoch)
        for idx in torch.randperm(len(y)).split(batch):
            loss = nn.functional.cross_entropy(qnn.logits(model(x[idx].float())), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        log(f"float epoch {epoch + 1}/{epochs}: loss {loss.item():.3f} ({time.perf_counter() - t0:.0f} s)")


def float_accuracy(model: nn.Module, x: torch.Tensor, y: np.ndarray) -> float:
    with torch.no_grad():
        preds = torch.cat([qnn.logits(model(x[i].float())).argmax(1) for i in torch.arange(len(x)).split(500)])
    return float((preds.numpy() == y).mean())


def evaluate(net: ir.Network, x: np.ndarray, y: np.ndarray, chips_x: np.ndarray, chips_y: np.ndarray) -> dict:
    out = net.layers[-1].name
    hw = simulate(net, x, seed=0, record=("counts",), layers=(out,))[f"{out}.counts"]
    pcm = devices.from_config("pcm", time=365 * 86400.0)
    chips = simulate(net, chips_x, seed=0, trials=20, record=("counts",), layers=(out,), device=pcm)[f"{out}.counts"]
    accs = (chips.argmax(2) == chips_y).mean(1)
    return {"hwsim": float((hw.argmax(1) == y).mean()), "pcm_1y_mean": float(accs.mean()),
            "pcm_1y_sd": float(accs.std(ddof=1)), "chip_samples": int(len(chips_y))}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("task", choices=("cnn", "rows"))
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--train", type=int, default=60000, help="training samples")
    p.add_argument("--test", type=int, default=10000, help="test samples")
    p.add_argument("--chips-test", type=int, default=1000, help="test samples for the 20-chip PCM study")
    p.add_argument("--recurrent", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--mode", choices=("moment", "sampled"), default="moment",
                   help="float training of the CNN's stochastic convolutions")
    p.add_argument("--out", default="runs/fashion")
    args = p.parse_args()
    torch.manual_seed(0)
    tr, te = data.load("fashion-mnist", "train"), data.load("fashion-mnist", "test")
    tr_x, tr_y = tr.x[: args.train], torch.from_numpy(tr.y[: args.train])
    te = type(te)(te.name, te.x[: args.test], te.y[: args.test], te.n_classes, te.shape)
    log = lambda m: print(m, flush=True)  # noqa: E731
    t0 = time.perf_counter()
    if args.task == "cnn":
        steps, extra, epochs = 6, 4, args.epochs or 5
        model = CNN(args.mode)
        train_float(model, lambda e: pad(cnn_inputs(tr_x, steps, 100 + e), extra), tr_y, epochs, 128, log)
        x_test = pad(cnn_inputs(te.x, steps, 1), extra)
        calib = pad(cnn_inputs(tr_x[:512], steps, 7), extra)
        name = "cnn"
    else:
        extra, epochs = 3, args.epochs or 6
        model = Rows(args.recurrent)
        train_float(model, lambda e: pad(row_inputs(tr_x), extra), tr_y, epochs, 256, log)
        x_test = pad(row_inputs(te.x), extra)
        calib = pad(row_inputs(tr_x[:512]), extra)
        name = "rows_recurrent" if args.recurrent else "rows_feedforward"
    res = {"task": name, "epochs": epochs, "mode": args.mode if args.task == "cnn" else None,
           "train_samples": int(len(tr_y)), "test_samples": int(len(te.y)),
           "float": float_accuracy(model, x_test, te.y)}  # fmt: skip
    log(f"{name}: float test accuracy {res['float']:.2%}")
    qnet, report = from_torch(model, x_test[:8].float(), calibration=calib.float())
    net = qnet.to_network(f"fashion_{name}")
    ir.save(net, Path(args.out) / f"{name}.qnet")
    xb = x_test.numpy().astype(bool)
    res.update(evaluate(net, xb, te.y, xb[: args.chips_test], te.y[: args.chips_test]))
    res["seconds"] = time.perf_counter() - t0
    log(f"{name}: hwsim (fixed point; the fake-quant model computes the same bits) {res['hwsim']:.2%}; PCM after "
        f"1 year, 20 chips on "
        f"{res['chip_samples']} test samples: {res['pcm_1y_mean']:.2%} +- {res['pcm_1y_sd']:.2%} (mean +- sd)")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"{name}.json").write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
