"""The command line: `quantal run` and `quantal inspect` as a user calls them."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from quantal.cli import USER_ERRORS, main
from quantal.compile import ir, reference
from quantal.compile.testing import random_network, random_spikes


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(4)
    net = random_network(rng, [10, 12, 4], release="random", escape=True, readout=True, name="cli")
    netp = ir.save(net, tmp_path / "net.qnet")
    x = random_spikes(rng, 5, 6, 10)
    xp = tmp_path / "x.npy"
    np.save(xp, x)
    return net, netp, x, xp, tmp_path


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quantal", *args], capture_output=True, text=True)


def test_run_writes_the_contracted_arrays(files):
    net, netp, x, xp, tmp = files
    out = tmp / "out.npz"
    assert main(["run", str(netp), "--input", str(xp), "--out", str(out), "--steps", "9", "--seed", "17",
                 "--trials", "3", "--record", "spikes,u,v,counts", "-q"]) == 0  # fmt: skip
    got = dict(np.load(out))
    want = reference.simulate(net, x, steps=9, seed=17, trials=3, record=("spikes", "u", "v", "counts"))
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and np.array_equal(got[k], want[k])
    assert got["l0.spikes"].shape == (3, 5, 9, 12) and got["l1.counts"].shape == (3, 5, 4)


def test_run_defaults_and_layer_selection(files):
    net, netp, x, xp, tmp = files
    out = tmp / "out.npz"
    assert main(["run", str(netp), "--input", str(xp), "--out", str(out), "--layers", "l1", "-q"]) == 0
    got = dict(np.load(out))
    assert list(got) == ["l1.spikes"] and got["l1.spikes"].shape == (5, 6, 4) and got["l1.spikes"].dtype == np.uint8


def test_identical_arguments_give_identical_bytes(files):
    _, netp, _, xp, tmp = files
    a, b = tmp / "a.npz", tmp / "b.npz"
    for o in (a, b):
        assert main(["run", str(netp), "--input", str(xp), "--out", str(o), "--record", "u,v", "-q"]) == 0
    assert a.read_bytes() == b.read_bytes()


BAD_RUNS = [
    (["--steps", "0"], "--steps"),
    (["--steps", "x"], "--steps"),
    (["--seed", "-3"], "--seed"),
    (["--seed", str(2**64)], "--seed"),
    (["--trials", "0"], "--trials"),
    (["--record", "spikes,volts"], "volts"),
    (["--layers", "fc9"], "fc9"),
    (["--bogus"], "unrecognized"),
]


@pytest.mark.parametrize("extra,needle", BAD_RUNS)
def test_bad_arguments_exit_2_with_one_line(files, extra, needle, capsys):
    _, netp, _, xp, tmp = files
    out = tmp / "out.npz"
    assert main(["run", str(netp), "--input", str(xp), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err
    assert not out.exists()


def test_bad_files_exit_2_with_one_line_and_no_output(files):
    net, netp, x, xp, tmp = files
    out = tmp / "out.npz"
    cases = []
    bad_net = tmp / "bad.qnet"
    bad_net.write_bytes(b"not a zip")
    cases.append(([str(bad_net), "--input", str(xp)], "not a ZIP"))
    cases.append(([str(tmp / "missing.qnet"), "--input", str(xp)], "no such file"))
    wrong = tmp / "wrong.npy"
    np.save(wrong, np.zeros((2, 3, 7), bool))
    cases.append(([str(netp), "--input", str(wrong)], "channels"))
    floats = tmp / "f.npy"
    np.save(floats, np.zeros((2, 3, 10), np.float64))
    cases.append(([str(netp), "--input", str(floats)], "bool or uint8"))
    garbage = tmp / "g.npy"
    garbage.write_bytes(b"\x93NUMPY garbage")
    cases.append(([str(netp), "--input", str(garbage)], "g.npy"))
    pickled = tmp / "p.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    cases.append(([str(netp), "--input", str(pickled)], "p.npy"))
    cases.append(([str(netp), "--input", str(tmp / "nope.npy")], "no such file"))
    for args, needle in cases:
        r = cli("run", *args, "--out", str(out))
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.count("\n") == 1 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert not out.exists()


def test_failed_run_keeps_an_existing_output(files):
    _, netp, _, xp, tmp = files
    out = tmp / "out.npz"
    out.write_bytes(b"previous result")
    assert main(["run", str(netp), "--input", str(xp), "--out", str(out), "--layers", "zz"]) == 2
    assert out.read_bytes() == b"previous result"


def test_inspect_text_and_json(files):
    net, netp, _, _, _ = files
    r = cli("inspect", str(netp))
    assert r.returncode == 0, r.stderr
    assert "network 'cli'" in r.stdout and "l0" in r.stdout and "readout" in r.stdout
    r = cli("inspect", str(netp), "--json")
    rep = json.loads(r.stdout)
    assert rep["totals"]["stored_weights"] == 10 * 12 + 12 * 4
    assert rep["totals"]["stochastic_synapses"] == int(sum((p.synapse.release < 255).sum() for p in net.projections))
    assert rep["projections"][0]["weight_exp"] == net.projections[0].synapse.weight_exp
    assert [(p["name"], p["source"], p["target"], p["kind"]) for p in rep["projections"]] == [
        ("l0", "input", "l0", "dense"), ("l1", "l0", "l1", "dense")]
    assert rep["projections"][0]["fan_in"] == 10 and rep["projections"][0]["fan_out"] == 12
    assert rep["layers"][1]["kind"] == "readout"
    w = net.projections[0].synapse.weight
    assert rep["projections"][0]["memory_bytes"] == w.nbytes * 2  # weights and release codes
    assert rep["layers"][0]["memory_bytes"] == sum(
        b.nbytes for b in (net.layers[0].neuron.bias_mant, net.layers[0].neuron.bias_exp) if isinstance(b, np.ndarray)
    )


def test_inspect_warns_about_32_bit_overflow(tmp_path):
    from quantal.compile.ir import DenseSynapse, Network, Neuron

    # 3000 inputs x 127 x 2**7 = 48,768,000; << 6 = 3,121,152,000 >= 2**31
    w = np.full((2, 3000), 127, np.int8)
    net = Network.chain("big", 3000, (
        ("fc", 2, DenseSynapse(weight=w, weight_exp=7), Neuron()),))
    p = ir.save(net, tmp_path / "big.qnet")
    r = cli("inspect", str(p))
    assert r.returncode == 0 and "warning: layer 'fc'" in r.stdout and "2**31" in r.stdout


def test_inspect_rejects_a_malformed_file(tmp_path):
    p = tmp_path / "x.qnet"
    p.write_text("junk")
    r = cli("inspect", str(p))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_console_script_is_installed():
    exe = os.path.join(os.path.dirname(sys.executable), "quantal")
    r = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("quantal ")


# ------------------------------------------------------------------------------------------------ IR v2


@pytest.fixture
def graph_files(tmp_path):
    from quantal.compile.testing import random_graph

    rng = np.random.default_rng(21)
    net = random_graph(rng, release="random", escape=True, max_delay=2, name="g")
    netp = ir.save(net, tmp_path / "g.qnet")
    x = random_spikes(rng, 3, 6, net.input_size).reshape(3, 6, *net.input_shape)
    xp = tmp_path / "x.npy"
    np.save(xp, x)
    return net, netp, x, xp, tmp_path


def test_run_takes_shaped_input_and_equals_the_reference(graph_files):
    net, netp, x, xp, tmp = graph_files
    assert len(net.input_shape) == 3 and x.ndim == 5  # (n, T, C, H, W)
    out = tmp / "out.npz"
    assert main(["run", str(netp), "--input", str(xp), "--out", str(out), "--steps", "10", "--seed", "3",
                 "--record", "spikes,u,v,counts", "-q"]) == 0  # fmt: skip
    got = dict(np.load(out))
    want = reference.simulate(net, x.reshape(3, 6, -1), steps=10, seed=3, record=("spikes", "u", "v", "counts"))
    assert sorted(got) == sorted(want) and all(np.array_equal(got[k], want[k]) for k in want)


def test_inspect_shows_the_graph(graph_files):
    net, netp, _, _, _ = graph_files
    r = cli("inspect", str(netp))
    assert r.returncode == 0, r.stderr
    assert "(recurrent)" in r.stdout and "conv2d" in r.stdout and "IR v2" in r.stdout
    rep = json.loads(cli("inspect", str(netp), "--json").stdout)
    assert [(p["name"], p["source"], p["target"], p["kind"]) for p in rep["projections"]] == [
        (p.name, p.source, p.target, p.kind) for p in net.projections]
    assert [p["recurrent"] for p in rep["projections"]] == [net.is_recurrent(p) for p in net.projections]
    assert [p["delay"] for p in rep["projections"]] == [p.delay for p in net.projections]
    assert rep["layers"][0]["shape"] == list(net.layers[0].shape) and rep["input_shape"] == list(net.input_shape)


@pytest.mark.parametrize("mutate,needle", [
    (lambda m: m["projections"][0].update(source="nowhere"), "unknown source"),
    (lambda m: m["projections"][0].update(delay=99), "delay"),
    (lambda m: m["layers"][0].update(shape=[1, 2]), "shape"),
    (lambda m: m["projections"][0]["synapse"].update(stride=[0, 1]), "stride"),
    (lambda m: m.update(version=3), "newer"),
])  # fmt: skip
def test_bad_graph_files_exit_2_with_one_line(graph_files, mutate, needle):
    import zipfile

    import yaml

    net, netp, _, xp, tmp = graph_files
    with zipfile.ZipFile(netp) as zf:
        manifest = yaml.safe_load(zf.read("manifest.yaml"))
        members = {n: zf.read(n) for n in zf.namelist() if n != "manifest.yaml"}
    mutate(manifest)
    bad = tmp / "bad.qnet"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("manifest.yaml", yaml.safe_dump(manifest))
        for n, data in members.items():
            zf.writestr(n, data)
    for args in (["inspect", str(bad)], ["run", str(bad), "--input", str(xp), "--out", str(tmp / "o.npz")]):
        r = cli(*args)
        assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp / "o.npz").exists()


def test_a_closed_pipe_ends_quietly(tmp_path):
    from quantal.compile.ir import DenseSynapse, Network, Neuron

    # 300 layers: the JSON report is far larger than a pipe's buffer, so `head` closes the pipe mid-write
    chain = [(f"l{k}", 2, DenseSynapse(weight=np.ones((2, 2), np.int8)), Neuron()) for k in range(300)]
    netp = ir.save(Network.chain("long", 2, chain), tmp_path / "long.qnet")
    r = subprocess.run(f"{sys.executable} -m quantal inspect --json {netp} | head -c 10", shell=True,
                       capture_output=True, text=True)  # fmt: skip
    assert r.stdout.startswith("{") and r.stderr == ""


def test_run_defaults_to_the_networks_stored_run_length(files, capsys):
    net, netp, x, xp, tmp = files
    stored = ir.save(net.replace(metadata={"input": {"encoder": "rate", "steps": 6, "run_steps": 9}}),
                     tmp / "stored.qnet")  # fmt: skip
    out = tmp / "out.npz"
    assert main(["run", str(stored), "--input", str(xp), "--out", str(out), "--record", "v"]) == 0
    assert "stored run_steps" in capsys.readouterr().err
    got = dict(np.load(out))
    want = reference.simulate(net, x, steps=9, seed=0, record=("v",))
    assert got["l1.v"].shape[1] == 9 and np.array_equal(got["l1.v"], want["l1.v"])
    assert main(["run", str(stored), "--input", str(xp), "--out", str(out), "--steps", "6", "-q"]) == 0
    assert dict(np.load(out))["l1.spikes"].shape[1] == 6  # --steps overrides


def _npy_header(shape, descr="|u1"):
    import numpy.lib.format as fmt

    h = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    h = h + b" " * ((64 - (10 + len(h) + 1) % 64) % 64) + b"\n"
    return fmt.MAGIC_PREFIX + b"\x01\x00" + len(h).to_bytes(2, "little") + h


@pytest.mark.parametrize("content,needle", [
    (b"", "not a readable .npy"),                                          # empty file
    (b"\x93NUMPY\x01\x00\x10\x00{'descr': '|u1',", "not a readable .npy"),   # a torn header
    (_npy_header((10**6, 10**6, 1000)), "GiB"),                            # a huge declared shape: refused unread
    (_npy_header((2, 3, 10)) + b"\x01" * 7, "not a readable .npy"),        # a truncated body
    (_npy_header((2, 3, 10), "<c16"), "bool or numeric"),                  # complex numbers
    (_npy_header((60,)) + b"\x01" * 60, "(samples, T"),                    # too few axes
    (b"\x93NUMPY\x01\x00\x20\x00{'descr': '|u1', 'shape': (1" + b"1" * 4400, "not a readable .npy"),
])  # fmt: skip
def test_hostile_npy_inputs_exit_2_with_one_line(files, content, needle):
    net, netp, x, xp, tmp = files
    bad = tmp / "bad.npy"
    bad.write_bytes(content)
    r = cli("run", str(netp), "--input", str(bad), "--out", str(tmp / "o.npz"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and needle in r.stderr, r.stderr
    assert not (tmp / "o.npz").exists()


def run_raising(files, monkeypatch, exc: Exception) -> int:
    """main() on `quantal run` whose command raises ``exc``."""
    from quantal import cli as cli_mod

    def fail(args):
        raise exc

    parser = cli_mod.build_parser

    def patched():
        p = parser()
        p._subparsers._group_actions[0].choices["run"].set_defaults(func=fail)
        return p

    monkeypatch.setattr(cli_mod, "build_parser", patched)
    net, netp, x, xp, tmp = files
    return main(["run", str(netp), "--input", str(xp), "--out", str(tmp / "o.npz")])


def test_an_unexpected_exception_is_one_line_with_its_own_status(files, monkeypatch, capsys):
    from quantal import cli as cli_mod

    assert run_raising(files, monkeypatch, ZeroDivisionError("\x1b[31mred\x1b[0m")) == cli_mod.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: ZeroDivisionError" in err and "report" in err
    assert "\x1b" not in err  # control characters never reach the terminal raw


@pytest.mark.parametrize("extra,needle", [
    (["--steps", "1000000000"], "steps"), (["--trials", "1000000000"], "trials"),
    (["--device", "pcm", "--time", "1e308"], "time"),
])  # fmt: skip
def test_impossible_run_sizes_and_times_exit_2_before_allocating(files, extra, needle):
    net, netp, x, xp, tmp = files
    r = cli("run", str(netp), "--input", str(xp), "--out", str(tmp / "o.npz"), *extra)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and needle in r.stderr, r.stderr


@pytest.mark.parametrize("quant", [
    {"layers": [{"name": 3, "scale": "%", "weight_exp": [1]}], "accuracy": {"hwsim": "%"}},
    {"layers": "x", "accuracy": [1], "evaluated_on": 7},
    {"layers": [None, 5], "accuracy": {"a": float("nan")}},
])  # fmt: skip
def test_inspect_survives_badly_typed_metadata(files, quant):
    net, netp, x, xp, tmp = files
    p = ir.save(net.replace(metadata={"quantization": quant}), tmp / "m.qnet")
    for extra in ([], ["--json"]):
        r = cli("inspect", str(p), *extra)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr


def test_write_errors_name_the_users_path_not_a_temporary_file(files):
    net, netp, x, xp, tmp = files
    (tmp / "outdir").mkdir()
    for out in (tmp / "outdir", "/proc/quantal-test/o.npz"):
        r = cli("run", str(netp), "--input", str(xp), "--out", str(out))
        assert r.returncode == 2 and str(out) in r.stderr and ".tmp" not in r.stderr, r.stderr


def test_every_command_that_writes_results_reports_them_as_json(files):
    """run, export and import print one JSON object with --json, and it describes the files they wrote."""
    net, netp, x, xp, tmp = files
    r = cli("run", str(netp), "--input", str(xp), "--out", str(tmp / "o.npz"), "--record", "spikes,counts",
            "--json")  # fmt: skip
    rep = json.loads(r.stdout)
    got = np.load(tmp / "o.npz")
    assert rep["samples"] == 5 and {k: v["shape"] for k, v in rep["arrays"].items()} == {
        k: list(got[k].shape) for k in got.files}
    r = cli("export", str(netp), "--target", "nir", "-o", str(tmp / "n.nir"), "--json")
    rep = json.loads(r.stdout)
    assert rep["out"] == str(tmp / "n.nir") and rep["layers"] == [la.name for la in net.layers]
    assert any("escape noise" in w for w in rep["warnings"]) and r.stderr == ""
    r = cli("import", str(tmp / "n.nir"), "-o", str(tmp / "back.qnet"), "--json")
    rep = json.loads(r.stdout)
    assert rep["exact"] is True and ir.load(tmp / "back.qnet").layers == net.layers
    from tests.targets.test_netx import netx_network

    det = netx_network(np.random.default_rng(2), [6, 5, 4])
    ir.save(det, tmp / "det.qnet")
    r = cli("export", str(tmp / "det.qnet"), "--target", "netx", "-o", str(tmp / "det.h5"), "--steps", "6", "--json")
    assert json.loads(r.stdout)["target"] == "netx", r.stderr
    r = cli("import", str(tmp / "det.h5"), "-o", str(tmp / "det2.qnet"), "--json")
    back = ir.load(tmp / "det2.qnet")  # NetX keeps no layer names
    assert json.loads(r.stdout)["format"] == "netx" and [la.neuron for la in back.layers] == [
        la.neuron for la in det.layers]


@pytest.mark.parametrize("module, name", USER_ERRORS)
def test_each_modules_user_error_exits_2_with_one_line(files, monkeypatch, capsys, module, name):
    """The error classes main() recognises by module, raised from a command: one line, exit 2."""
    import importlib

    err_type = getattr(importlib.import_module(module), name)
    assert issubclass(err_type, Exception)
    assert run_raising(files, monkeypatch, err_type("the message\x1b[0m")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "quantal: error: the message" in err and "\x1b" not in err


def test_run_imports_no_training_export_or_plotting_code(files):
    """`quantal run` starts with what simulating needs: no torch, trainer, exporters, sweeps or plots (each
    would add to every run's start-up)."""
    net, netp, x, xp, tmp = files
    code = ("import sys; from quantal.cli import main; "
            f"rc = main(['run', {str(netp)!r}, '--input', {str(xp)!r}, '--out', {str(tmp / 'o.npz')!r}, '-q']); "
            "print(rc, *sorted(sys.modules))")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    rc, *mods = r.stdout.split()
    assert rc == "0", r.stderr
    unwanted = ("torch", "matplotlib", "h5py", "nir", "quantal.train", "quantal.targets", "quantal.sweep",
                "quantal.pipeline", "quantal.plots", "quantal.compile.lower", "quantal.compile.quantize")  # fmt: skip
    assert not [m for m in mods if m.split(".")[0] in unwanted or any(m.startswith(u) for u in unwanted)]


def test_user_error_lookup_never_raises(monkeypatch):
    """A module still being imported (in sys.modules, its error class not yet defined) is skipped: looking the
    errors up while handling an exception must not raise one of its own."""
    import types

    from quantal import cli as cli_mod

    for module, _ in cli_mod.USER_ERRORS:
        monkeypatch.setitem(sys.modules, module, types.ModuleType(module))
    assert cli_mod.user_errors() == (cli_mod.UsageError,)
