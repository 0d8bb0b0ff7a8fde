"""Datasets and spike encoders."""

import gzip
import math

import numpy as np
import pytest

from quantal.train import data


def write_idx(path, arr: np.ndarray, code: int = 0x08, compress: bool = False) -> None:
    header = bytes([0, 0, code, arr.ndim]) + np.array(arr.shape, dtype=">u4").tobytes()
    raw = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    (gzip.open if compress else open)(path, "wb").write(raw)


@pytest.fixture
def fake_fashion(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 5)):
        img, lab = data.FASHION_FILES[split]
        write_idx(tmp_path / img, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), compress=split == "test")
        write_idx(tmp_path / (lab + (".gz" if split == "test" else "")), rng.integers(0, 10, n, dtype=np.uint8),
                  compress=split == "test")  # fmt: skip
    return tmp_path


def test_read_idx_round_trips_types(tmp_path):
    for code, dtype in [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32), (0x0D, np.float32)]:
        arr = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
        write_idx(tmp_path / "a.idx", arr, code)
        assert np.array_equal(data.read_idx(tmp_path / "a.idx"), arr)


def test_read_idx_rejects_bad_files(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(data.DataError, match="magic"):
        data.read_idx(p)
    write_idx(p, np.zeros((3, 4), np.uint8))
    p.write_bytes(p.read_bytes()[:-2])
    with pytest.raises(data.DataError, match="bytes"):
        data.read_idx(p)


def test_fashion_mnist_from_a_folder(fake_fashion, monkeypatch):
    monkeypatch.setenv(data.FASHION_ENV, str(fake_fashion))
    train = data.load("fashion-mnist")
    test = data.load("fashion-mnist", "test")
    assert train.x.shape == (12, 784) and test.x.shape == (5, 784) and train.shape == (28, 28)
    assert train.x.dtype == np.float32 and 0 <= train.x.min() and train.x.max() <= 1


def test_missing_fashion_mnist_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv(data.FASHION_ENV, str(tmp_path))
    monkeypatch.setattr(data, "FASHION_DIRS", ())
    with pytest.raises(data.DataError, match="apt-get install dataset-fashion-mnist"):
        data.load("fashion-mnist")


def test_digits_split_is_seeded_and_disjoint():
    tr, te = data.load("digits"), data.load("digits", "test")
    assert len(tr) + len(te) == 1797 and tr.x.shape[1] == 64 and tr.n_classes == 10
    assert np.array_equal(data.load("digits", "test").x, te.x)
    rows = {r.tobytes() for r in tr.x}
    assert sum(r.tobytes() in rows for r in te.x) <= 5  # the dataset holds a few duplicate images
    with pytest.raises(data.DataError, match="unknown dataset"):
        data.load("mnist")


def test_rate_encoding_probability_and_seed():
    # 4 intensities x 200 samples x 50 steps: the spike frequency is p; tolerance 5 standard errors.
    p = np.array([0.0, 0.1, 0.5, 0.9], np.float32)
    x = np.tile(p, (200, 1))
    s = data.rate_encode(x, 50, seed=3)
    assert s.dtype == np.uint8 and s.shape == (200, 50, 4)
    freq = s.mean(axis=(0, 1))
    for f, q in zip(freq, p):
        assert abs(f - q) <= 5 * math.sqrt(q * (1 - q) / 10000) + 1e-9
    assert np.array_equal(s, data.rate_encode(x, 50, seed=3))
    assert not np.array_equal(s, data.rate_encode(x, 50, seed=4))


def test_latency_encoding_closed_form():
    x = np.array([[1.0, 0.5, 0.0, 0.26]], np.float32)
    s = data.latency_encode(x, 5)
    # spike at round((1 - p) * 4): p = 1 -> 0, p = 0.5 -> 2, p = 0 -> silent, p = 0.26 -> round(2.96) = 3
    assert s[0].T.tolist() == [[1, 0, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 1, 0]]


def test_encoders_reject_bad_input():
    with pytest.raises(ValueError, match="flattened"):
        data.rate_encode(np.zeros((2, 2, 2)), 3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        data.latency_encode(np.full((1, 3), 2.0), 3)


def test_real_fashion_mnist_from_debian(monkeypatch):
    monkeypatch.delenv(data.FASHION_ENV, raising=False)
    try:
        data.fashion_mnist_dir()
    except data.DataError:
        if __import__("os").environ.get("CI") == "true":
            pytest.fail("dataset-fashion-mnist is missing under CI=true (make apt-deps installs it)")
        pytest.skip("dataset-fashion-mnist not installed")
    test = data.load("fashion-mnist", "test")
    assert test.x.shape == (10000, 784) and test.n_classes == 10
    assert test.y[:5].tolist() == [9, 2, 1, 1, 6]  # the published start of the test labels
    assert np.bincount(test.y).tolist() == [1000] * 10


# ------------------------------------------------------------------------------------- data from anywhere


def test_npz_datasets_keep_their_image_shape(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((30, 2, 5, 5)).astype(np.float32)
    y = rng.integers(0, 3, 30)
    np.savez(tmp_path / "mine.npz", x_train=x[:20], y_train=y[:20], x_test=x[20:], y_test=y[20:])
    tr, te = data.load(str(tmp_path / "mine.npz"), "train"), data.load(str(tmp_path / "mine.npz"), "test")
    assert tr.shape == (2, 5, 5) and len(tr) == 20 and len(te) == 10
    assert np.array_equal(tr.x.reshape(20, 2, 5, 5), x[:20]) and np.array_equal(te.y, y[20:])
    np.savez(tmp_path / "one.npz", x=x, y=y)  # one array pair: a seeded split
    a, b = data.load(str(tmp_path / "one.npz"), "train"), data.load(str(tmp_path / "one.npz"), "test")
    assert len(a) + len(b) == 30 and not set(map(tuple, a.x)) & set(map(tuple, b.x))


@pytest.mark.parametrize("arrays,needle", [
    ({"x": np.zeros((3, 4)), "y": np.zeros(2, np.int64)}, "labels of shape (3,)"),
    ({"x": np.full((3, 4), 2.0), "y": np.zeros(3, np.int64)}, "[0, 1]"),
    ({"x": np.zeros((3, 4)), "y": np.zeros(3)}, "integer labels"),
    ({"images": np.zeros((3, 4))}, "expected arrays"),
    ({"x": np.array(["a", "b"]), "y": np.zeros(2, np.int64)}, "numeric"),
])  # fmt: skip
def test_bad_npz_datasets_are_refused_with_one_line(tmp_path, arrays, needle):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(data.DataError) as e:
        data.load(str(tmp_path / "bad.npz"))
    assert needle in str(e.value) and "\n" not in str(e.value)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(data.DataError, match="not a readable"):
        data.load(str(tmp_path / "junk.npz"))


def test_to_arrays_takes_arrays_datasets_and_loaders():
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    x, y = torch.rand(10, 1, 3, 3), torch.arange(10) % 2
    ds = TensorDataset(x, y)
    for source in ((x.numpy(), y.numpy()), ds, DataLoader(ds, batch_size=4)):
        xa, ya = data.to_arrays(source)
        assert np.array_equal(xa, x.numpy()) and np.array_equal(ya, y.numpy())


def test_events_are_binned_into_frames():
    ev = np.zeros(5, dtype=[("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])
    ev["x"], ev["y"], ev["t"], ev["p"] = [0, 1, 1, 2, 2], [0, 0, 0, 1, 1], [0, 10, 12, 50, 99], [0, 1, 1, 0, 0]
    # 2 bins over [0, 99]: bin = floor(t / 99 * 2) capped at 1 -> events 0-2 in bin 0, 3-4 in bin 1
    counts = data.events_to_frames(ev, (3, 2, 2), n_time_bins=2, binary=False)
    assert counts.shape == (2, 2, 2, 3)  # (T, P, H, W)
    assert counts[0, 1, 0, 1] == 2 and counts[0, 0, 0, 0] == 1 and counts[1, 0, 1, 2] == 2 and counts.sum() == 5
    frames = data.events_to_frames(ev, (3, 2, 2), time_window=25)  # bins of 25: t // 25 = 0, 0, 0, 2, 3
    assert frames.shape == (4, 2, 2, 3) and frames.dtype == np.uint8 and frames.max() == 1 and frames[1].sum() == 0
    with pytest.raises(data.DataError, match="outside the sensor"):
        data.events_to_frames(ev, (2, 2, 2), n_time_bins=2)
    with pytest.raises(data.DataError, match="tonic"):
        data.events_to_frames(np.zeros(3), (2, 2, 2), n_time_bins=2)


def test_damaged_npz_datasets_are_one_line_errors(tmp_path):
    import io
    import zipfile

    from quantal.train.data import DataError, load_npz

    good = tmp_path / "good.npz"
    np.savez(good, x=np.zeros((4, 3)), y=np.zeros(4, np.int64))
    data = bytearray(good.read_bytes())
    cases = {"torn": bytes(data[: len(data) // 2])}
    zf = zipfile.ZipFile(io.BytesIO(bytes(data)))
    info = zf.getinfo("x.npy")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    flipped = bytearray(data)
    flipped[start + 20: start + 40] = b"\x00" * 20  # the header of x.npy overwritten
    cases["header"] = bytes(flipped)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x.npy", b"\x93NUMPY\x01\x00\x20\x00{'descr': '<f8', 'shape': (1" + b"1" * 5000)
        z.writestr("y.npy", b"")
    cases["digits"] = buf.getvalue()
    for name, content in cases.items():
        p = tmp_path / f"{name}.npz"
        p.write_bytes(content)
        with pytest.raises(DataError) as e:
            load_npz(p)
        assert "\n" not in str(e.value) and p.name in str(e.value), name
