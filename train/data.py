"""Datasets and spike encoders (numpy only; nothing is downloaded).

* ``digits``: scikit-learn's bundled 8x8 digits (1,797 images, 64 pixels, 10 classes), the default.
* ``fashion-mnist``: the four IDX files of Debian's ``dataset-fashion-mnist`` package, or of a directory
  given by ``$QUANTAL_FASHION_MNIST`` or the ``root`` argument.

Images come flattened (permutation-invariant vectors) with intensities in [0, 1]. Encoders turn them into
spike arrays of shape (n_samples, T, n_pixels) (uint8), the input format of ``quantal run``.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FASHION_ENV = "QUANTAL_FASHION_MNIST"
FASHION_DIRS = ("/usr/share/datasets/fashion-mnist",)  # where Debian's dataset-fashion-mnist puts them
FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DATASETS = ("digits", "fashion-mnist")

# IDX type codes (third byte of the magic number) -> numpy big-endian dtypes.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(ValueError):
    """A dataset is missing or malformed; the message says how to fix it."""


@dataclass(frozen=True)
class Dataset:
    """Flattened images ``x`` (n, d) float32 in [0, 1] and integer labels ``y`` (n,)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    n_classes: int
    shape: tuple[int, ...]  # the original image shape, e.g. (8, 8)

    def __len__(self) -> int:
        return int(self.x.shape[0])


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed): magic ``0 0 type ndim``, big-endian uint32 sizes, data."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read IDX file ({getattr(e, 'strerror', None) or e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{path}: IDX data has {len(raw) - header} bytes, the header promises {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def fashion_mnist_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """Where the Fashion-MNIST IDX files are: ``root``, ``$QUANTAL_FASHION_MNIST`` or Debian's package."""
    candidates = [Path(root)] if root is not None else []
    if root is None and os.environ.get(FASHION_ENV):
        candidates.append(Path(os.environ[FASHION_ENV]))
    if root is None:
        candidates += [Path(d) for d in FASHION_DIRS]
    for d in candidates:
        if d.is_dir() and _find(d, FASHION_FILES["train"][0]) is not None:
            return d
    where = ", ".join(str(c) for c in candidates)
    raise DataError(
        f"Fashion-MNIST not found (looked in {where}); install it with "
        f"`apt-get install dataset-fashion-mnist` or set {FASHION_ENV} to a folder with the four IDX files"
    )


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        for p in (folder / name, *folder.glob(f"**/{name}")):
            if p.is_file():
                return p
    return None


def load_fashion_mnist(split: str = "train", root: str | os.PathLike[str] | None = None) -> Dataset:
    if split not in FASHION_FILES:
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    folder = fashion_mnist_dir(root)
    img_p, lab_p = (_find(folder, f) for f in FASHION_FILES[split])
    if img_p is None or lab_p is None:
        raise DataError(f"{folder}: the {split} IDX files {FASHION_FILES[split]} are missing")
    images, labels = read_idx(img_p), read_idx(lab_p)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise DataError(f"{folder}: images {images.shape} and labels {labels.shape} do not match")
    x = images.reshape(images.shape[0], -1).astype(np.float32) / 255.0
    return Dataset("fashion-mnist", x, labels.astype(np.int64), 10, tuple(images.shape[1:]))


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits, intensities 0..16 scaled to [0, 1]."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    return Dataset("digits", (d.data / 16.0).astype(np.float32), d.target.astype(np.int64), 10, (8, 8))


def load(name: str, split: str = "train", root: str | os.PathLike[str] | None = None,
         test_fraction: float = 0.2, seed: int = 0) -> Dataset:  # fmt: skip
    """Load a dataset by name. ``digits`` has no official split: a seeded split keeps ``test_fraction``."""
    if name == "digits":
        if split not in ("train", "test"):
            raise DataError(f"split must be 'train' or 'test', got {split!r}")
        d = load_digits()
        order = np.random.default_rng(seed).permutation(len(d))
        n_test = int(round(test_fraction * len(d)))
        pick = order[:n_test] if split == "test" else order[n_test:]
        return Dataset(d.name, d.x[pick], d.y[pick], d.n_classes, d.shape)
    if name == "fashion-mnist":
        return load_fashion_mnist(split, root)
    if str(name).endswith(".npz"):
        return load_npz(name, split, test_fraction=test_fraction, seed=seed)
    raise DataError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)}, or a FILE.npz)")


MAX_NPZ_BYTES = 2**31  # the largest array a .npz dataset may declare (checked before it is read)


