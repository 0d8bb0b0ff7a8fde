"""``quantal train``: build a model from a configuration, train it, keep metrics and checkpoints.

A run directory holds ``config.yaml`` (the full configuration, defaults filled in), ``metrics.csv`` and
``metrics.json`` (one row per epoch: train loss and accuracy, test accuracy, seconds), and ``last.pt``, the
checkpoint after the last finished epoch (model, optimizer, epoch, RNG state; plain tensors and numbers, read
back with ``torch.load(weights_only=True)``). Running the same command again resumes after the last finished
epoch; a run directory made with a different configuration is refused. Every file is written atomically.

Models (see docs/train.md):

* ``mlp``: the deterministic float baseline (Linear + ReLU), on static images;
* ``s2m``: Synaptic Sampling Machine sign layers on binarised images, then a linear readout;
* ``binary``: memoryless stochastic binary units h ~ Bernoulli(sigmoid(a)) on static images, trained with
  the chosen ``estimator``: ``surrogate`` (sigmoid' on the backward pass) or ``straight`` (straight-through),
  ``unbiased`` (bengio-2013: no backward pass through the units; each gets (h - sigmoid(a))(L - Lbar)),
  ``noisy_rectifier`` (relu(a + b + noise) with bias homeostasis, exact back-propagation) or ``moment``
  (rule-2019: probit units, means and variances propagated in closed form; sampled at evaluation);
* ``rbse``: an RBSE (alshedivat-rbse) trained without labels by CD-1 on binarised images, with a logistic
  regression on its mask-averaged features (refit after every epoch) as the classifier;
* ``lif``: LIF layers with blank-out synapses (release probability p) and optional escape noise on rate- or
  latency-coded spikes, then a readout layer whose final potential gives the logits, with the IR's
  one-step delay per layer (the run is extended by one step per layer so the last input reaches the readout).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from quantal.compile.ir import atomic_write, describe_exception

from . import data as data_mod
from .config import ConfigError, validate
from .estimators import NoisyRectifier, UnbiasedEstimator, sample_binary
from .functional import spike
from .moments import linear_moments, threshold_moments
from .neurons import LIFParams, SpikingLayer
from .synapses import BlankOutLinear, S2MLinear, blank_out_linear


class MLP(nn.Module):
    def __init__(self, n_in: int, hidden: list[int], n_out: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(n_in, h), nn.ReLU()]
            n_in = h
        self.net = nn.Sequential(*layers, nn.Linear(n_in, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class S2MNet(nn.Module):
    def __init__(self, n_in: int, hidden: list[int], n_out: int, p: float, weight_norm: bool = True) -> None:
        super().__init__()
        sizes = [n_in, *hidden]
        self.layers = nn.ModuleList(S2MLinear(a, b, p, weight_norm=weight_norm) for a, b in zip(sizes[:-1], sizes[1:]))
        self.readout = nn.Linear(sizes[-1], n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.where(x > 0.5, 1.0, -1.0).to(x.dtype)  # binarised pixels as +-1 units
        for layer in self.layers:
            z = layer(z)
        return self.readout(z)


class BinaryNet(nn.Module):
    """Stochastic binary layers, each with its own gradient estimator, then a linear readout.

    ``estimators`` holds one of surrogate | straight | unbiased | noisy_rectifier per hidden layer, or is
    ``["moment"]`` (moment propagation is a whole-network mode). With ``p < 1`` the synapses are blank-out
    synapses: sampled masks, or their mean and variance in moment mode.
    """

    def __init__(self, n_in: int, hidden: list[int], n_out: int, estimators: list[str], p: float = 1.0) -> None:
        super().__init__()
        sizes = [n_in, *hidden]
        self.moment = estimators == ["moment"]
        self.estimators = estimators * len(hidden) if self.moment else estimators
        self.p = p
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.readout = nn.Linear(sizes[-1], n_out)
        self.baselines = nn.ModuleDict({str(k): UnbiasedEstimator(b, momentum=0.9)
                                        for k, b in enumerate(sizes[1:]) if self.estimators[k] == "unbiased"})
        self.rectifiers = nn.ModuleDict({str(k): NoisyRectifier(b, sigma=1.0, target_rate=0.2)
                                         for k, b in enumerate(sizes[1:]) if self.estimators[k] == "noisy_rectifier"})
        self._record: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]] = []  # fmt: skip

    def _drive(self, layer: nn.Linear, h: torch.Tensor) -> torch.Tensor:
        if self.p >= 1:
            return layer(h)
        return blank_out_linear(h, layer.weight, torch.tensor(self.p, dtype=h.dtype)) + layer.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.moment and self.training:
            m, var = x, x * (1 - x)  # pixel intensities as Bernoulli means
            for layer in self.layers:
                mu, s2 = linear_moments(m, var, layer.weight, layer.bias, self.p, diagonal=True, binary_input=False)
                m, var = threshold_moments(mu, s2, noise_var=1.0, diagonal=True)  # probit units
            return self.readout(m)
        h = x
        self._record = []
        for k, layer in enumerate(self.layers):
            a = self._drive(layer, h)
            est = self.estimators[k]
            if self.moment:  # evaluation: sample the probit units
                h = (a + torch.randn_like(a) > 0).to(a.dtype)
            elif est == "noisy_rectifier":
                h = self.rectifiers[str(k)](a)
            elif est == "unbiased":
                h, prob = sample_binary(a)
                self._record.append((k, a, h, prob))  # h carries no gradient: the estimator replaces backprop
            else:
                h = spike(a, surrogate_kind="straight" if est == "straight" else "sigmoid", escape="sigmoid")
        return self.readout(h)

    def estimator_loss(self, per_sample_loss: torch.Tensor) -> torch.Tensor:
        """The unbiased estimator's surrogate loss for its layers (zero when no layer uses it)."""
        total = torch.zeros(())
        for k, a, h, prob in self._record:
            total = total + self.baselines[str(k)].surrogate_loss(a, h, prob, per_sample_loss)
        return total


