"""The reference page docs/reference.md, generated from the code so that it cannot drift from it:

* every training configuration key with its default, allowed values and meaning (``quantal.train.config``);
* every command of the CLI with every option, its default and help (``quantal.cli.build_parser``);
* the sweep file's keys (``quantal.sweep``).

``python -m quantal.reference > docs/reference.md`` regenerates it; ``tests/test_reference_doc.py`` fails when
the committed page differs from what the code produces.
"""

from __future__ import annotations

import argparse
import re
from typing import Any


def _schema_comments(doc: str) -> dict[str, str]:
    """key path -> the comment of its line in an indented YAML schema inside a docstring."""
    out: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    last = None
    for line in doc.splitlines():
        m = re.match(r"^(\s*)([A-Za-z_]+):(.*)$", line)
        if not m:
            c = re.match(r"^\s+#\s?(.*)$", line)  # a continuation comment belongs to the key above
            if c and last:
                out[last] = (out.get(last, "") + " " + c.group(1).strip()).strip()
            continue
        indent, key, rest = len(m.group(1)), m.group(2), m.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [key])
        stack.append((indent, key))
        comment = rest.split("#", 1)[1].strip() if "#" in rest else ""
        out[path] = comment
        last = path
    return out


def _flat(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for k, v in d.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict):
            rows += _flat(v, path + ".")
        else:
            rows.append((path, v))
    return rows


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def config_section() -> list[str]:
    from quantal.train import config

    notes = _schema_comments(config.__doc__ or "")
    lines = ["## Training configuration (`quantal train CONFIG.yaml`)", "",
             "Every key is optional; a missing one takes its default. Unknown keys are refused with one line "
             "naming them.", "", "| key | default | allowed | meaning |", "|---|---|---|---|"]  # fmt: skip
    for path, default in _flat(config.DEFAULTS):
        allowed = config.CHOICES.get(path)
        allowed_s = ", ".join("null" if a is None else str(a) for a in allowed) if allowed else ""
        dflt = "null" if default is None else (str(default).lower() if isinstance(default, bool) else default)
        lines.append(f"| `{path}` | `{_cell(dflt)}` | {_cell(allowed_s)} | {_cell(notes.get(path, ''))} |")
    return lines


def _options(p: argparse.ArgumentParser) -> list[str]:
    rows = []
    for a in p._actions:
        if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = ", ".join(a.option_strings) if a.option_strings else (a.metavar or a.dest)
        if a.option_strings and a.nargs != 0 and not isinstance(a, argparse._StoreTrueAction):
            name += f" {a.metavar or a.dest.upper()}"
        choices = f" (one of {', '.join(map(str, a.choices))})" if a.choices else ""
        default = "" if a.default in (None, False, argparse.SUPPRESS) or not a.option_strings else f"`{a.default}`"
        req = "required" if getattr(a, "required", False) and a.option_strings else ""
        rows.append(f"| `{_cell(name)}` | {default or req} | {_cell((a.help or '') + choices)} |")
    return rows


def cli_section() -> list[str]:
    from quantal.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in sub._choices_actions}
    lines = ["## Commands (`quantal COMMAND --help`)", "",
             "Every command exits 0 on success, 2 with one line on a usage or input error (nothing written), "
             "3 on an internal error (docs/limits.md).", ""]  # fmt: skip
    for name, p in sub.choices.items():
        lines += [f"### `quantal {name}`", "", _cell(helps.get(name, "")), "", "| argument | default | meaning |",
                  "|---|---|---|", *_options(p), ""]  # fmt: skip
    return lines


def sweep_section() -> list[str]:
    from quantal import sweep

    doc = sweep.__doc__ or ""
    block = doc[doc.index("A sweep file::") + len("A sweep file::"):].split("\n\n")[1]
    notes = _schema_comments(block)
    lines = ["## Sweep file (`quantal sweep SWEEP.yaml`)", "", "| key | meaning |", "|---|---|"]
    for line in block.splitlines():
        m = re.match(r"^(\s*)([A-Za-z_]+):", line)
        if m:
            key = m.group(2)
            path = next((p for p in notes if p == key or p.endswith("." + key)), key)
            example = line.split(":", 1)[1].split("#")[0].strip()
            ex = f" (e.g. `{_cell(example)}`)" if example else ""
            lines.append(f"| `{path}` | {_cell(notes.get(path, ''))}{ex} |")
    axes = ", ".join(f"`{a}`" for a in sweep.AXES)
    lines += ["", f"Grid axes: {axes}. See docs/devices.md for what each run does.", ""]
    return lines


def markdown() -> str:
    head = ["# Reference", "",
            "Generated from the code by `python -m quantal.reference` (a test checks that this page matches it). "
            "The `.qnet` file format is in [ir.md](ir.md).", ""]  # fmt: skip
    return "\n".join(head + config_section() + [""] + cli_section() + sweep_section()).rstrip() + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
