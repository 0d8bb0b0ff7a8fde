"""Training configuration: a YAML file checked against a schema, with defaults.

Every problem raises :class:`ConfigError` naming the key (``model.hidden: expected a list of positive
integers``). The schema (defaults in brackets)::

    seed: 0                     # seeds the weights, the data order and the random streams
    data:
      name: digits              # digits | fashion-mnist | PATH.npz (x_train, y_train, x_test, y_test)
      encoder: rate             # rate | latency | none (static input, for mlp and s2m)
      steps: 8                  # time steps of the spike encoding (lif)
      max_rate: 1.0             # rate encoder: spike probability per step of a full-intensity pixel
      limit: null               # use only the first N training samples
    model:
      kind: lif                 # mlp (deterministic float baseline) | s2m | lif | binary | rbse
      hidden: [64]              # hidden layer sizes
      estimator: surrogate      # binary: surrogate | straight | unbiased | noisy_rectifier | moment, or a list
                                #   with one of the first four per hidden layer
      p: 0.5                    # blank-out release probability (s2m, lif); 1 = reliable synapses
      escape: null              # lif: null (deterministic) | sigmoid | erf | exponential
      escape_beta: 5.0          # steepness of the escape function (float units)
      surrogate: superspike     # superspike | sigmoid | escape | straight
      scale_by_beta: false      # divide the surrogate by its steepness
      current_decay: 2048       # lif, IR units (0..4096)
      voltage_decay: 1024       # lif, IR units (0..4096)
      threshold: 1.0            # firing threshold (float units)
      detach_reset: true        # no gradient through the reset
      weight_norm: true         # s2m: learn the gain beta and the direction w / ||w|| apart (false: v directly)
    train:
      epochs: 5                 # float training epochs
      batch_size: 64
      lr: 0.002                 # learning rate
      optimizer: adam           # adam | sgd
    quant:                      # fake-quant training after the float epochs (lif, binary, s2m; docs/compile.md)
      epochs: 0                 # 0 = none; the run then compiles by post-training quantisation
      lr: 0.0005                # learning rate of the fake-quant epochs
      calibration: 512          # training samples used to calibrate the scales
      device: null              # hardware-aware training: a device preset (pcm, rram) or mapping (docs/devices.md)
      device_times: [1, 3600, 86400, 31536000]   # drift times (s); each batch draws one
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "data": {"name": "digits", "encoder": "rate", "steps": 8, "max_rate": 1.0, "limit": None},
    "model": {
        "kind": "lif", "hidden": [64], "estimator": "surrogate", "p": 0.5, "escape": None, "escape_beta": 5.0,
        "surrogate": "superspike",
        "scale_by_beta": False, "current_decay": 2048, "voltage_decay": 1024, "threshold": 1.0,
        "detach_reset": True, "weight_norm": True,
    },
    "train": {"epochs": 5, "batch_size": 64, "lr": 0.002, "optimizer": "adam"},
    "quant": {"epochs": 0, "lr": 0.0005, "calibration": 512, "device": None,
              "device_times": [1, 3600, 86400, 31536000]},
}  # fmt: skip

CHOICES = {
    "data.name": ("digits", "fashion-mnist"),
    "data.encoder": ("rate", "latency", "none"),
    "model.kind": ("mlp", "s2m", "lif", "binary", "rbse"),
    "model.escape": (None, "sigmoid", "erf", "exponential"),
    "model.surrogate": ("superspike", "sigmoid", "escape", "straight"),
    "train.optimizer": ("adam", "sgd"),
}


class ConfigError(ValueError):
    """An invalid training configuration; the message names the key."""


def _merge(base: dict, over: dict, prefix: str = "") -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        key = f"{prefix}{k}"
        if k not in base:
            raise ConfigError(f"{key}: unknown key (known: {', '.join(base)})")
        if isinstance(base[k], dict):
            if not isinstance(v, dict):
                raise ConfigError(f"{key}: expected a mapping")
            out[k] = _merge(base[k], v, f"{key}.")
        else:
            out[k] = v
    return out


def _num(cfg: dict, key: str, lo: float, hi: float, *, integer: bool = False, open_lo: bool = False) -> None:
    section, name = key.split(".") if "." in key else (None, key)
    v = cfg[section][name] if section else cfg[name]
    ok = isinstance(v, int if integer else (int, float)) and not isinstance(v, bool)
    if not ok or not ((lo < v) if open_lo else (lo <= v)) or v > hi:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{key}: expected {kind} in {'(' if open_lo else '['}{lo}, {hi}], got {v!r}")


MAX_UNITS = 1 << 16  # units of one hidden layer
MAX_WEIGHTS = 1 << 28  # weights of a configured model, checked before anything is built


def validate(raw: Any) -> dict:
    """Defaults merged with ``raw`` (a mapping), checked; returns the full configuration."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("the configuration must be a YAML mapping")
    cfg = _merge(DEFAULTS, raw)
    est = cfg["model"]["estimator"]
    per_layer = ("surrogate", "straight", "unbiased", "noisy_rectifier")
    if isinstance(est, list):
        if len(est) != len(cfg["model"]["hidden"]) or not all(e in per_layer for e in est):
            raise ConfigError(f"model.estimator: a list needs one of {', '.join(per_layer)} per hidden layer")
    elif est not in (*per_layer, "moment"):
        raise ConfigError(f"model.estimator: {est!r} is not one of {', '.join((*per_layer, 'moment'))}")
    for key, choices in CHOICES.items():
        section, name = key.split(".")
        value = cfg[section][name]
        if key == "data.name" and isinstance(value, str) and value.endswith(".npz"):
            continue  # a dataset file (quantal.train.data.load_npz), checked when it is loaded
        if value not in choices:
            raise ConfigError(f"{key}: {cfg[section][name]!r} is not one of {', '.join(map(str, choices))}")
    _num(cfg, "seed", 0, 2**32 - 1, integer=True)
    _num(cfg, "data.steps", 1, 10_000, integer=True)
    _num(cfg, "data.max_rate", 0, 1, open_lo=True)
    if cfg["data"]["limit"] is not None:
        _num(cfg, "data.limit", 1, 10**9, integer=True)
    hidden = cfg["model"]["hidden"]
    if not isinstance(hidden, list) or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0
                                               for h in hidden):  # fmt: skip
        raise ConfigError("model.hidden: expected a list of positive integers")
    if len(hidden) > 64 or any(h > MAX_UNITS for h in hidden):
        raise ConfigError(f"model.hidden: at most 64 layers of at most {MAX_UNITS:,} units each, got {hidden[:8]}")
    widths = [784, *hidden, 10]  # the widest input quantal ships (Fashion-MNIST); a weight matrix per pair
    n_weights = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    if n_weights > MAX_WEIGHTS:
        raise ConfigError(f"model.hidden: {hidden[:8]} needs about {n_weights:,} weights (at most {MAX_WEIGHTS:,}, "
                          "about 1 GiB of float32)")  # fmt: skip
    _num(cfg, "model.p", 0, 1, open_lo=True)
    _num(cfg, "model.escape_beta", 0, 1e6, open_lo=True)
    _num(cfg, "model.current_decay", 0, 4096, integer=True)
    _num(cfg, "model.voltage_decay", 0, 4096, integer=True)
    _num(cfg, "model.threshold", 0, 1e6, open_lo=True)
    for key in ("model.scale_by_beta", "model.detach_reset", "model.weight_norm"):
        section, name = key.split(".")
        if not isinstance(cfg[section][name], bool):
            raise ConfigError(f"{key}: expected true or false")
    _num(cfg, "train.epochs", 1, 100_000, integer=True)
    _num(cfg, "train.batch_size", 1, 1_000_000, integer=True)
    _num(cfg, "train.lr", 0, 10, open_lo=True)
    _num(cfg, "quant.epochs", 0, 100_000, integer=True)
    _num(cfg, "quant.lr", 0, 10, open_lo=True)
    _num(cfg, "quant.calibration", 1, 10**9, integer=True)
    dev = cfg["quant"]["device"]
    if dev is not None:
        from quantal.hwsim.devices import DeviceError, from_config

        try:
            from_config(dev)
        except DeviceError as e:
            raise ConfigError(f"quant.device: {e}") from None
    times = cfg["quant"]["device_times"]
    if not isinstance(times, list) or not times or not all(
            isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t < float("inf") for t in times):
        raise ConfigError("quant.device_times: expected a non-empty list of seconds >= 0")
    kind, enc = cfg["model"]["kind"], cfg["data"]["encoder"]
    if cfg["quant"]["epochs"] and kind in ("mlp", "rbse"):
        raise ConfigError(f"quant.epochs: a {kind} model has no IR lowering, so no fake-quant training "
                          "(use lif, binary or s2m)")  # fmt: skip
    if kind == "lif" and enc == "none":
        raise ConfigError("data.encoder: a lif model needs spikes (rate or latency), not 'none'")
    if kind == "rbse" and cfg["model"]["p"] >= 1:
        raise ConfigError("model.p: an rbse model needs 0 < p < 1 (the initial release probability)")
    if kind == "rbse" and len(hidden) != 1:
        raise ConfigError("model.hidden: an rbse model has one hidden layer, e.g. [64]")
    if kind == "s2m" and cfg["model"]["p"] >= 1:
        raise ConfigError("model.p: an s2m model needs 0 < p < 1 (its noise comes from the synapses)")
    return cfg


def load(path: str | Path) -> dict:
    from quantal.compile.ir import read_yaml

    return validate(read_yaml(path, ConfigError))
