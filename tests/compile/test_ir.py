"""IR v2 (and v1 files): round trips and one test per validation rule of DESIGN.md."""

import io
import os
import zipfile

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantal.compile import ir
from quantal.compile.ir import Conv2dSynapse, DenseSynapse, EscapeNoise, IRError, Layer, Network, Neuron, Projection
from quantal.compile.testing import random_graph, random_network


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
    net = net.replace(metadata=meta)
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
    assert manifest["format"] == "quantal.ir" and manifest["version"] == 2
    assert "manifest.yaml" in names
    assert {"l0.weight.npy", "l0.release.npy", "l0.fixed.npy"} <= names
    assert manifest["projections"][0]["synapse"]["weight"] == "l0.weight"
    assert manifest["projections"][1]["source"] == "l0" and manifest["projections"][1]["target"] == "l1"


def test_objects_are_immutable():
    net = small_net()
    with pytest.raises(ValueError):
        net.projections[0].synapse.weight[0, 0] = 1
    with pytest.raises(AttributeError):
        net.layers[0].shape = (3,)  # type: ignore[misc]


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
    e = err(tmp_path, lambda m, a: m.update(version=3))
    assert e.field == "version" and "newer" in str(e) and "upgrade" in str(e)


def test_missing_array(tmp_path):
    e = err(tmp_path, lambda m, a: a.pop("l1.weight"))
    assert e.projection == "l1" and e.field == "synapse.weight" and "missing array" in str(e)


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
    name = "l1.fixed" if field == "weight_fixed" else f"l1.{field}"
    e = err(tmp_path, lambda m, a: a.update({name: array(a[name])}), net)
    assert e.projection == "l1" and e.field == f"synapse.{field}" and expected in str(e)


def test_wrong_shape_release(tmp_path):
    net = small_net(release="random")
    e = err(tmp_path, lambda m, a: a.update({"l1.release": a["l1.release"][:, :-1]}), net)
    assert e.projection == "l1" and e.field == "synapse.release" and "shape" in str(e)


def test_weight_must_be_2d(tmp_path):
    e = err(tmp_path, lambda m, a: a.update({"l0.weight": a["l0.weight"].ravel()}))
    assert e.projection == "l0" and e.field == "synapse.weight"


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
    where = "projections" if section == "synapse" else "layers"
    e = err(tmp_path, lambda m, a: m[where][2][section].update({key: value}))
    assert (e.projection if section == "synapse" else e.layer) == "l2" and e.field == f"{section}.{key}"


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
    assert e.projection == "l1" and e.field == "synapse.weight" and "l0" in str(e)


def test_input_size_mismatch(tmp_path):
    e = err(tmp_path, lambda m, a: m["input"].update(shape=[7]))
    assert e.projection == "l0" and "input" in str(e)


def test_rows_must_match_size(tmp_path):
    def mutate(m, a):
        m["layers"][2].update(shape=[4])
        m["layers"][2]["neuron"].update(bias_mant=0)  # no per-neuron array of the old size
        a.pop("l2.bias_mant", None)

    e = err(tmp_path, mutate)
    assert e.projection == "l2" and "rows" in str(e)


def test_missing_and_unknown_keys(tmp_path):
    e = err(tmp_path, lambda m, a: m["layers"][0]["neuron"].pop("kind"))
    assert e.layer == "l0" and "kind" in str(e) and "missing" in str(e)
    e = err(tmp_path, lambda m, a: m["projections"][0]["synapse"].update(delay=3))
    assert e.projection == "l0" and "delay" in str(e) and "unknown" in str(e)
    e = err(tmp_path, lambda m, a: m["projections"][0].pop("target"))
    assert e.projection == "l0" and "target" in str(e) and "missing" in str(e)
    e = err(tmp_path, lambda m, a: m.pop("input") and None)
    assert "input" in str(e)