def load_npz(path: str | os.PathLike[str], split: str = "train", *, test_fraction: float = 0.2,
             seed: int = 0) -> Dataset:  # fmt: skip
    """A dataset from a ``.npz`` file: ``x_train``, ``y_train``, ``x_test``, ``y_test``, or ``x`` and ``y`` (split
    like ``digits``: a seeded ``test_fraction``). ``x`` holds images (n, *shape) (for example (n, 28, 28) or
    (n, 2, 34, 34)) with values in [0, 1]; ``y`` integer labels 0..K-1. Arrays load without pickle, and their
    declared sizes are checked before they are read."""

    p = Path(path)
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    try:
        with np.load(p, allow_pickle=False) as f:
            keys = set(f.files)
            xk, yk = (f"x_{split}", f"y_{split}") if {"x_train", "y_train", "x_test", "y_test"} <= keys else ("x", "y")
            if not {xk, yk} <= keys:
                raise DataError(f"{p}: expected arrays x_train, y_train, x_test, y_test (or x and y), found "
                                f"{', '.join(sorted(keys)) or 'none'}")  # fmt: skip
            for k in (xk, yk):
                info = f.zip.getinfo(f"{k}.npy")
                if info.file_size > MAX_NPZ_BYTES:
                    raise DataError(f"{p}: array {k} is {info.file_size} bytes, more than {MAX_NPZ_BYTES}")
            x, y = f[xk], f[yk]
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - zip and .npy parsing fail in many ways on damaged or hostile files
        from quantal.compile.ir import describe_exception

        raise DataError(f"{p}: not a readable .npz dataset ({describe_exception(e, 'damaged')})") from None
    if x.dtype.kind not in "biuf" or x.ndim < 2:
        raise DataError(f"{p}: {xk} must be a numeric array (n, *image shape), got {x.dtype.name} {x.shape}")
    if y.dtype.kind not in "iu" or y.shape != (x.shape[0],):
        raise DataError(f"{p}: {yk} must be integer labels of shape ({x.shape[0]},), got {y.dtype.name} {y.shape}")
    xf = x.reshape(x.shape[0], -1).astype(np.float32)
    if xf.size and (not np.isfinite(xf).all() or xf.min() < 0 or xf.max() > 1):
        raise DataError(f"{p}: {xk} values must lie in [0, 1] (scale images before saving)")
    if y.size and y.min() < 0:
        raise DataError(f"{p}: {yk} labels must be >= 0")
    n_classes = int(y.max()) + 1 if y.size else 0
    if xk == "x":  # one array: the seeded split of digits
        order = np.random.default_rng(seed).permutation(len(y))
        n_test = int(round(test_fraction * len(y)))
        pick = order[:n_test] if split == "test" else order[n_test:]
        xf, y = xf[pick], y[pick]
    return Dataset(p.stem, xf, y.astype(np.int64), n_classes, tuple(int(d) for d in x.shape[1:]))