class LIFNet(nn.Module):
    def __init__(self, n_in: int, hidden: list[int], n_out: int, m: dict[str, Any]) -> None:
        super().__init__()
        params = LIFParams(
            alpha=1 - m["current_decay"] / 4096, beta=1 - m["voltage_decay"] / 4096, threshold=m["threshold"],
            escape=m["escape"], escape_beta=m["escape_beta"], surrogate=m["surrogate"],
            scale_by_beta=m["scale_by_beta"], detach_reset=m["detach_reset"],
        )  # fmt: skip
        sizes = [n_in, *hidden]

        def synapse(a: int, b: int) -> nn.Module:
            if m["p"] < 1:
                return BlankOutLinear(a, b, p=m["p"])
            return nn.Linear(a, b, bias=False)

        self.layers = nn.ModuleList(SpikingLayer(synapse(a, b), b, params) for a, b in zip(sizes[:-1], sizes[1:]))
        self.readout = SpikingLayer(nn.Linear(sizes[-1], n_out, bias=False), n_out,
                                    params._replace(readout=True, beta=1.0))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # one extra step per layer so that the last input step reaches the readout (one-step delays)
        pad = torch.zeros(x.shape[0], len(self.layers) + 1, x.shape[2], dtype=x.dtype, device=x.device)
        s = torch.cat([x, pad], 1)
        for layer in self.layers:
            s, _ = layer(s)
        _, v = self.readout(s)
        return v[:, -1]  # the readout's final potential: the IR's `counts` of a readout layer


def build_model(cfg: dict, n_in: int, n_out: int) -> nn.Module:
    m = cfg["model"]
    if m["kind"] == "mlp":
        return MLP(n_in, m["hidden"], n_out)
    if m["kind"] == "s2m":
        return S2MNet(n_in, m["hidden"], n_out, m["p"], m["weight_norm"])
    if m["kind"] == "binary":
        est = m["estimator"] if isinstance(m["estimator"], list) else [m["estimator"]] * len(m["hidden"])
        return BinaryNet(n_in, m["hidden"], n_out, ["moment"] if "moment" in est else est, m["p"])
    return LIFNet(n_in, m["hidden"], n_out, m)


def _inputs(cfg: dict, x: np.ndarray, seed: int) -> torch.Tensor:
    d = cfg["data"]
    if cfg["model"]["kind"] != "lif":
        return torch.tensor(x, dtype=torch.float32)
    if d["encoder"] == "latency":
        return torch.tensor(data_mod.latency_encode(x, d["steps"]), dtype=torch.float32)
    return torch.tensor(data_mod.rate_encode(x, d["steps"], max_rate=d["max_rate"], seed=seed), dtype=torch.float32)


def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            correct += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    model.train()
    return correct / max(len(y), 1)