@pytest.mark.parametrize(
    "section,value,field",
    [("neuron", {"kind": "izhikevich"}, "neuron.kind"), ("synapse", {"kind": "conv"}, "synapse.kind")],
)
def test_unknown_kinds(tmp_path, section, value, field):
    where = "projections" if section == "synapse" else "layers"
    e = err(tmp_path, lambda m, a: m[where][1][section].update(value))
    assert (e.projection if section == "synapse" else e.layer) == "l1" and e.field == field


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
    with pytest.raises(IRError, match="threshold"):
        Layer(name="fc", shape=(3,), neuron=Neuron(threshold=10**6))
    with pytest.raises(IRError) as e:
        Layer(name="fc", shape=(2,), neuron=Neuron(threshold=np.zeros(3, np.int32)))
    assert e.value.layer == "fc" and e.value.field == "neuron.threshold"
    with pytest.raises(IRError, match="name"):
        Layer(name="bad name", shape=(3,), neuron=Neuron())
    w = np.zeros((3, 4), np.int8)
    with pytest.raises(IRError) as e:
        Network.chain("n", 4, (("fc", 2, DenseSynapse(weight=w), Neuron()),))
    assert e.value.projection == "fc" and e.value.field == "synapse.weight"


def test_worst_case_input_bounds_every_input_and_rounds_up():
    # weights [3, -2] and weight_fixed [1, 1]: sum of |.| = 7; weight_exp -1: ceil(3.5) = 4; << 6 = 256.
    # Brute force over every input pattern and release draw: |a << 6| never exceeds the bound.
    from itertools import product

    from quantal.compile import reference

    w = np.array([[3, -2]], np.int8)
    wf = np.array([[1, 1]], np.int8)
    net = Network.chain("n", 2, (("l", 1, DenseSynapse(weight=w, weight_exp=-1, weight_fixed=wf), Neuron()),))
    assert net.worst_case_input(0) == 4 * 64
    seen = 0
    for active in product([0, 1], repeat=2):
        for xi in product([0, 1], repeat=2):
            j = np.flatnonzero(active)
            a = reference.synaptic_sum(w, wf, -1, j, np.array([xi])[:, j] if j.size else None)
            seen = max(seen, abs(int(a[0])) << 6)
    assert seen <= net.worst_case_input(0)


def test_worst_case_input_sums_the_projections_and_bounds_a_conv_by_its_kernel():
    # two projections into 'c': a 1x1-channel 2x2 conv with |kernel| sum 1 + 2 + 3 + 4 = 10 and a recurrent dense
    # one with row sums 4 * 5 = 20 at weight_exp 1 -> 40; bound (10 + 40) << 6 = 3200
    k = np.array([[[[1, -2], [3, -4]]]], np.int8)
    conv = Conv2dSynapse(weight=k)
    dense = DenseSynapse(weight=np.full((4, 4), -5, np.int8), weight_exp=1)
    net = Network(name="w", input_shape=(1, 3, 3), layers=(Layer(name="c", shape=(1, 2, 2), neuron=Neuron()),),
                  projections=(Projection(name="a", source="input", target="c", synapse=conv),
                               Projection(name="b", source="c", target="c", synapse=dense)))  # fmt: skip
    assert net.worst_case_input(0) == 50 * 64


# ----------------------------------------------------------------------------------------- IR v2 graphs


