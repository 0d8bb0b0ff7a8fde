"""IR v1: round trips and one test per validation rule of DESIGN.md."""

import io
import os
import zipfile

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantal.compile import ir
from quantal.compile.ir import DenseSynapse, EscapeNoise, IRError, Layer, Network, Neuron
from quantal.compile.testing import random_network


def small_net(**kw) -> Network:
    rng = np.random.default_rng(0)
    return random_network(rng, [6, 5, 4, 3], **kw)


def write_raw(path, manifest, arrays, extra_files=None):
    """Write a .qnet by hand, bypassing the writer's checks."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.yaml", yaml.safe_dump(manifest, sort_keys=False))
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.save(buf, arr, allow_pickle=True)
            zf.writestr(f"{name}.npy", buf.getvalue())
        for name, data in (extra_files or {}).items():
            zf.writestr(name, data)


def parts(net):
    manifest, arrays = ir._arrays_and_manifest(net)
    return yaml.safe_load(yaml.safe_dump(manifest)), dict(arrays)


# ------------------------------------------------------------------------------------------- round trip


@st.composite
def networks(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    sizes = draw(st.lists(st.integers(1, 9), min_size=2, max_size=5))
    release = draw(st.sampled_from([None, "random", 0.5]))
    return random_network(
        np.random.default_rng(seed), sizes, release=release, weight_fixed=draw(st.booleans()),
        escape=draw(st.booleans()), readout=draw(st.booleans()), memoryless=draw(st.booleans()),
    )  # fmt: skip


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(net=networks(), meta=st.dictionaries(st.text(min_size=1, max_size=5), st.integers() | st.text(max_size=5)))
def test_save_load_round_trip(tmp_path, net, meta):
    net = Network(name=net.name, input_size=net.input_size, layers=net.layers, metadata=meta)
    path = ir.save(net, tmp_path / "n.qnet")
    back = ir.load(path)
    assert back == net
    assert back.metadata == meta
    assert ir.load(ir.save(back, tmp_path / "m.qnet")) == net


def test_file_is_a_zip_of_manifest_and_npy(tmp_path):
    path = ir.save(small_net(release="random", weight_fixed=True), tmp_path / "n.qnet")
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        manifest = yaml.safe_load(zf.read("manifest.yaml"))
    assert manifest["format"] == "quantal.ir" and manifest["version"] == 1
    assert "manifest.yaml" in names
    assert {"l0.weight.npy", "l0.release.npy", "l0.weight_fixed.npy"} <= names
    assert manifest["layers"][0]["synapse"]["weight"] == "l0.weight"


def test_objects_are_immutable():
    net = small_net()
    with pytest.raises(ValueError):
        net.layers[0].synapse.weight[0, 0] = 1
    with pytest.raises(AttributeError):
        net.layers[0].size = 3  # type: ignore[misc]


def test_save_is_atomic(tmp_path, monkeypatch):
    net = small_net()
    path = ir.save(net, tmp_path / "n.qnet")
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", boom)
    with pytest.raises(OSError):
        ir.save(small_net(release=0.5), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["n.qnet"]  # no temporary file left behind


# ------------------------------------------------------------------------------------- validation rules


def load_modified(tmp_path, mutate, net=None):
    manifest, arrays = parts(net or small_net())
    extra = mutate(manifest, arrays)
    p = tmp_path / "bad.qnet"
    write_raw(p, manifest, arrays, extra if isinstance(extra, dict) else None)
    return ir.load(p)


def err(tmp_path, mutate, net=None) -> IRError:
    with pytest.raises(IRError) as e:
        load_modified(tmp_path, mutate, net)
    assert "\n" not in str(e.value)
    return e.value


def test_unknown_format(tmp_path):
    e = err(tmp_path, lambda m, a: m.update(format="onnx"))
    assert e.field == "format" and "onnx" in str(e)


@pytest.mark.parametrize("version", [0, "1", None, 1.0])
def test_unknown_version(tmp_path, version):
    e = err(tmp_path, lambda m, a: m.update(version=version))
    assert e.field == "version" and "unknown version" in str(e)


def test_newer_version_is_refused(tmp_path):
    e = err(tmp_path, lambda m, a: m.update(version=2))
    assert e.field == "version" and "newer" in str(e) and "upgrade" in str(e)


def test_missing_array(tmp_path):
    e = err(tmp_path, lambda m, a: a.pop("l1.weight"))
    assert e.layer == "l1" and e.field == "synapse.weight" and "missing array" in str(e)


def test_extra_array(tmp_path):
    e = err(tmp_path, lambda m, a: a.update(stray=np.zeros(3, np.int8)))
    assert "stray" in str(e) and "extra" in str(e)


def test_unexpected_file_in_archive(tmp_path):
    e = err(tmp_path, lambda m, a: {"notes.txt": "hi"})
    assert "notes.txt" in str(e)


def test_pickled_array_is_refused(tmp_path):
    def mutate(m, a):
        a["l0.weight"] = np.array([{"x": 1}], dtype=object)

    e = err(tmp_path, mutate)
    assert "l0.weight" in str(e)


@pytest.mark.parametrize(
    "field,array,expected",
    [
        ("weight", lambda w: w.astype(np.float32), "dtype int8"),
        ("weight", lambda w: w.astype(np.int16), "dtype int8"),
        ("release", lambda w: w.astype(np.int8), "dtype uint8"),
        ("weight_fixed", lambda w: w.astype(np.uint8), "dtype int8"),
    ],
)
def test_wrong_dtype(tmp_path, field, array, expected):
    net = small_net(release="random", weight_fixed=True)
    e = err(tmp_path, lambda m, a: a.update({f"l1.{field}": array(a[f"l1.{field}"])}), net)
    assert e.layer == "l1" and e.field == f"synapse.{field}" and expected in str(e)


def test_wrong_shape_release(tmp_path):
    net = small_net(release="random")
    e = err(tmp_path, lambda m, a: a.update({"l1.release": a["l1.release"][:, :-1]}), net)
    assert e.layer == "l1" and e.field == "synapse.release" and "shape" in str(e)


def test_weight_must_be_2d(tmp_path):
    e = err(tmp_path, lambda m, a: a.update({"l0.weight": a["l0.weight"].ravel()}))
    assert e.layer == "l0" and e.field == "synapse.weight"


def test_bias_array_shape(tmp_path):
    def mutate(m, a):
        m["layers"][1]["neuron"]["bias_mant"] = "b"
        a["b"] = np.zeros(7, np.int16)

    e = err(tmp_path, mutate)
    assert e.layer == "l1" and e.field == "neuron.bias_mant" and "shape" in str(e)


@pytest.mark.parametrize(
    "section,key,value",
    [
        ("synapse", "weight_exp", 8),
        ("synapse", "weight_exp", -9),
        ("neuron", "current_decay", 4097),
        ("neuron", "voltage_decay", -1),
        ("neuron", "threshold", 131072),
        ("neuron", "threshold", -1),
        ("neuron", "bias_mant", 4096),
        ("neuron", "bias_mant", -4097),
        ("neuron", "bias_exp", 8),
        ("neuron", "bias_exp", -1),
        ("neuron", "threshold", 1.5),
        ("neuron", "threshold", True),
    ],
)
def test_values_out_of_range(tmp_path, section, key, value):
    e = err(tmp_path, lambda m, a: m["layers"][2][section].update({key: value}))
    assert e.layer == "l2" and e.field == f"{section}.{key}"


@pytest.mark.parametrize("key,bad", [("bias_mant", 5000), ("bias_exp", 9)])
def test_bias_array_values_out_of_range(tmp_path, key, bad):
    def mutate(m, a):
        m["layers"][0]["neuron"][key] = "b"
        arr = np.zeros(5, np.int32)
        arr[3] = bad
        a["b"] = arr

    e = err(tmp_path, mutate)
    assert e.layer == "l0" and e.field == f"neuron.{key}" and str(bad) in str(e)


def test_size_mismatch_between_layers(tmp_path):
    def mutate(m, a):
        a["l1.weight"] = np.zeros((4, 6), np.int8)  # layer l0 has 5 neurons

    e = err(tmp_path, mutate)
    assert e.layer == "l1" and e.field == "synapse.weight" and "l0" in str(e)


def test_input_size_mismatch(tmp_path):
    e = err(tmp_path, lambda m, a: m["input"].update(size=7))
    assert e.layer == "l0" and "input" in str(e)


def test_rows_must_match_size(tmp_path):
    e = err(tmp_path, lambda m, a: m["layers"][2].update(size=4))
    assert e.layer == "l2" and "rows" in str(e)


def test_missing_and_unknown_keys(tmp_path):
    e = err(tmp_path, lambda m, a: m["layers"][0]["neuron"].pop("kind"))
    assert e.layer == "l0" and "kind" in str(e) and "missing" in str(e)
    e = err(tmp_path, lambda m, a: m["layers"][0]["synapse"].update(delay=3))
    assert e.layer == "l0" and "delay" in str(e) and "unknown" in str(e)
    e = err(tmp_path, lambda m, a: m.pop("input") and None)
    assert "input" in str(e)


@pytest.mark.parametrize(
    "section,value,field",
    [("neuron", {"kind": "izhikevich"}, "neuron.kind"), ("synapse", {"kind": "conv"}, "synapse.kind")],
)
def test_unknown_kinds(tmp_path, section, value, field):
    e = err(tmp_path, lambda m, a: m["layers"][1][section].update(value))
    assert e.layer == "l1" and e.field == field


@pytest.mark.parametrize(
    "esc,needle",
    [({"kind": "logistic", "scale": 0}, "scale"), ({"kind": "gauss", "scale": 1.0}, "kind"),
     ({"kind": "logistic"}, "scale"), ({"kind": "logistic", "scale": "big"}, "scale"),
     ({"kind": "logistic", "scale": 2.0**32}, "scale")],
)  # fmt: skip
def test_escape_noise_rules(tmp_path, esc, needle):
    e = err(tmp_path, lambda m, a: m["layers"][0]["neuron"].update(escape_noise=esc))
    assert e.layer == "l0" and needle in str(e)


def test_readout_cannot_have_escape_noise():
    with pytest.raises(IRError, match="readout"):
        Neuron(kind="readout", escape_noise=EscapeNoise(scale=10.0))


def test_duplicate_layer_names(tmp_path):
    e = err(tmp_path, lambda m, a: m["layers"][1].update(name="l0"))
    assert "duplicate" in str(e)


def test_no_layers(tmp_path):
    e = err(tmp_path, lambda m, a: m.update(layers=[]))
    assert "at least one layer" in str(e)


def test_not_a_zip_and_no_manifest_and_bad_yaml(tmp_path):
    p = tmp_path / "x.qnet"
    p.write_text("hello")
    with pytest.raises(IRError, match="not a ZIP"):
        ir.load(p)
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("weights.npy", b"")
    with pytest.raises(IRError, match="no manifest.yaml"):
        ir.load(p)
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("manifest.yaml", "format: [unclosed")
    with pytest.raises(IRError, match="not valid YAML"):
        ir.load(p)
    with pytest.raises(IRError, match="no such file"):
        ir.load(tmp_path / "missing.qnet")


def test_yaml_is_loaded_safely(tmp_path):
    p = tmp_path / "x.qnet"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("manifest.yaml", "!!python/object/apply:os.system ['echo pwned']")
    with pytest.raises(IRError, match="not valid YAML"):
        ir.load(p)


def test_python_construction_errors_name_layer_and_field():
    w = np.zeros((3, 4), np.int8)
    with pytest.raises(IRError) as e:
        Layer(name="fc", size=3, synapse=DenseSynapse(weight=w), neuron=Neuron(threshold=10**6))
    with pytest.raises(IRError) as e:
        Layer(name="fc", size=2, synapse=DenseSynapse(weight=w), neuron=Neuron())
    assert e.value.layer == "fc" and e.value.field == "synapse.weight"
    with pytest.raises(IRError, match="name"):
        Layer(name="bad name", size=3, synapse=DenseSynapse(weight=w), neuron=Neuron())


def test_worst_case_input_bounds_every_input_and_rounds_up():
    # weights [3, -2] and weight_fixed [1, 1]: sum of |.| = 7; weight_exp -1: ceil(3.5) = 4; << 6 = 256.
    # Brute force over every input pattern and release draw: |a << 6| never exceeds the bound.
    from itertools import product

    from quantal.compile import reference

    w = np.array([[3, -2]], np.int8)
    wf = np.array([[1, 1]], np.int8)
    layer = Layer(name="l", size=1, synapse=DenseSynapse(weight=w, weight_exp=-1, weight_fixed=wf),
                  neuron=Neuron())  # fmt: skip
    assert layer.worst_case_input() == 4 * 64
    seen = 0
    for active in product([0, 1], repeat=2):
        for xi in product([0, 1], repeat=2):
            j = np.flatnonzero(active)
            a = reference.synaptic_input(layer, j, np.array([xi])[:, j] if j.size else None)
            seen = max(seen, abs(int(a[0])) << 6)
    assert seen <= layer.worst_case_input()