def _write_metrics(out: Path, rows: list[dict]) -> None:
    atomic_write(out / "metrics.json", lambda f: f.write(json.dumps(rows, indent=2).encode()))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write(out / "metrics.csv", lambda f: f.write(buf.getvalue().encode()))


def _resume(out: Path, epochs: int, log: Any, name: str = "last.pt") -> tuple[dict | None, list[dict], int]:
    """The checkpoint ``name`` of the last finished epoch in ``out`` (None when there is none yet), the metrics
    rows up to it, and the first epoch still to run (1 without a checkpoint)."""
    path = out / name
    if not path.exists():
        return None, [], 1
    try:
        ck = torch.load(path, weights_only=True)
        done = int(ck["epoch"])
    except Exception as e:  # noqa: BLE001 - a torn or foreign file: torch raises many kinds
        raise ConfigError(f"{path}: not a readable checkpoint ({describe_exception(e)}); delete it to start the "
                          "run again") from None  # fmt: skip
    rows: list[dict] = []
    mpath = out / "metrics.json"
    if mpath.exists():
        try:
            rows = json.loads(mpath.read_text())
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise ValueError("expected a list of rows")
        except (ValueError, UnicodeDecodeError) as e:
            raise ConfigError(f"{mpath}: not readable metrics ({describe_exception(e)}); delete it and {name} to "
                              "start the run again") from None  # fmt: skip
        rows = rows[:done]
    if done < epochs:
        log(f"resuming {out} after epoch {done}")
    return ck, rows, done + 1


def _fit_epoch(n_samples: int, batch_size: int, desc: str, progress: bool, opt: torch.optim.Optimizer,
               step: Any, order: torch.Tensor) -> tuple[float, float]:  # fmt: skip
    """One pass over the samples in ``order``, in batches: ``step(b, idx) -> (logits, labels, loss, objective)``
    for batch b; the objective is minimised. Returns the mean loss and the accuracy, with a progress bar."""
    from tqdm.auto import tqdm

    total, correct, n = 0.0, 0, 0
    bar = tqdm(range(0, n_samples, batch_size), desc=desc, unit="batch", disable=not progress, leave=False)
    for b, i in enumerate(bar):
        idx = order[i : i + batch_size]
        logits, labels, loss, objective = step(b, idx)
        opt.zero_grad()
        objective.backward()
        opt.step()
        total += loss.item() * len(idx)
        correct += int((logits.argmax(1) == labels).sum())
        n += len(idx)
        bar.set_postfix(loss=f"{total / n:.3f}")
    return total / n, correct / n


def _end_epoch(out: Path, rows: list[dict], row: dict, checkpoint: dict) -> None:
    """Record a finished epoch: append its metrics row, write the metrics and the checkpoint (atomically)."""
    _end_epoch_to(out, "last.pt", rows, row, checkpoint)


def _end_epoch_to(out: Path, name: str, rows: list[dict], row: dict, checkpoint: dict) -> None:
    rows.append(row)
    _write_metrics(out, rows)
    atomic_write(out / name, lambda f: torch.save(checkpoint, f))