@st.composite
def graphs(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return random_graph(rng, conv=draw(st.booleans()), recurrent=draw(st.booleans()), skips=draw(st.booleans()),
                        max_delay=draw(st.integers(0, 62)), release=draw(st.sampled_from([None, "random", 0.5])),
                        weight_fixed=draw(st.booleans()), escape=draw(st.booleans()),
                        per_neuron=draw(st.booleans()), readout=draw(st.booleans()))  # fmt: skip


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(net=graphs())
def test_graph_round_trip(tmp_path, net):
    back = ir.load(ir.save(net, tmp_path / "g.qnet"))
    assert back == net
    assert [p.source for p in back.projections] == [p.source for p in net.projections]


def conv_net(**conv) -> Network:
    """input 2x6x6 -> conv 'c' (4 channels; shape from the arguments) -> dense 'd' (3) with recurrence."""
    kw = {"weight": np.ones((4, 2, 3, 3), np.int8), **conv}
    syn = Conv2dSynapse(**kw)
    ho, wo = syn.out_hw(6, 6)
    return Network(
        name="cv", input_shape=(2, 6, 6),
        layers=(Layer(name="c", shape=(4, ho, wo), neuron=Neuron()), Layer(name="d", shape=(3,), neuron=Neuron())),
        projections=(Projection(name="c.in", source="input", target="c", synapse=syn),
                     Projection(name="d.in", source="c", target="d",
                                synapse=DenseSynapse(weight=np.ones((3, 4 * ho * wo), np.int8)), delay=2),
                     Projection(name="d.rec", source="d", target="d",
                                synapse=DenseSynapse(weight=np.eye(3, dtype=np.int8)))),
    )  # fmt: skip


def test_conv_shape_arithmetic_is_checked(tmp_path):
    # 6 + 2*1 - 2*(3 - 1) - 1 = 3; 3 // 2 + 1 = 2: a 3x3 kernel, stride 2, pad 1, dilation 2 maps 6x6 to 2x2
    net = conv_net(stride=(2, 2), padding=(1, 1), dilation=(2, 2))
    assert net.layer("c").shape == (4, 2, 2)
    e = err(tmp_path, lambda m, a: m["layers"][0].update(shape=[4, 3, 2]), net)
    assert e.projection == "c.in" and e.field == "synapse" and "maps the input's 6x6 to 2x2" in str(e)
    with pytest.raises(IRError, match="needs a .C, H, W. target"):
        Network(name="x", input_shape=(2, 6, 6), layers=(Layer(name="c", shape=(16,), neuron=Neuron()),),
                projections=(Projection(name="p", source="input", target="c",
                                        synapse=Conv2dSynapse(weight=np.ones((4, 2, 3, 3), np.int8))),))  # fmt: skip


def test_conv_needs_an_image_source(tmp_path):
    net = conv_net()
    e = err(tmp_path, lambda m, a: m["input"].update(shape=[72]), net)
    assert e.projection == "c.in" and "needs a [C, H, W] source" in str(e)


def test_groups_must_divide_the_channels(tmp_path):
    e = err(tmp_path, lambda m, a: m["projections"][0]["synapse"].update(groups=3), conv_net())
    assert e.projection == "c.in" and e.field == "synapse.groups" and "does not divide" in str(e)
    # groups 2 divides the 4 output channels, but 2 input channels per group x 2 groups != 2 channels
    e = err(tmp_path, lambda m, a: m["projections"][0]["synapse"].update(groups=2), conv_net())
    assert e.projection == "c.in" and "per group" in str(e)


def test_conv_channels_must_match(tmp_path):
    e = err(tmp_path, lambda m, a: a.update({"c.in.weight": np.ones((3, 2, 3, 3), np.int8)}), conv_net())
    assert e.projection == "c.in" and "output channels" in str(e)


@pytest.mark.parametrize("key,value", [("stride", [0, 1]), ("padding", [-1, 0]), ("dilation", [1, 0]),
                                       ("stride", [1, 2, 3]), ("padding", "same")])  # fmt: skip
def test_conv_geometry_values(tmp_path, key, value):
    e = err(tmp_path, lambda m, a: m["projections"][0]["synapse"].update({key: value}), conv_net())
    assert e.projection == "c.in" and e.field == f"synapse.{key}"


def test_conv_weight_must_be_4d(tmp_path):
    e = err(tmp_path, lambda m, a: a.update({"c.in.weight": np.ones((4, 18), np.int8)}), conv_net())
    assert e.projection == "c.in" and e.field == "synapse.weight" and "4-D" in str(e)


def test_unknown_source_and_target(tmp_path):
    e = err(tmp_path, lambda m, a: m["projections"][1].update(source="nowhere"), conv_net())
    assert e.projection == "d.in" and e.field == "source" and "nowhere" in str(e)
    e = err(tmp_path, lambda m, a: m["projections"][1].update(target="nowhere"), conv_net())
    assert e.projection == "d.in" and e.field == "target"
    e = err(tmp_path, lambda m, a: m["projections"][1].update(target="input"), conv_net())
    assert e.projection == "d.in" and e.field == "target" and "input" in str(e)


def test_duplicate_projection_names(tmp_path):
    e = err(tmp_path, lambda m, a: m["projections"][2].update(name="d.in"), conv_net())
    assert e.projection == "d.in" and "duplicate" in str(e)


def test_a_layer_cannot_be_called_input(tmp_path):
    e = err(tmp_path, lambda m, a: m["layers"][1].update(name="input"), conv_net())
    assert e.layer == "input" and "input" in str(e)


@pytest.mark.parametrize("delay", [63, -1, 1.5])
def test_delay_range(tmp_path, delay):
    e = err(tmp_path, lambda m, a: m["projections"][1].update(delay=delay), conv_net())
    assert e.projection == "d.in" and e.field == "delay"


@pytest.mark.parametrize("key", ["current_decay", "voltage_decay", "threshold", "bias_mant", "bias_exp"])
def test_per_neuron_array_shapes(tmp_path, key):
    def mutate(m, a):
        m["layers"][1]["neuron"][key] = "arr"
        a["arr"] = np.zeros(4, np.int16)  # the layer has 3 neurons

    e = err(tmp_path, mutate, conv_net())
    assert e.layer == "d" and e.field == f"neuron.{key}" and "shape" in str(e)


@pytest.mark.parametrize("key,bad", [("current_decay", 4097), ("voltage_decay", -1), ("threshold", 131072)])
def test_per_neuron_array_values(tmp_path, key, bad):
    def mutate(m, a):
        m["layers"][1]["neuron"][key] = "arr"
        a["arr"] = np.array([0, bad, 0], np.int32)

    e = err(tmp_path, mutate, conv_net())
    assert e.layer == "d" and e.field == f"neuron.{key}" and str(bad) in str(e)


def test_per_neuron_arrays_must_be_integers(tmp_path):
    def mutate(m, a):
        m["layers"][1]["neuron"]["threshold"] = "arr"
        a["arr"] = np.array([1.0, 2.0, 3.0])

    e = err(tmp_path, mutate, conv_net())
    assert e.layer == "d" and "integer array" in str(e)


def test_unknown_reset(tmp_path):
    e = err(tmp_path, lambda m, a: m["layers"][1]["neuron"].update(reset="hold"), conv_net())
    assert e.layer == "d" and e.field == "neuron.reset" and "hold" in str(e)


def test_bad_layer_shapes(tmp_path):
    for shape in ([2, 3], [0], [1, 2, -3], "big"):
        e = err(tmp_path, lambda m, a, shape=shape: m["layers"][1].update(shape=shape), conv_net())
        assert e.layer == "d" and e.field == "shape"


def test_recurrence_is_detected():
    net = conv_net()
    assert [net.is_recurrent(p) for p in net.projections] == [False, False, True]
    assert net.max_delay == 2


# ----------------------------------------------------------------------------------------- IR v1 files


def write_v1(path, net: Network) -> None:
    """Write a chain network as a version 1 file by hand (IR v1's manifest layout)."""
    layers, arrays = [], {}
    for layer, p in zip(net.layers, net.projections):
        syn, neu = p.synapse, layer.neuron
        s = {"kind": "dense", "weight": f"{layer.name}.weight", "weight_exp": syn.weight_exp}
        arrays[f"{layer.name}.weight"] = syn.weight
        for opt in ("release", "weight_fixed"):
            if getattr(syn, opt) is not None:
                s[opt] = f"{layer.name}.{opt}"
                arrays[s[opt]] = getattr(syn, opt)
        n = {"kind": neu.kind, "current_decay": int(neu.current_decay), "voltage_decay": int(neu.voltage_decay),
             "threshold": int(neu.threshold)}  # fmt: skip
        for opt in ("bias_mant", "bias_exp"):
            b = getattr(neu, opt)
            if isinstance(b, np.ndarray):
                n[opt] = f"{layer.name}.{opt}"
                arrays[n[opt]] = b
            else:
                n[opt] = b
        n["escape_noise"] = None if neu.escape_noise is None else {"kind": "logistic", "scale": neu.escape_noise.scale}
        layers.append({"name": layer.name, "size": layer.size, "synapse": s, "neuron": n})
    manifest = {"format": "quantal.ir", "version": 1, "name": net.name, "input": {"size": net.input_size},
                "layers": layers, "metadata": dict(net.metadata)}  # fmt: skip
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.yaml", yaml.safe_dump(manifest, sort_keys=False))
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.save(buf, arr, allow_pickle=False)
            zf.writestr(f"{name}.npy", buf.getvalue())


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(net=networks())
def test_v1_files_load_as_the_same_chain_and_save_as_v2(tmp_path, net):
    write_v1(tmp_path / "v1.qnet", net)
    back = ir.load(tmp_path / "v1.qnet")
    assert back == net  # projection l named like layer l, from the previous layer (the input for l = 0)
    assert [p.source for p in back.projections] == ["input", *net.layer_names[:-1]]
    with zipfile.ZipFile(ir.save(back, tmp_path / "v2.qnet")) as zf:
        assert yaml.safe_load(zf.read("manifest.yaml"))["version"] == 2
    assert ir.load(tmp_path / "v2.qnet") == net


def test_v1_rules_still_name_the_layer(tmp_path):
    net = small_net()
    write_v1(tmp_path / "v1.qnet", net)
    with zipfile.ZipFile(tmp_path / "v1.qnet") as zf:
        manifest = yaml.safe_load(zf.read("manifest.yaml"))
        arrays = {n[:-4]: np.load(io.BytesIO(zf.read(n))) for n in zf.namelist() if n.endswith(".npy")}
    arrays["l1.weight"] = np.zeros((4, 6), np.int8)  # layer l0 has 5 neurons
    write_raw(tmp_path / "bad.qnet", manifest, arrays)
    with pytest.raises(IRError) as e:
        ir.load(tmp_path / "bad.qnet")
    assert e.value.layer == "l1" and e.value.field == "synapse.weight" and "l0" in str(e.value)
    manifest["layers"][0]["neuron"]["reset"] = "subtract"  # a v2 key in a v1 file
    write_raw(tmp_path / "bad.qnet", manifest, {**arrays, "l1.weight": np.zeros((4, 5), np.int8)})
    with pytest.raises(IRError, match="unknown key.*reset"):
        ir.load(tmp_path / "bad.qnet")


def test_a_killed_writes_temporary_file_is_removed_by_a_later_write(tmp_path):
    import os
    import time

    from quantal.compile.ir import atomic_write

    target = tmp_path / "out.bin"
    stale = tmp_path / ".out.bin.abc123.tmp"  # what a write killed before its rename leaves
    stale.write_bytes(b"half")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".out.bin.def456.tmp"  # a write that may still be running
    fresh.write_bytes(b"live")
    atomic_write(target, lambda f: f.write(b"data"))
    assert target.read_bytes() == b"data" and not stale.exists() and fresh.exists()


def test_exception_summaries_are_one_line_even_without_a_message():
    from quantal.compile.ir import describe_exception

    assert describe_exception(ValueError("")) == "ValueError: no message"
    assert describe_exception(EOFError(), "torn") == "EOFError: torn"
    assert describe_exception(ValueError("first\nsecond")) == "ValueError: first"