def to_arrays(source: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` numpy arrays from arrays, a (x, y) pair, a torch ``Dataset`` of (x, y) items or a ``DataLoader``
    of (x, y) batches (torch is imported only for those)."""
    if isinstance(source, tuple) and len(source) == 2:
        return np.asarray(source[0]), np.asarray(source[1])
    if isinstance(source, Dataset):
        return source.x.reshape(len(source), *source.shape), source.y
    xs, ys = [], []
    try:
        from torch.utils.data import DataLoader
    except ImportError:  # pragma: no cover - torch is installed with quantal
        DataLoader = ()  # noqa: N806
    batched = isinstance(source, DataLoader)
    for item in source:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise DataError(f"expected (x, y) items, got {type(item).__name__}")
        x, y = (np.asarray(v.detach().cpu() if hasattr(v, "detach") else v) for v in item)
        xs.append(x if batched else x[None])
        ys.append(np.asarray(y).reshape(-1))
    if not xs:
        raise DataError("the data source is empty")
    return np.concatenate(xs), np.concatenate(ys)


def events_to_frames(events: np.ndarray, sensor_size: tuple[int, int, int], *, n_time_bins: int | None = None,
                     time_window: float | None = None, binary: bool = True) -> np.ndarray:  # fmt: skip
    """Bin an event recording in tonic's format (a structured array with fields ``x``, ``y``, ``t``, ``p``;
    ``sensor_size = (W, H, P)`` as tonic gives it) into frames (T, P, H, W): ``n_time_bins`` equal bins over the
    recording, or bins of ``time_window`` (units of ``t``) from its first event. ``binary`` (the default) gives
    spikes (uint8 0/1: at least one event in the bin), else event counts (int32)."""
    for fld in ("x", "y", "t", "p"):
        if events.dtype.names is None or fld not in events.dtype.names:
            raise DataError(f"events must be a structured array with fields x, y, t, p (tonic's format), got "
                            f"{events.dtype}")  # fmt: skip
    if (n_time_bins is None) == (time_window is None):
        raise DataError("give exactly one of n_time_bins and time_window")
    w, h, n_pol = (int(v) for v in sensor_size)
    x, y, p = (events[f].astype(np.int64) for f in ("x", "y", "p"))
    t = events["t"].astype(np.float64)
    if len(events) and (x.min() < 0 or x.max() >= w or y.min() < 0 or y.max() >= h or p.min() < 0
                        or p.max() >= n_pol):  # fmt: skip
        raise DataError(f"events fall outside the sensor {sensor_size} (x < W, y < H, p < P)")
    t0 = float(t.min()) if len(events) else 0.0
    if n_time_bins is not None:
        if n_time_bins < 1:
            raise DataError(f"n_time_bins must be >= 1, got {n_time_bins}")
        span = (float(t.max()) - t0) if len(events) else 0.0
        b = np.minimum(((t - t0) / span * n_time_bins).astype(np.int64), n_time_bins - 1) if span > 0 else (
            np.zeros(len(t), np.int64))
        n_bins = n_time_bins
    else:
        if not time_window > 0:
            raise DataError(f"time_window must be > 0, got {time_window}")
        b = ((t - t0) // time_window).astype(np.int64)
        n_bins = int(b.max()) + 1 if len(events) else 1
    frames = np.zeros((n_bins, n_pol, h, w), np.int32)
    np.add.at(frames, (b, p, y, x), 1)
    return (frames > 0).astype(np.uint8) if binary else frames


# ---------------------------------------------------------------------------------------------- encoders


def rate_encode(x: np.ndarray, steps: int, *, max_rate: float = 1.0, seed: int = 0) -> np.ndarray:
    """Bernoulli rate code: pixel intensity p in [0, 1] spikes with probability ``max_rate * p`` per step.

    Returns uint8 (n, steps, d). Seeded: the same (x, steps, max_rate, seed) give the same spikes.
    """
    x = _check_images(x)
    if steps < 1 or not 0 < max_rate <= 1:
        raise ValueError(f"need steps >= 1 and 0 < max_rate <= 1, got steps={steps}, max_rate={max_rate}")
    rng = np.random.default_rng(seed)
    u = rng.random((x.shape[0], steps, x.shape[1]), dtype=np.float32)
    return (u < (max_rate * x)[:, None, :]).astype(np.uint8)


def latency_encode(x: np.ndarray, steps: int, *, threshold: float = 0.0) -> np.ndarray:
    """Time-to-first-spike code: a pixel of intensity p > threshold spikes once, at step
    ``round((1 - p) * (steps - 1))`` (bright pixels first); darker pixels stay silent. Deterministic."""
    x = _check_images(x)
    if steps < 1:
        raise ValueError(f"need steps >= 1, got {steps}")
    out = np.zeros((x.shape[0], steps, x.shape[1]), np.uint8)
    n, j = np.nonzero(x > threshold)
    t = np.rint((1.0 - x[n, j]) * (steps - 1)).astype(np.int64)
    out[n, t, j] = 1
    return out


def _check_images(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected flattened images (n, d), got shape {x.shape}")
    if x.size and (float(x.min()) < 0 or float(x.max()) > 1):
        raise ValueError("intensities must lie in [0, 1]")
    return x.astype(np.float32, copy=False)


ENCODERS = ("rate", "latency", "static", "pairs")


def encode(x: np.ndarray, encoder: str, steps: int, *, max_rate: float = 1.0, seed: int = 0) -> np.ndarray:
    """Spike input (n, steps, channels) uint8 for a network's input layer.

    ``rate`` and ``latency`` as above; ``static`` presents the binarised image (pixel > 0.5) at every step;
    ``pairs`` presents each binarised pixel as an on/off pair of channels, ``[x > 0.5, x <= 0.5]`` (the ±1
    input of an S2M network, docs/compile.md), at every step: channels 0..d-1 are on, d..2d-1 are off.
    """
    if encoder == "rate":
        return rate_encode(x, steps, max_rate=max_rate, seed=seed)
    if encoder == "latency":
        return latency_encode(x, steps)
    x = _check_images(x)
    if steps < 1:
        raise ValueError(f"need steps >= 1, got {steps}")
    on = (x > 0.5).astype(np.uint8)
    if encoder == "static":
        frame = on
    elif encoder == "pairs":
        frame = np.concatenate([on, 1 - on], axis=1)
    else:
        raise ValueError(f"unknown encoder {encoder!r} (known: {', '.join(ENCODERS)})")
    return np.ascontiguousarray(np.broadcast_to(frame[:, None, :], (frame.shape[0], steps, frame.shape[1])))