def train(cfg: dict, out: str | Path, *, progress: bool = True, log: Any = print) -> list[dict]:
    """Train per ``cfg`` (validated here) into the run directory ``out``; resumes a finished-epoch checkpoint."""

    from quantal.compile.ir import read_yaml

    cfg = validate(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_text = yaml.safe_dump(cfg, sort_keys=False)
    if (out / "config.yaml").exists():
        if read_yaml(out / "config.yaml", ConfigError) != cfg:
            raise ConfigError(f"{out} holds a run with a different configuration; choose another --out")
    else:
        atomic_write(out / "config.yaml", lambda f: f.write(cfg_text.encode()))

    torch.manual_seed(cfg["seed"])
    d = cfg["data"]
    train_set = data_mod.load(d["name"], "train", seed=cfg["seed"])
    test_set = data_mod.load(d["name"], "test", seed=cfg["seed"])
    xtr, ytr = train_set.x, train_set.y
    if d["limit"] is not None:
        xtr, ytr = xtr[: d["limit"]], ytr[: d["limit"]]
    if cfg["model"]["kind"] == "rbse":
        return _train_rbse(cfg, out, xtr, ytr, test_set, progress=progress, log=log)
    model = build_model(cfg, xtr.shape[1], train_set.n_classes)
    t = cfg["train"]
    opt_cls = torch.optim.Adam if t["optimizer"] == "adam" else torch.optim.SGD
    opt = opt_cls(model.parameters(), lr=t["lr"])
    ck, rows, start = _resume(out, t["epochs"], log)
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        torch.set_rng_state(ck["rng"])
    x_test = _inputs(cfg, test_set.x, cfg["seed"] + 10**6)
    y_test = torch.tensor(test_set.y)
    y_train = torch.tensor(ytr)
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    for epoch in range(start, t["epochs"] + 1):
        t0 = time.perf_counter()
        x_train = _inputs(cfg, xtr, cfg["seed"] + epoch)  # fresh spike encoding every epoch
        gen = torch.Generator().manual_seed(cfg["seed"] * 100_003 + epoch)
        order = torch.randperm(len(y_train), generator=gen)

        def step(b: int, idx: torch.Tensor, x_train: torch.Tensor = x_train) -> tuple:
            logits = model(x_train[idx])
            per_sample = loss_fn(logits, y_train[idx])
            loss = per_sample.mean()
            objective = loss
            if hasattr(model, "estimator_loss"):
                objective = loss + model.estimator_loss(per_sample.detach())
            return logits, y_train[idx], loss, objective

        train_loss, train_acc = _fit_epoch(len(order), t["batch_size"], f"epoch {epoch}/{t['epochs']}", progress,
                                           opt, step, order)  # fmt: skip
        row = {"epoch": epoch, "phase": "float", "train_loss": train_loss, "train_acc": train_acc,
               "test_acc": _evaluate(model, x_test, y_test, 512), "seconds": time.perf_counter() - t0}  # fmt: skip
        _end_epoch(out, rows, row, {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                                    "rng": torch.get_rng_state()})  # fmt: skip
        log(f"epoch {epoch}: loss {row['train_loss']:.4f}  train acc {row['train_acc']:.3f}  "
            f"test acc {row['test_acc']:.3f}  ({row['seconds']:.1f} s)")  # fmt: skip
    if cfg["quant"]["epochs"]:
        model.eval()
        rows = _train_qat(cfg, out, model, rows, xtr, ytr, test_set, progress=progress, log=log)
    return rows


def _train_qat(cfg: dict, out: Path, model: nn.Module, rows: list[dict], xtr: np.ndarray, ytr: np.ndarray,
               test_set: Any, *, progress: bool, log: Any) -> list[dict]:  # fmt: skip
    """Fake-quant training (docs/compile.md): lower the float model to a calibrated :class:`QuantNet` and
    train it with the exact IR arithmetic and random streams; checkpoints go to ``qat.pt``.

    Training draws use stream seed ``seed`` and trial index = epoch; the test accuracy is measured as
    ``quantal compile`` and ``quantal eval --trials 1`` measure it (stream seed 0, trial 0, encoder seed 0),
    so the numbers agree.
    """

    from quantal.compile.lower import lower

    from .fakequant import DeviceRun, QuantNet

    q, t = cfg["quant"], cfg["train"]
    device = None
    if q["device"] is not None:  # hardware-aware training: every batch runs on a fresh device realisation
        from quantal.hwsim.devices import from_config

        device = from_config(q["device"])
    first = t["epochs"] + 1
    last = t["epochs"] + q["epochs"]
    ck, qrows, start = _resume(out, last, log, "qat.pt")
    if ck is not None:
        qnet = QuantNet.from_structure(ck["structure"], ck["quant"])
        report, spec, rows = ck["report"], ck["spec"], qrows
    else:
        qnet, report, spec = lower(model, cfg, xtr[: q["calibration"]], seed=cfg["seed"])
        start = first
        log(f"fake-quant training: scales calibrated on {min(q['calibration'], len(xtr))} samples; "
            + ", ".join(f"{r['name']} weight_exp {r['weight_exp']} ({r['saturated_weights']} saturated)"
                        for r in report))  # fmt: skip
    opt = torch.optim.Adam(qnet.parameters(), lr=q["lr"])
    if ck is not None:
        opt.load_state_dict(ck["optimizer"])
        torch.set_rng_state(ck["rng"])
    from .data import encode

    x_test = encode(test_set.x, spec["encoder"], spec["steps"], max_rate=spec["max_rate"], seed=0)
    y_train = torch.tensor(ytr)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(start, last + 1):
        t0 = time.perf_counter()
        x_train = torch.from_numpy(encode(xtr, spec["encoder"], spec["steps"], max_rate=spec["max_rate"],
                                          seed=cfg["seed"] + epoch))  # fmt: skip
        order = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(cfg["seed"] * 100_003 + epoch))
        dgen = torch.Generator().manual_seed(cfg["seed"] * 7919 + epoch)

        def step(b: int, idx: torch.Tensor, x_train: torch.Tensor = x_train, epoch: int = epoch,
                 dgen: torch.Generator = dgen) -> tuple:  # fmt: skip
            run = None
            if device is not None:
                # a drift time per batch, static draws from device trial (epoch, batch) with stream seed seed + 1
                t_dev = float(q["device_times"][int(torch.randint(len(q["device_times"]), (1,), generator=dgen))])
                run = DeviceRun(dataclasses.replace(device, time=t_dev), seed=cfg["seed"] + 1,
                                trial=epoch * 1_000_000 + b, generator=dgen)  # fmt: skip
            o = qnet(x_train[idx], steps=spec["run_steps"], seed=cfg["seed"], trial=epoch, samples=idx, device=run)
            loss = loss_fn(o.logits, y_train[idx])
            return o.logits, y_train[idx], loss, loss

        train_loss, train_acc = _fit_epoch(len(order), t["batch_size"], f"fake-quant epoch {epoch}/{last}",
                                           progress, opt, step, order)  # fmt: skip
        from quantal.pipeline import quant_outputs

        test_acc = float((quant_outputs(qnet, x_test, spec["run_steps"], seed=0).argmax(1) == test_set.y).mean())
        row = {"epoch": epoch, "phase": "fake-quant", "train_loss": train_loss, "train_acc": train_acc,
               "test_acc": test_acc, "seconds": time.perf_counter() - t0}  # fmt: skip
        _end_epoch_to(out, "qat.pt", rows, row, {
            "quant": qnet.state_dict(), "structure": qnet.structure(), "report": report, "spec": spec,
            "optimizer": opt.state_dict(), "epoch": epoch, "rng": torch.get_rng_state()})  # fmt: skip
        log(f"fake-quant epoch {epoch}: loss {row['train_loss']:.4f}  train acc {row['train_acc']:.3f}  "
            f"test acc {row['test_acc']:.3f} (exact IR arithmetic)  ({row['seconds']:.1f} s)")  # fmt: skip
    return rows


