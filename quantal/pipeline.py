"""The end-to-end pipeline behind ``quantal compile`` and ``quantal eval`` (docs/compile.md).

``compile_run``: a ``quantal train`` run directory (or one of its checkpoints) -> a ``.qnet`` file whose
metadata holds the input encoding, the training configuration and the quantisation report (per layer: scale,
weight exponent, bits used, saturation; accuracy of the float model, the fake-quant model and hwsim on the
test split, and whether the fake-quant model and hwsim gave identical outputs).

``evaluate``: a ``.qnet`` network on a dataset through hwsim, with the encoder from its metadata; accuracy
with a 95% confidence interval over trials for stochastic networks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from quantal.compile.ir import Network


class PipelineError(ValueError):
    """A user-facing problem with a run directory, checkpoint or dataset (one line)."""


def _py(x: Any) -> Any:
    """Plain Python values for YAML metadata."""
    if isinstance(x, dict):
        return {str(k): _py(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_py(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def find_run(path: str | Path) -> tuple[Path, Path]:
    """(run directory, checkpoint): a directory prefers ``qat.pt`` (fake-quant training) over ``last.pt``."""
    p = Path(path)
    if p.is_dir():
        for name in ("qat.pt", "last.pt"):
            if (p / name).is_file():
                return p, p / name
        raise PipelineError(f"{p}: no checkpoint (last.pt or qat.pt); train first with quantal train")
    if p.is_file():
        if not (p.parent / "config.yaml").is_file():
            raise PipelineError(f"{p}: no config.yaml beside the checkpoint (expected a quantal train run directory)")
        return p.parent, p
    raise PipelineError(f"{p}: no such run directory or checkpoint")


def _torch_load(path: Path) -> dict:
    import torch

    try:
        return torch.load(path, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is a user error here
        raise PipelineError(f"{path}: not a readable checkpoint ({str(e).splitlines()[0][:200]})") from None


def float_model(run_dir: Path, cfg: dict, n_in: int, n_classes: int) -> Any:
    """The float model of ``last.pt`` (None when the run has no float checkpoint)."""
    from quantal.train.trainer import build_model

    path = run_dir / "last.pt"
    if not path.is_file():
        return None
    if cfg["model"]["kind"] == "rbse":
        from quantal.compile.lower import LoweringError, _unsupported

        raise LoweringError(_unsupported("rbse"))
    ck = _torch_load(path)
    model = build_model(cfg, n_in, n_classes)
    model.load_state_dict(ck["model"])
    model.eval()
    return model


def quant_from_checkpoint(ck: dict) -> tuple[Any, list[dict], dict]:
    from quantal.train.fakequant import QuantNet

    if "projections" not in ck["structure"]:  # a chain of v1 layers: weights and neurons in one module each
        raise PipelineError("qat.pt was written by an older quantal (before IR v2 graphs); run the fake-quant "
                            "epochs again (delete qat.pt and rerun quantal train)")  # fmt: skip
    return QuantNet.from_structure(ck["structure"], ck["quant"]), ck["report"], ck["spec"]


def quant_outputs(qnet: Any, spikes: np.ndarray, run_steps: int, *, seed: int, trial: int = 0,
                  batch: int = 256) -> np.ndarray:  # fmt: skip
    """The fake-quant model's final readout v (int64, (n, classes)) for every sample (stream index = row)."""
    import torch

    outs = []
    with torch.no_grad():
        for i in range(0, len(spikes), batch):
            o = qnet(torch.from_numpy(spikes[i:i + batch]), steps=run_steps, seed=seed, trial=trial,
                     samples=torch.arange(i, min(i + batch, len(spikes))))  # fmt: skip
            outs.append(o.final_v.numpy())
    return np.concatenate(outs).astype(np.int64)


def float_accuracy(model: Any, cfg: dict, x: np.ndarray, spikes: np.ndarray, y: np.ndarray) -> float:
    """Test accuracy of the float model: on the same spikes (lif) or on the images (binary, s2m)."""
    import torch

    inp = spikes if cfg["model"]["kind"] == "lif" else x
    t = torch.from_numpy(np.asarray(inp, dtype=np.float32))
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), 512):
            correct += int((model(t[i:i + 512]).argmax(1).numpy() == y[i:i + 512]).sum())
    return correct / max(len(y), 1)


def _dataset(name: str, split: str, seed: int, limit: int | None) -> Any:
    from quantal.train import data

    try:
        ds = data.load(name, split, seed=seed)
    except data.DataError as e:
        raise PipelineError(str(e)) from None
    if limit is not None:
        ds = type(ds)(ds.name, ds.x[:limit], ds.y[:limit], ds.n_classes, ds.shape)
    return ds


