"""``quantal inspect``: what a ``.qnet`` network holds, as a table or as JSON."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from quantal.compile.graph import conv2d_fans
from quantal.compile.ir import VERSION, Conv2dSynapse, Network, mantissa_bits


def _value(neu: Any, name: str) -> int | str:
    """A neuron field for the report: the int, or ``"min..max"`` for a per-neuron array."""
    a = getattr(neu, name)
    if not isinstance(a, np.ndarray):
        return int(a)
    lo, hi = int(a.min()), int(a.max())  # a layer has at least one neuron
    return lo if lo == hi else f"{lo}..{hi}"


def _fan(net: Network, p: Any) -> tuple[int, int]:
    """(fan-in, fan-out): the most source neurons one target neuron has synapses from, and the most target
    neurons one source neuron reaches."""
    if isinstance(p.synapse, Conv2dSynapse):
        fan_in, fan_out = conv2d_fans(p.synapse, net.source_shape(p), net.layer(p.target).shape)
        return int(fan_in.max(initial=0)), int(fan_out.max(initial=0))
    return p.synapse.shape[1], p.synapse.shape[0]


def projection_report(net: Network) -> list[dict[str, Any]]:
    rows = []
    for p in net.projections:
        syn = p.synapse
        mem = syn.weight.nbytes
        mem += 0 if syn.release is None else syn.release.nbytes
        mem += 0 if syn.weight_fixed is None else syn.weight_fixed.nbytes
        fan_in, fan_out = _fan(net, p)
        row: dict[str, Any] = {
            "name": p.name,
            "kind": syn.kind,
            "source": p.source,
            "target": p.target,
            "delay": p.delay,
            "recurrent": net.is_recurrent(p),
            "fan_in": fan_in,
            "fan_out": fan_out,
            "stored_weights": int(syn.weight.size),
            "stochastic_synapses": 0 if syn.release is None else int((syn.release < 255).sum()),
            "mean_release_probability": None
            if syn.release is None
            else float((syn.release.astype(np.float64) + 1).mean() / 256),
            "weight_bits": mantissa_bits(syn.weight),
            "weight_fixed_bits": mantissa_bits(syn.weight_fixed),
            "weight_exp": syn.weight_exp,
            "memory_bytes": int(mem),
        }
        if isinstance(syn, Conv2dSynapse):
            row["conv2d"] = {"kernel": list(syn.kernel), "stride": list(syn.stride), "padding": list(syn.padding),
                             "dilation": list(syn.dilation), "groups": syn.groups}  # fmt: skip
        rows.append(row)
    return rows


def layer_report(net: Network) -> list[dict[str, Any]]:
    rows = []
    for li, layer in enumerate(net.layers):
        neu = layer.neuron
        mem = sum(getattr(neu, f).nbytes for f in neu.per_neuron)
        into = net.projections_into(li)
        worst = net.worst_case_input(li)  # the 32-bit synaptic path's worst case, |a << 6|
        rows.append(
            {
                "name": layer.name,
                "kind": neu.kind,
                "shape": list(layer.shape),
                "size": layer.size,
                "projections_in": [p.name for _, p in into],
                "synapses": sum(int(p.synapse.weight.size) for _, p in into),
                "stochastic_synapses": sum(0 if p.synapse.release is None else int((p.synapse.release < 255).sum())
                                           for _, p in into),  # fmt: skip
                "current_decay": _value(neu, "current_decay"),
                "voltage_decay": _value(neu, "voltage_decay"),
                "threshold": _value(neu, "threshold"),
                "reset": neu.reset,
                "per_neuron": neu.per_neuron,
                "escape_noise": None
                if neu.escape_noise is None
                else {"kind": neu.escape_noise.kind, "scale": neu.escape_noise.scale},
                "memory_bytes": int(mem),  # per-neuron arrays (synaptic memory: the projections)
                "worst_case_input": worst,
                "may_overflow_32bit": worst >= 2**31,
            }
        )
    return rows


def report(net: Network, activity: dict[str, Any] | None = None) -> dict[str, Any]:
    """The description of ``net``; ``activity`` (from :func:`quantal.cost.activity`) adds measured costs."""
    from quantal import cost

    layers = layer_report(net)
    projections = projection_report(net)
    for r, c in zip(layers, cost.cores(net)):
        r["cores"] = c
    warnings = [
        f"layer '{r['name']}': worst-case synaptic input |a << 6| = {r['worst_case_input']} can reach 2**31 "
        "and wrap (32-bit arithmetic)"
        for r in layers
        if r["may_overflow_32bit"]
    ]
    return {
        "name": net.name,
        "version": VERSION,
        "input_shape": list(net.input_shape),
        "input_size": net.input_size,
        "layers": layers,
        "projections": projections,
        "totals": {
            "neurons": sum(r["size"] for r in layers),
            "stored_weights": sum(r["stored_weights"] for r in projections),
            "stochastic_synapses": sum(r["stochastic_synapses"] for r in projections),
            "memory_bytes": sum(r["memory_bytes"] for r in layers) + sum(r["memory_bytes"] for r in projections),
            "cores": sum(r["cores"] for r in layers),
        },
        "cost_model": cost.SOURCES,
        "quantization": _quant_summary(net),
        "activity": activity,
        "metadata_keys": sorted(map(str, net.metadata)),
        "warnings": warnings,
    }


def _quant_summary(net: Network) -> dict[str, Any] | None:
    """The quantisation report stored in the metadata, keeping only well-typed fields (a file's metadata is
    user input: anything else is left out rather than trusted)."""
    q = net.metadata.get("quantization") if isinstance(net.metadata, dict) else None
    if not isinstance(q, dict):
        return None
    acc = q.get("accuracy")
    acc = {str(k): float(v) for k, v in acc.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
           and math.isfinite(v)} if isinstance(acc, dict) else {}  # fmt: skip
    ev = q.get("evaluated_on")
    ev = {k: ev.get(k) for k in ("dataset", "split", "samples") if isinstance(ev.get(k), (str, int))} if isinstance(
        ev, dict) else {}  # fmt: skip
    layers = q.get("layers") if isinstance(q.get("layers"), list) else []
    rows = [{k: (r.get(k) if isinstance(r.get(k), (str, int, float)) and not isinstance(r.get(k), bool) else None)
             for k in _QUANT_KEYS} for r in layers if isinstance(r, dict)]  # fmt: skip
    method = q.get("method") if isinstance(q.get("method"), str) else None
    return {"accuracy": acc, "fake_quant_equals_hwsim": q.get("fake_quant_equals_hwsim") is True,
            "evaluated_on": ev, "method": method, "layers": rows}  # fmt: skip


_QUANT_KEYS = ("name", "scale", "weight_exp", "weight_bits_used", "saturated_weights", "weights", "saturated_biases")


def _table(head: list[str], rows: list[list[str]], left: int = 2) -> list[str]:
    rows = [head, *rows]
    widths = [max(len(row[c]) for row in rows) for c in range(len(head))]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) if c < left else cell.rjust(w) for c, (cell, w) in
                               enumerate(zip(row, widths))).rstrip())  # fmt: skip
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def format_report(rep: dict[str, Any]) -> str:
    shape = "x".join(map(str, rep["input_shape"]))
    lines = [f"network '{rep['name']}' (IR v{rep['version']}), input {shape} ({rep['input_size']} channels)"]
    rows = []
    for r in rep["layers"]:
        esc = "-" if r["escape_noise"] is None else f"{r['escape_noise']['kind']}({r['escape_noise']['scale']:g})"
        rows.append([
            r["name"], r["kind"], "x".join(map(str, r["shape"])), str(r["size"]),
            f"{r['current_decay']}/{r['voltage_decay']}", str(r["threshold"]), r["reset"], esc,
            str(r["stochastic_synapses"]), f"{r['worst_case_input']:,}" + (" !" if r["may_overflow_32bit"] else ""),
            str(r["memory_bytes"]), str(r["cores"]),
        ])  # fmt: skip
    lines += _table(["layer", "kind", "shape", "size", "decay i/v", "vth", "reset", "escape", "stochastic",
                     "worst |a<<6|", "memory B", "cores"], rows)  # fmt: skip
    lines.append("")
    rows = []
    for r in rep["projections"]:
        stoch = str(r["stochastic_synapses"])
        if r["mean_release_probability"] is not None:
            stoch += f" (p={r['mean_release_probability']:.2f})"
        kind = r["kind"]
        if "conv2d" in r:
            c = r["conv2d"]
            kind += f" {c['kernel'][0]}x{c['kernel'][1]}/s{c['stride'][0]}" + (
                f" g{c['groups']}" if c["groups"] > 1 else "")
        rows.append([
            r["name"], kind, f"{r['source']} -> {r['target']}" + (" (recurrent)" if r["recurrent"] else ""),
            str(r["delay"]), str(r["fan_in"]), str(r["fan_out"]), str(r["stored_weights"]), stoch,
            str(r["weight_bits"]) + (f"+{r['weight_fixed_bits']}" if r["weight_fixed_bits"] else ""),
            str(r["weight_exp"]), str(r["memory_bytes"]),
        ])  # fmt: skip
    lines += _table(["projection", "kind", "source -> target", "delay", "fan-in", "fan-out", "weights", "stochastic",
                     "w_bits", "w_exp", "memory B"], rows, left=3)  # fmt: skip
    t = rep["totals"]
    lines.append(
        f"total: {t['neurons']} neurons, {t['stored_weights']} stored weights ({t['stochastic_synapses']} "
        f"stochastic), {t['memory_bytes']} bytes of synaptic and neuron memory"
    )
    lines.append(f"cores: {t['cores']} ({rep['cost_model']['cores']})")
    q = rep.get("quantization")
    if q:
        acc = q.get("accuracy") or {}
        ev = q.get("evaluated_on") or {}
        lines.append("quantization: " + "; ".join(
            f"{r['name']} weight_exp {r['weight_exp']}, {r['weight_bits_used']} bits used, "
            f"{r['saturated_weights']}/{r['weights']} weights saturated" for r in q["layers"]))  # fmt: skip
        lines.append("accuracy on " + f"{ev.get('dataset')} {ev.get('split')} ({ev.get('samples')} samples): "
                     + ", ".join(f"{k.replace('_', '-')} {v:.1%}" for k, v in acc.items())
                     + ("; fake-quant and hwsim outputs identical" if q.get("fake_quant_equals_hwsim") else ""))
    a = rep.get("activity")
    if a:
        pi = a["per_inference"]
        lines.append(f"measured on {a['samples']} samples x {a['steps']} steps, per inference: "
                     f"{pi['synops']:,.0f} synaptic ops, {pi['spikes']:,.0f} spikes, "
                     f"{pi['neuron_updates']:,.0f} neuron updates")  # fmt: skip
        b = a["energy_breakdown_nj"]
        lines.append(f"energy estimate: {a['energy_nj_per_inference']:,.1f} nJ per inference "
                     f"(synops {b['synops']:,.1f}, neurons {b['neuron_updates']:,.1f}, spikes {b['spikes']:,.1f}; "
                     f"{rep['cost_model']['energy']})")  # fmt: skip
    if rep["metadata_keys"]:
        lines.append("metadata: " + ", ".join(rep["metadata_keys"]))
    lines += [f"warning: {w}" for w in rep["warnings"]]
    return "\n".join(lines)