def _train_rbse(cfg: dict, out: Path, xtr: np.ndarray, ytr: np.ndarray, test_set: Any, *, progress: bool,
                log: Any) -> list[dict]:  # fmt: skip
    """The rbse model: CD-1 epochs (unsupervised), a logistic readout refit on the features after each."""
    from sklearn.linear_model import LogisticRegression
    from tqdm.auto import tqdm

    from .rbse import RBSE

    m, t = cfg["model"], cfg["train"]
    v_train = torch.tensor(xtr > 0.5, dtype=torch.float64)
    v_test = torch.tensor(test_set.x > 0.5, dtype=torch.float64)
    rbse = RBSE(v_train.shape[1], m["hidden"][0], p=m["p"], seed=cfg["seed"])
    ck, rows, start = _resume(out, t["epochs"], log)
    if ck is not None:
        rbse.load_state_dict(ck["rbse"])
    for epoch in range(start, t["epochs"] + 1):
        t0 = time.perf_counter()
        order = torch.randperm(len(v_train), generator=torch.Generator().manual_seed(cfg["seed"] * 100_003 + epoch))
        bar = tqdm(range(0, len(order), t["batch_size"]), desc=f"epoch {epoch}/{t['epochs']}", unit="batch",
                   disable=not progress, leave=False)  # fmt: skip
        for i in bar:
            rbse.cd_step(v_train[order[i : i + t["batch_size"]]], k=1, lr=t["lr"])
        f_train, f_test = rbse.features(v_train).numpy(), rbse.features(v_test).numpy()
        clf = LogisticRegression(max_iter=2000).fit(f_train, ytr)
        row = {"epoch": epoch, "phase": "float", "train_loss": rbse.reconstruction_error(v_train),
               "train_acc": clf.score(f_train, ytr),
               "test_acc": clf.score(f_test, test_set.y), "seconds": time.perf_counter() - t0}  # fmt: skip
        _end_epoch(out, rows, row, {"rbse": rbse.state_dict(), "epoch": epoch})
        log(f"epoch {epoch}: reconstruction error {row['train_loss']:.4f}  train acc {row['train_acc']:.3f}  "
            f"test acc {row['test_acc']:.3f}  mean release p {float(rbse.p.mean()):.3f}  ({row['seconds']:.1f} s)")
    return rows