def compile_run(path: str | Path, out: str | Path, *, calibration: int = 512, limit: int | None = None,
                seed: int = 0, name: str | None = None,
                log: Any = print) -> tuple[Network, dict[str, Any]]:  # fmt: skip
    """Compile a training run to ``out`` (.qnet); returns the network and the quantisation report."""
    from quantal.compile.ir import save
    from quantal.compile.lower import lower
    from quantal.hwsim import simulate
    from quantal.train import config as cfg_mod
    from quantal.train.data import encode

    run_dir, ckpt = find_run(path)
    try:
        cfg = cfg_mod.load(run_dir / "config.yaml")
    except cfg_mod.ConfigError as e:
        raise PipelineError(str(e)) from None
    train_set = _dataset(cfg["data"]["name"], "train", cfg["seed"], None)
    test_set = _dataset(cfg["data"]["name"], "test", cfg["seed"], limit)
    model = float_model(run_dir, cfg, train_set.x.shape[1], train_set.n_classes)
    if ckpt.name == "qat.pt" or (model is None and (run_dir / "qat.pt").is_file()):
        qnet, rows, spec = quant_from_checkpoint(_torch_load(run_dir / "qat.pt"))
        how = "fake-quant training (qat.pt): the network is exactly the trained fake-quant model"
    elif model is not None:
        qnet, rows, spec = lower(model, cfg, train_set.x[:calibration], seed=seed)
        how = f"post-training quantisation of last.pt, calibrated on {min(calibration, len(train_set.x))} samples"
    else:
        raise PipelineError(f"{run_dir}: no checkpoint to compile")
    log(f"compiling {ckpt}: {how}")
    spikes = encode(test_set.x, spec["encoder"], spec["steps"], max_rate=spec["max_rate"], seed=seed)
    y = test_set.y
    acc: dict[str, Any] = {}
    if model is not None:
        import torch

        torch.manual_seed(seed)  # the float model samples its own noise: seeded, so the report is reproducible
        acc["float"] = float_accuracy(model, cfg, test_set.x, spikes, y)
    fq = quant_outputs(qnet, spikes, spec["run_steps"], seed=seed)
    acc["fake_quant"] = float((fq.argmax(1) == y).mean())
    net = qnet.to_network(name or run_dir.name.replace(".", "_") or "net")
    readout = net.layers[-1].name
    hw = simulate(net, spikes, steps=spec["run_steps"], seed=seed, record=("counts",), layers=(readout,))
    counts = hw[f"{readout}.counts"].astype(np.int64)
    acc["hwsim"] = float((counts.argmax(1) == y).mean())
    report = {
        "layers": rows,
        "accuracy": acc,
        "evaluated_on": {"dataset": cfg["data"]["name"], "split": "test", "samples": int(len(y)), "seed": seed,
                         "trial": 0},  # fmt: skip
        "fake_quant_equals_hwsim": bool(np.array_equal(fq, counts)),
        "method": how,
    }
    meta = _py({"source": {"run": str(run_dir), "checkpoint": ckpt.name, "model": cfg["model"]["kind"]},
                "input": spec, "quantization": report, "training": cfg})  # fmt: skip
    net = net.replace(metadata=meta)
    save(net, out)
    return net, report


# --------------------------------------------------------------------------------------------- eval


def confidence_interval(accs: np.ndarray, n: int, level: float = 0.95,
                        deterministic: bool = False) -> tuple[float, float, str]:  # fmt: skip
    """A 95% interval for the accuracy, always inside [0, 1], and how it was chosen.

    * Several trials of a stochastic network (or device) that differ: Student's t over the trials' accuracies,
      the interval for the mean accuracy over chips/draws on this test set, clipped to [0, 1].
    * One trial, a deterministic network (``deterministic``), or trials that all agree (a t-interval would have
      zero width): Wilson's score interval over the ``n`` test samples (the test set's sampling error; it
      lies inside [0, 1] by construction).
    """
    from scipy import stats

    accs = np.asarray(accs, np.float64)
    k = len(accs)
    if k == 0 or n < 1:
        raise ValueError("confidence_interval: needs at least one trial and one sample")
    m = float(np.mean(accs))
    if k >= 2 and not deterministic and float(np.ptp(accs)) > 0:
        half = float(stats.t.ppf(0.5 + level / 2, k - 1) * np.std(accs, ddof=1) / math.sqrt(k))
        lo, hi = max(0.0, m - half), min(1.0, m + half)
        clipped = " (clipped to [0, 1])" if lo != m - half or hi != m + half else ""
        return lo, hi, f"t-interval over {k} trials{clipped}"
    z = float(stats.norm.ppf(0.5 + level / 2))
    denom = 1 + z * z / n
    centre = (m + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(m * (1 - m), 0.0) / n + z * z / (4 * n * n)) / denom
    why = ("deterministic" if deterministic else f"all {k} trials equal") if k >= 2 else "one trial"
    lo, hi = min(max(0.0, centre - half), m), max(min(1.0, centre + half), m)  # contains m (0 and 1: exactly)
    return lo, hi, f"Wilson interval over {n} samples ({why})"


