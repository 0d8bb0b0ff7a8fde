"""Random IR networks and inputs for tests, benchmarks and examples (numpy only, seeded).

The parameters are drawn so that the layers are neither silent nor saturated: thresholds follow the typical
magnitude of the synaptic input, so random networks exercise spiking, resets, decays and wraps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .ir import Conv2dSynapse, DenseSynapse, EscapeNoise, Layer, Network, Neuron, Projection, conv_out


def random_network(
    rng: np.random.Generator,
    sizes: Sequence[int],
    *,
    release: float | str | None = None,
    weight_fixed: bool = False,
    escape: bool = False,
    readout: bool = False,
    memoryless: bool = False,
    input_density: float = 0.3,
    weight_exp_range: tuple[int, int] = (-3, 2),
    name: str = "random",
) -> Network:
    """A chain ``sizes[0] -> sizes[1] -> ...`` of dense layers.

    ``release``: None (reliable synapses), a probability p (release byte round(256 p) - 1 everywhere) or
    ``"random"`` (independent bytes per synapse). ``escape`` gives every spiking layer logistic escape noise;
    ``readout`` makes the last layer a readout; ``memoryless`` sets both decays to 4096 (binary units).
    ``weight_exp_range`` bounds the exponents (inclusive); wide ranges reach the 24- and 32-bit wraps.
    """
    layers = []
    density = input_density
    for li, (n_in, size) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.integers(-128, 128, (size, n_in), dtype=np.int8)
        wexp = int(rng.integers(weight_exp_range[0], weight_exp_range[1] + 1))
        rel = None
        if release == "random":
            rel = rng.integers(0, 256, (size, n_in), dtype=np.uint8)
        elif release is not None:
            rel = np.full((size, n_in), int(np.clip(round(256 * float(release)) - 1, 0, 255)), np.uint8)
        wf = rng.integers(-16, 16, (size, n_in), dtype=np.int8) if weight_fixed else None
        # Typical |a| with ~density * n_in active inputs: 74 * sqrt(J) * 2**wexp (uniform int8 weights).
        typical = 74.0 * np.sqrt(max(density * n_in, 1.0)) * 2.0**wexp
        last = li == len(sizes) - 2
        kind = "readout" if (readout and last) else "lif"
        if memoryless:
            cd, vd = 4096, 4096
        else:
            cd, vd = int(rng.integers(1, 4097)), int(rng.integers(0, 4097))
        threshold = int(np.clip(typical * rng.uniform(0.3, 1.5), 0, 131071))
        bias_mant = rng.integers(-64, 64, size, dtype=np.int16) if rng.random() < 0.5 else int(rng.integers(-64, 64))
        bias_exp = int(rng.integers(0, 4))
        esc = EscapeNoise(scale=float(64 * typical * rng.uniform(0.1, 1.0))) if escape and kind == "lif" else None
        layers.append((
            f"l{li}", size, DenseSynapse(weight=w, weight_exp=wexp, release=rel, weight_fixed=wf),
            Neuron(kind=kind, current_decay=cd, voltage_decay=vd, threshold=threshold, bias_mant=bias_mant,
                   bias_exp=bias_exp, escape_noise=esc),
        ))  # fmt: skip
        density = 0.2
    return Network.chain(name, sizes[0], layers)


def random_spikes(rng: np.random.Generator, n: int, steps: int, size: int, density: float = 0.3) -> np.ndarray:
    """Bernoulli(density) input spikes of shape (n, steps, size), dtype bool."""
    return rng.random((n, steps, size)) < density


def edge_network(rng: np.random.Generator) -> Network:
    """A network that reaches the arithmetic's edges: 2100 inputs of weight 127 at weight_exp 7 push a << 6
    past 2**31 (32-bit wrap) and u past 2**23 (24-bit wrap) in layer 'big'; 'sat' integrates without leak into
    voltage saturation; 'neg' floors odd sums with weight_exp -3. Use dense input (density ~0.9)."""
    w_big = np.full((3, 2100), 127, np.int8)
    w_big[1] = -128
    w_big[2, 1000:] = -3
    w_sat = rng.integers(60, 128, (4, 3), dtype=np.int8)
    w_neg = rng.integers(-128, 128, (5, 4), dtype=np.int8)
    return Network.chain("edge", 2100, (
        ("big", 3, DenseSynapse(weight=w_big, weight_exp=7),
         Neuron(current_decay=1500, voltage_decay=100, threshold=131071)),
        ("sat", 4, DenseSynapse(weight=w_sat, weight_exp=7),
         Neuron(current_decay=1, voltage_decay=0, threshold=131071, bias_mant=4095, bias_exp=7)),
        ("neg", 5, DenseSynapse(weight=w_neg, weight_exp=-3),
         Neuron(current_decay=4096, voltage_decay=2048, threshold=2, bias_mant=-7, bias_exp=1)),
    ))  # fmt: skip


def _synapse_parts(rng: np.random.Generator, shape: tuple[int, ...], release: float | str | None,
                   weight_fixed: bool) -> dict:  # fmt: skip
    rel = None
    if release == "random":
        rel = rng.integers(0, 256, shape, dtype=np.uint8)
    elif release is not None:
        rel = np.full(shape, int(np.clip(round(256 * float(release)) - 1, 0, 255)), np.uint8)
    wf = rng.integers(-16, 16, shape, dtype=np.int8) if weight_fixed else None
    return {"weight": rng.integers(-128, 128, shape, dtype=np.int8), "release": rel, "weight_fixed": wf}


def _conv_geometry(rng: np.random.Generator, c_in: int, h: int, w: int) -> dict | None:
    """Random conv2d arguments that map an h x w source to at least 1 x 1 (None if none was found)."""
    for _ in range(50):
        k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        pad = (int(rng.integers(0, 2)), int(rng.integers(0, 2)))
        dil = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        ho, wo = (conv_out(n, kk, s, p, d) for n, kk, s, p, d in zip((h, w), k, stride, pad, dil))
        if ho >= 1 and wo >= 1:
            groups = int(rng.choice([g for g in (1, 2) if c_in % g == 0]))
            c_out = groups * int(rng.integers(1, 4))
            return {"k": k, "stride": stride, "padding": pad, "dilation": dil, "groups": groups, "c_out": c_out,
                    "out": (c_out, ho, wo)}  # fmt: skip
    return None


def random_graph(
    rng: np.random.Generator,
    *,
    conv: bool = True,
    recurrent: bool = True,
    skips: bool = True,
    max_delay: int = 3,
    release: float | str | None = None,
    weight_fixed: bool = False,
    escape: bool = False,
    per_neuron: bool = True,
    subtract: bool | None = None,
    readout: bool = True,
    input_density: float = 0.3,
    name: str = "graph",
) -> Network:
    """A random IR v2 graph: optional conv2d layers on a [C, H, W] input (random kernel, stride, padding,
    dilation, groups), then dense layers; ``recurrent`` adds a projection from a layer to itself, ``skips`` one
    that jumps a layer; delays up to ``max_delay``; ``per_neuron`` stores decays, thresholds and biases as
    arrays; ``subtract`` (None: random per layer) selects the reset. Thresholds follow the typical input."""
    projs: list[Projection] = []
    layers: list[Layer] = []
    typical: dict[str, float] = {}

    def delay() -> int:
        return int(rng.integers(0, max_delay + 1)) if max_delay else 0

    def add_projection(pname: str, src: str, src_shape: tuple[int, ...], dst: str, syn: object, fan_in: float,
                       density: float) -> None:  # fmt: skip
        projs.append(Projection(name=pname, source=src, target=dst, synapse=syn, delay=delay()))
        typical[dst] = typical.get(dst, 0.0) + 74.0 * np.sqrt(max(density * fan_in, 1.0)) * 2.0 ** syn.weight_exp

    def add_layer(lname: str, shape: tuple[int, ...], kind: str = "lif") -> None:
        size = int(np.prod(shape))
        typ = typical.get(lname, 74.0)

        def field(lo: int, hi: int, dtype: type) -> int | np.ndarray:
            if per_neuron and rng.random() < 0.6:
                return rng.integers(lo, hi + 1, size).astype(dtype)
            return int(rng.integers(lo, hi + 1))

        th_lo, th_hi = int(np.clip(typ * 0.05, 0, 131071)), int(np.clip(typ * 0.8, 1, 131071))
        reset = ("subtract" if rng.random() < 0.5 else "zero") if subtract is None else (
            "subtract" if subtract else "zero")
        esc = EscapeNoise(scale=float(64 * typ * rng.uniform(0.1, 1.0))) if escape and kind == "lif" else None
        layers.append(Layer(name=lname, shape=shape, neuron=Neuron(
            kind=kind, current_decay=field(1, 4096, np.int16), voltage_decay=field(0, 4096, np.int16),
            threshold=field(th_lo, th_hi, np.int32), bias_mant=field(-64, 63, np.int16),
            bias_exp=field(0, 3, np.int8), reset=reset, escape_noise=esc)))  # fmt: skip

    wexp = lambda: int(rng.integers(-3, 2))  # noqa: E731
    if conv:
        src, shape = "input", (int(rng.integers(1, 3)), int(rng.integers(3, 8)), int(rng.integers(3, 8)))
        input_shape = shape
        density = input_density
        for ci in range(int(rng.integers(1, 3))):
            g = _conv_geometry(rng, shape[0], shape[1], shape[2])
            if g is None:
                break
            kshape = (g["c_out"], shape[0] // g["groups"], *g["k"])
            syn = Conv2dSynapse(stride=g["stride"], padding=g["padding"], dilation=g["dilation"], groups=g["groups"],
                                weight_exp=wexp(), **_synapse_parts(rng, kshape, release, weight_fixed))  # fmt: skip
            lname = f"c{ci}"
            add_projection(f"{lname}.in", src, shape, lname, syn, float(np.prod(kshape[1:])), density)
            add_layer(lname, g["out"])
            src, shape, density = lname, g["out"], 0.2
    else:
        input_shape = (int(rng.integers(2, 10)),)
        src, shape, density = "input", input_shape, input_density
    dense_sizes = [int(rng.integers(2, 9)) for _ in range(int(rng.integers(1, 3)))]
    names = []
    for di, size in enumerate(dense_sizes):
        lname = f"d{di}"
        n_src = int(np.prod(shape))
        add_projection(f"{lname}.in", src, shape, lname, DenseSynapse(
            weight_exp=wexp(), **_synapse_parts(rng, (size, n_src), release, weight_fixed)), n_src, density)
        if recurrent and di == 0:
            add_projection(f"{lname}.rec", lname, (size,), lname, DenseSynapse(
                weight_exp=wexp(), **_synapse_parts(rng, (size, size), release, weight_fixed)), size, 0.2)
        if skips and di == 1 and layers:  # from the layer before the previous one (or the input)
            skip_src = layers[-2] if len(layers) >= 2 else None
            s_name, s_shape = (skip_src.name, skip_src.shape) if skip_src is not None else ("input", input_shape)
            n_s = int(np.prod(s_shape))
            add_projection(f"{lname}.skip", s_name, s_shape, lname, DenseSynapse(
                weight_exp=wexp(), **_synapse_parts(rng, (size, n_s), release, weight_fixed)), n_s, 0.2)
        add_layer(lname, (size,))
        names.append(lname)
        src, shape, density = lname, (size,), 0.2
    if readout:
        n_src = int(np.prod(shape))
        size = int(rng.integers(1, 5))
        add_projection("out.in", src, shape, "out", DenseSynapse(
            weight_exp=wexp(), **_synapse_parts(rng, (size, n_src), release, weight_fixed)), n_src, 0.2)
        add_layer("out", (size,), kind="readout")
    return Network(name=name, input_shape=input_shape, layers=tuple(layers), projections=tuple(projs))


# ------------------------------------------------------------------------------------------------ fuzzing

#: Values a hostile or careless file puts where a number, a name or a list belongs.
HOSTILE_VALUES = [None, True, -1, 0, 2**70, -(2**63), 1e308, float("nan"), float("inf"), float("-inf"), "",
                  "x" * 3000, "\x1b[31m", [], [[[]]], {}, {"a": 1}, [1, 2, 3], 3.5, "../..", 4097, -4097, 2**31,
                  1e-300, "l0", "input", 63, 64, [None]]  # fmt: skip


def _leaf_paths(obj: object, path: tuple = ()) -> list[tuple]:
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _leaf_paths(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _leaf_paths(v, (*path, i))
    return [*out, path] if path else out


def fuzz_values(base: dict, rng: np.random.Generator, n: int) -> list[dict]:
    """``n`` copies of the plain-data mapping ``base`` (a manifest, a configuration), each with 1-3 random
    places replaced by a :data:`HOSTILE_VALUES` entry, deleted, or given an extra sibling key."""
    import copy

    paths = _leaf_paths(base)
    out = []
    for case in range(n):
        m = copy.deepcopy(base)
        for _ in range(int(rng.integers(1, 4))):
            path = paths[int(rng.integers(0, len(paths)))]
            try:
                parent = m
                for key in path[:-1]:
                    parent = parent[key]
                op = int(rng.integers(0, 4))
                if op <= 1:
                    parent[path[-1]] = HOSTILE_VALUES[int(rng.integers(0, len(HOSTILE_VALUES)))]
                elif op == 2 and isinstance(parent, dict):
                    parent.pop(path[-1], None)
                elif isinstance(parent, dict):
                    parent[f"extra{case}"] = HOSTILE_VALUES[int(rng.integers(0, len(HOSTILE_VALUES)))]
            except (KeyError, IndexError, TypeError):
                continue
        out.append(m)
    return out


def fuzz_bytes(data: bytes, rng: np.random.Generator, *, within: int | None = None, edits: int = 5) -> bytes:
    """``data`` with 1 to ``edits`` random edits (a byte changed, bytes inserted, bytes deleted), at offsets
    below ``within`` (default: anywhere)."""
    b = bytearray(data)
    for _ in range(int(rng.integers(1, edits + 1))):
        k = int(rng.integers(0, max(1, min(len(b), within or len(b)))))
        op = int(rng.integers(0, 3))
        if op == 0 and b:
            b[k] = int(rng.integers(0, 256))
        elif op == 1:
            b[k:k] = bytes(rng.integers(0, 256, int(rng.integers(1, 16)), dtype=np.uint8))
        else:
            del b[k: k + int(rng.integers(1, 64))]
    return bytes(b)
