"""Hostile and damaged ``.qnet`` archives: every one is an :class:`IRError` of one line, read within bounds; and
a bounded mutation fuzzer over the archive's bytes and its manifest (fixed seed in CI; QUANTAL_FUZZ=N runs
N cases per fuzzer, QUANTAL_FUZZ_SEED=S another seed)."""

import io
import os
import struct
import zipfile

import numpy as np
import pytest
import yaml

from quantal.compile import ir
from quantal.compile.ir import IRError
from quantal.compile.testing import fuzz_bytes, fuzz_values, random_graph

FUZZ_CASES = int(os.environ.get("QUANTAL_FUZZ", "150"))
FUZZ_SEED = int(os.environ.get("QUANTAL_FUZZ_SEED", "0"))


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    net = random_graph(np.random.default_rng(1), conv=True, recurrent=True, release="random", escape=True,
                       per_neuron=True)  # fmt: skip
    p = ir.save(net, tmp_path_factory.mktemp("h") / "good.qnet")
    with zipfile.ZipFile(p) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    return net, p.read_bytes(), members


def write_zip(path, members, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def refused(path, needle=None):
    with pytest.raises(IRError) as e:
        ir.load(path)
    msg = str(e.value)
    assert "\n" not in msg and (needle is None or needle in msg), msg
    return msg


def test_duplicate_members_are_refused(tmp_path, good):
    _, _, members = good
    items = list(members.items())
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name it is asked to write
        p = write_zip(tmp_path / "d.qnet", items + [items[1]])
    refused(p, "appears twice")


@pytest.mark.parametrize("name", ["../evil.npy", "sub/dir.npy", "dir/", "/abs.npy", "a\x1b[31m.npy", "x.txt"])
def test_odd_member_names_are_refused(tmp_path, good, name):
    _, _, members = good
    msg = refused(write_zip(tmp_path / "n.qnet", [*members.items(), (name, b"")]), "unexpected member")
    assert "\x1b" not in msg


def _corrupt_deflate(data: bytes, members: dict) -> bytes:
    """The archive with the first array member's compressed bytes overwritten (its CRC no longer matches)."""
    zf = zipfile.ZipFile(io.BytesIO(data))
    info = next(i for i in zf.infolist() if i.filename.endswith(".npy") and i.compress_size > 8)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    b = bytearray(data)
    b[start: start + 8] = b"\xff" * 8
    return bytes(b)


def _set_method(data: bytes, method: int, flag: int = 0) -> bytes:
    """The archive with every member's compression method (and general-purpose flags) rewritten."""
    b = bytearray(data)
    zf = zipfile.ZipFile(io.BytesIO(data))
    for info in zf.infolist():
        o = info.header_offset
        struct.pack_into("<H", b, o + 6, info.flag_bits | flag)
        struct.pack_into("<H", b, o + 8, method)
    # the central directory holds the same fields
    pos = 0
    while (pos := bytes(b).find(b"PK\x01\x02", pos)) >= 0:
        flags = struct.unpack_from("<H", b, pos + 8)[0]
        struct.pack_into("<H", b, pos + 8, flags | flag)
        struct.pack_into("<H", b, pos + 10, method)
        pos += 4
    return bytes(b)


@pytest.mark.parametrize("damage,needle", [
    (lambda d, m: _corrupt_deflate(d, m), "cannot be read"),
    (lambda d, m: _set_method(d, 99), "cannot be read"),          # an unknown compression method
    (lambda d, m: _set_method(d, 8, flag=0x1), "encrypted"),      # the encrypted flag
    (lambda d, m: d[: len(d) // 2], "not a ZIP"),                  # torn in half
    (lambda d, m: d[:-10], "not a ZIP"),
])  # fmt: skip
def test_damaged_archives_are_one_line_errors(tmp_path, good, damage, needle):
    _, data, members = good
    p = tmp_path / "x.qnet"
    p.write_bytes(damage(data, members))
    refused(p, needle)


def test_sizes_are_checked_before_reading(tmp_path, good, monkeypatch):
    _, _, members = good
    monkeypatch.setattr(ir, "MAX_ARRAY_BYTES", 64)
    refused(write_zip(tmp_path / "big.qnet", members.items()), "would take")
    monkeypatch.setattr(ir, "MAX_ARRAY_BYTES", 2**31)
    bomb = [*members.items()]
    bomb[0] = ("manifest.yaml", members["manifest.yaml"] + b"#" * (ir.MAX_MANIFEST_BYTES + 1))  # a manifest bomb
    refused(write_zip(tmp_path / "bomb.qnet", bomb), "would take")
    monkeypatch.setattr(ir, "MAX_MEMBERS", 5)
    refused(write_zip(tmp_path / "many.qnet", members.items()), "members in the archive")


def _npy_bytes(shape, descr="<i8", body=b""):
    h = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    h += b" " * ((64 - (10 + len(h) + 1) % 64) % 64) + b"\n"
    return np.lib.format.MAGIC_PREFIX + b"\x01\x00" + len(h).to_bytes(2, "little") + h + body


@pytest.mark.parametrize("content,needle", [
    (_npy_bytes((10**9, 10**9)), "more than the member holds"),   # a huge declared shape, nothing allocated
    (b"", "cannot be read"),                                      # an empty .npy
    (b"\x93NUMPY\x01\x00\x10\x00{'descr': '<i8', 'sh", "cannot be read"),  # a torn header
    (_npy_bytes((1,), "|O", b"\x00" * 8), "cannot be read"),      # objects
    (b"\x93NUMPY\x01\x00\xff\x00{'descr': '<i8', 'fortran_order': False, 'shape': (1" + b"1" * 4400 + b",)}",
     "cannot be read"),                                           # an integer of 4,400 digits
])  # fmt: skip
def test_hostile_arrays_are_one_line_errors(tmp_path, good, content, needle):
    _, _, members = good
    name = next(n for n in members if n.endswith(".npy"))
    refused(write_zip(tmp_path / "a.qnet", [*((k, v) for k, v in members.items() if k != name), (name, content)]),
            needle)  # fmt: skip


@pytest.mark.parametrize("text", [b"[" * 100000 + b"]" * 100000, b"\xff\xfe not utf-8", b"a: &a [*a]",
                                  b"!!python/object:os.system {}", b"x: " + b"9" * 5000])
def test_hostile_manifests_are_one_line_errors(tmp_path, good, text):
    _, _, members = good
    refused(write_zip(tmp_path / "m.qnet", [("manifest.yaml", text), *((k, v) for k, v in members.items()
                                                                       if k != "manifest.yaml")]))  # fmt: skip


def test_metadata_with_unprintable_names_is_refused(tmp_path, good):
    net, _, _ = good
    with pytest.raises(IRError, match="printable"):
        net.replace(name="evil\x1b[2J")


# ------------------------------------------------------------------------------------------------ fuzzing


def _load_or_refuse(path):
    """A valid network or an IRError of one line: anything else is a bug."""
    try:
        ir.load(path)
    except IRError as e:
        assert "\n" not in str(e), str(e)


def test_fuzz_archive_bytes(tmp_path, good):
    """Random byte flips, insertions and truncations of a valid archive."""
    _, data, _ = good
    rng = np.random.default_rng(FUZZ_SEED)
    p = tmp_path / "f.qnet"
    for _ in range(FUZZ_CASES):
        p.write_bytes(fuzz_bytes(data, rng))
        _load_or_refuse(p)


def test_fuzz_manifest_values(tmp_path, good):
    """Random values (wrong types, huge, NaN, negative, control characters) at random places of the
    manifest, and random keys deleted or added."""
    _, _, members = good
    manifest = yaml.safe_load(members["manifest.yaml"])
    arrays = [(k, v) for k, v in members.items() if k != "manifest.yaml"]
    for m in fuzz_values(manifest, np.random.default_rng(FUZZ_SEED + 1), FUZZ_CASES):
        text = yaml.safe_dump(m, allow_unicode=False).encode()
        _load_or_refuse(write_zip(tmp_path / "m.qnet", [("manifest.yaml", text), *arrays]))