def input_spec(net: Network, encoder: str | None = None, steps: int | None = None) -> dict[str, Any]:
    """How ``net``'s input is encoded (its metadata's ``input``, overridden by ``encoder``/``steps``), each field
    checked: the metadata of a file is user input."""
    from quantal.compile.runspec import MAX_STEPS

    raw = net.metadata.get("input") if isinstance(net.metadata, dict) else None
    if raw is not None and not isinstance(raw, dict):
        raise PipelineError(f"network {net.name!r}: metadata.input must be a mapping, got {type(raw).__name__}")
    spec = dict(raw or {})
    if encoder is not None:
        spec["encoder"] = encoder
    if steps is not None:
        spec["steps"] = steps
        spec["run_steps"] = steps + len(net.layers)
    if "encoder" not in spec or "steps" not in spec:
        raise PipelineError(f"network {net.name!r} has no input encoding in its metadata; pass --encoder and --steps")
    spec.setdefault("max_rate", 1.0)
    spec.setdefault("run_steps", spec["steps"] + len(net.layers) if _is_count(spec["steps"]) else None)

    def bad(key: str, want: str) -> PipelineError:
        return PipelineError(f"network {net.name!r}: metadata.input.{key} must be {want}, got {spec[key]!r:.60}")

    from quantal.train.data import ENCODERS

    if not isinstance(spec["encoder"], str) or spec["encoder"] not in ENCODERS:
        raise bad("encoder", f"one of {', '.join(ENCODERS)}")
    for key in ("steps", "run_steps"):
        if not _is_count(spec[key]) or not 1 <= spec[key] <= MAX_STEPS:
            raise bad(key, f"an integer in [1, {MAX_STEPS}]")
    if spec["run_steps"] < spec["steps"]:
        raise bad("run_steps", f"at least steps ({spec['steps']})")
    r = spec["max_rate"]
    if not isinstance(r, (int, float)) or isinstance(r, bool) or not 0 < r <= 1:
        raise bad("max_rate", "a number in (0, 1]")
    return spec


def _is_count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def is_stochastic(net: Network) -> bool:
    return (any(p.synapse.release is not None for p in net.projections)
            or any(la.neuron.escape_noise is not None for la in net.layers))


def encoded_dataset(net: Network, data: str, *, split: str = "test", seed: int = 0, limit: int | None = None,
                    encoder: str | None = None, steps: int | None = None,
                    data_seed: int | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:  # fmt: skip
    """(spikes, labels, input spec): a dataset split encoded for ``net`` with the encoder of its metadata (or
    ``encoder``/``steps``), the encoder's randomness from ``seed``. The split uses the training seed stored in
    the metadata unless ``data_seed`` is given; an input size that does not match the network is refused."""
    from quantal.train.data import encode

    spec = input_spec(net, encoder, steps)
    if data_seed is None:
        data_seed = int((net.metadata.get("training") or {}).get("seed", 0))
    ds = _dataset(data, split, data_seed, limit)
    try:
        spikes = encode(ds.x, spec["encoder"], int(spec["steps"]), max_rate=float(spec["max_rate"]), seed=seed)
    except ValueError as e:
        raise PipelineError(f"encoder: {e}") from None
    if spikes.shape[2] != net.input_size:
        raise PipelineError(f"{data} encoded with {spec['encoder']!r} has {spikes.shape[2]} channels but network "
                            f"{net.name!r} expects {net.input_size}")  # fmt: skip
    return spikes, ds.y, spec


def evaluate(net: Network, data: str, *, split: str = "test", trials: int | None = None, seed: int = 0,
             limit: int | None = None, encoder: str | None = None, steps: int | None = None,
             data_seed: int | None = None, progress: bool = False, device: Any = None) -> dict[str, Any]:  # fmt: skip
    """Accuracy of ``net`` on a dataset through hwsim (see the module docstring)."""
    from quantal.hwsim import Simulator

    spikes, y, spec = encoded_dataset(net, data, split=split, seed=seed, limit=limit, encoder=encoder, steps=steps,
                                      data_seed=data_seed)  # fmt: skip
    stochastic = is_stochastic(net) or (device is not None and not getattr(device.model, "noiseless", False))
    k = trials if trials is not None else (10 if stochastic else 1)
    out_layer = net.layers[-1].name
    from quantal.compile.runspec import RunSpec

    run = RunSpec(steps=int(spec["run_steps"]), seed=seed, trials=k, record=("counts",), layers=(out_layer,))
    res = Simulator(net, device).run(spikes, run, progress=progress)
    counts = res[f"{out_layer}.counts"]  # (k, n, classes)
    accs = (counts.argmax(-1) == y[None]).mean(axis=1)
    lo, hi, how = confidence_interval(accs, len(y), deterministic=not stochastic)
    return {"network": net.name, "dataset": data, "split": split, "samples": int(len(y)), "trials": int(k),
            "seed": seed, "encoder": spec["encoder"], "steps": int(spec["steps"]), "run_steps": int(spec["run_steps"]),
            "accuracy": float(accs.mean()), "ci95": [float(lo), float(hi)], "ci_method": how,
            "per_trial": [float(a) for a in accs], "stochastic": stochastic,
            "device": None if device is None else {"config": device.config, "time": device.time}}  # fmt: skip
