"""``quantal inspect``: what a ``.qnet`` network holds, as a table or as JSON."""

from __future__ import annotations

from typing import Any

import numpy as np

from quantal.compile.ir import VERSION, Network, mantissa_bits


def layer_report(net: Network) -> list[dict[str, Any]]:
    rows = []
    for layer in net.layers:
        syn, neu = layer.synapse, layer.neuron
        n_syn = int(syn.weight.size)
        stoch = 0 if syn.release is None else int((syn.release < 255).sum())
        mem = syn.weight.nbytes
        mem += 0 if syn.release is None else syn.release.nbytes
        mem += 0 if syn.weight_fixed is None else syn.weight_fixed.nbytes
        for b in (neu.bias_mant, neu.bias_exp):
            mem += b.nbytes if isinstance(b, np.ndarray) else 0
        worst = layer.worst_case_input()  # the 32-bit synaptic path's worst case, |a << 6|
        rows.append(
            {
                "name": layer.name,
                "kind": neu.kind,
                "size": layer.size,
                "n_in": layer.n_in,
                "synapses": n_syn,
                "stochastic_synapses": stoch,
                "mean_release_probability": None
                if syn.release is None
                else float((syn.release.astype(np.float64) + 1).mean() / 256),
                "weight_bits": mantissa_bits(syn.weight),
                "weight_fixed_bits": mantissa_bits(syn.weight_fixed),
                "weight_exp": syn.weight_exp,
                "current_decay": neu.current_decay,
                "voltage_decay": neu.voltage_decay,
                "threshold": neu.threshold,
                "escape_noise": None
                if neu.escape_noise is None
                else {"kind": neu.escape_noise.kind, "scale": neu.escape_noise.scale},
                "memory_bytes": int(mem),
                "worst_case_input": worst,
                "may_overflow_32bit": worst >= 2**31,
            }
        )
    return rows


def report(net: Network, activity: dict[str, Any] | None = None) -> dict[str, Any]:
    """The description of ``net``; ``activity`` (from :func:`quantal.cost.activity`) adds measured costs."""
    from quantal import cost

    layers = layer_report(net)
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
        "input_size": net.input_size,
        "layers": layers,
        "totals": {
            "neurons": sum(r["size"] for r in layers),
            "synapses": sum(r["synapses"] for r in layers),
            "stochastic_synapses": sum(r["stochastic_synapses"] for r in layers),
            "memory_bytes": sum(r["memory_bytes"] for r in layers),
            "cores": sum(r["cores"] for r in layers),
        },
        "cost_model": cost.SOURCES,
        "quantization": _quant_summary(net),
        "activity": activity,
        "metadata_keys": sorted(map(str, net.metadata)),
        "warnings": warnings,
    }


def _quant_summary(net: Network) -> dict[str, Any] | None:
    q = net.metadata.get("quantization")
    if not isinstance(q, dict):
        return None
    return {"accuracy": q.get("accuracy"), "fake_quant_equals_hwsim": q.get("fake_quant_equals_hwsim"),
            "evaluated_on": q.get("evaluated_on"), "method": q.get("method"),
            "layers": [{k: r.get(k) for k in _QUANT_KEYS} for r in q.get("layers", [])]}  # fmt: skip


_QUANT_KEYS = ("name", "scale", "weight_exp", "weight_bits_used", "saturated_weights", "weights", "saturated_biases")


def format_report(rep: dict[str, Any]) -> str:
    head = ["layer", "kind", "size", "n_in", "synapses", "stochastic", "w_bits", "w_exp", "decay i/v", "vth",
            "escape", "memory B"]  # fmt: skip
    rows = [head]
    for r in rep["layers"]:
        esc = "-" if r["escape_noise"] is None else f"{r['escape_noise']['kind']}({r['escape_noise']['scale']:g})"
        stoch = str(r["stochastic_synapses"])
        if r["mean_release_probability"] is not None:
            stoch += f" (p={r['mean_release_probability']:.2f})"
        rows.append([
            r["name"], r["kind"], str(r["size"]), str(r["n_in"]), str(r["synapses"]), stoch,
            str(r["weight_bits"]) + (f"+{r['weight_fixed_bits']}" if r["weight_fixed_bits"] else ""),
            str(r["weight_exp"]), f"{r['current_decay']}/{r['voltage_decay']}", str(r["threshold"]), esc,
            str(r["memory_bytes"]),
        ])  # fmt: skip
    widths = [max(len(row[c]) for row in rows) for c in range(len(head))]
    lines = [f"network '{rep['name']}' (IR v{rep['version']}), input size {rep['input_size']}"]
    for k, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) if c < 2 else cell.rjust(w) for c, (cell, w) in
                               enumerate(zip(row, widths))).rstrip())  # fmt: skip
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    t = rep["totals"]
    lines.append(
        f"total: {t['neurons']} neurons, {t['synapses']} synapses ({t['stochastic_synapses']} stochastic), "
        f"{t['memory_bytes']} bytes of synaptic and bias memory"
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
