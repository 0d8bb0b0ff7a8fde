"""The user docs: links that resolve, commands that the CLI accepts, every page reachable from the index, and
no references to the project's internal history."""

import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from quantal.cli import UsageError, build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", page.read_text(), re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # an external address
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.name}: link to {target} which does not exist"
        if anchor and dest.suffix == ".md":
            assert anchor in anchors(dest), f"{page.name}: no heading for #{anchor} in {dest.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_docs_do_not_refer_to_internal_documents_or_history(page):
    text = page.read_text()
    internal = (r"\bissues?\b", r"seed doc", r"\bthe seed (reports|says|paper)", r"\bseed.s (two|claim|gradient)",
                r"\.\./shared", r"DESIGN\.md", r"STYLE\.md", r"\bsessions?\b")  # fmt: skip
    for pattern in internal:
        hit = re.search(pattern, text, re.I)
        assert hit is None, f"{page.name}: {text[max(0, hit.start() - 40):hit.end() + 40]!r}"


def test_the_index_reaches_every_page():
    index = (ROOT / "docs" / "index.md").read_text()
    linked = {t.partition("#")[0] for t in LINK.findall(index)}
    for page in (ROOT / "docs").glob("*.md"):
        assert page.name == "index.md" or page.name in linked, f"docs/index.md does not link {page.name}"


def commands(page: Path) -> list[str]:
    """The ``quantal ...`` lines of the page's fenced bash blocks."""
    blocks = re.findall(r"```bash\n(.*?)```", page.read_text(), re.S)
    return [ln.strip() for b in blocks for ln in b.splitlines() if ln.strip().startswith("quantal ")]


@pytest.mark.parametrize("page", [p for p in PAGES if commands(p)], ids=lambda p: p.name)
def test_every_documented_command_is_accepted_by_the_cli(page):
    parser = build_parser()
    for line in commands(page):
        line = line.split("#")[0].strip()
        if re.search(r"\[|\||…", line):
            continue  # a synopsis with optional parts, not a command
        try:
            args = parser.parse_args(shlex.split(line)[1:])
        except (SystemExit, UsageError):
            pytest.fail(f"{page.name}: the CLI refuses {line!r}")
        assert callable(args.func)


def test_the_howto_covers_every_command_and_json():
    howto = ROOT / "docs" / "howto.md"
    used = {shlex.split(ln)[1] for ln in commands(howto)}
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    missing = set(sub.choices) - used - {"warmup"}  # warmup runs once, from make
    assert not missing, f"docs/howto.md shows no example of: {sorted(missing)}"
    with_json = [name for name, p in sub.choices.items() if any("--json" in a.option_strings for a in p._actions)]
    text = howto.read_text()
    for name in with_json:
        assert f"`{name}`" in text.split("## Script the command line")[1], f"howto does not list {name} --json"


def test_the_readme_leads_with_what_quantal_does_and_its_picture():
    text = (ROOT / "README.md").read_text()
    assert text.index("docs/pipeline.svg") < text.index("## Quick start") < text.index("## Where the code lives")
    svg = ET.parse(ROOT / "docs" / "pipeline.svg").getroot()
    assert svg.tag.endswith("svg") and svg.find("{http://www.w3.org/2000/svg}title") is not None


def test_the_file_format_reference_matches_the_code():
    """docs/ir.md's example manifest is a valid network, and the ranges its comments state are the validator's."""
    import numpy as np
    import yaml

    from quantal.compile import ir

    text = (ROOT / "docs" / "ir.md").read_text()
    block = re.search(r"```yaml\n(format: quantal\.ir.*?)```", text, re.S).group(1)
    ranges = {m.group(1): (int(m.group(2)), int(m.group(3)))
              for m in re.finditer(r"^\s*(?:- )?(\w+): .*?# int in \[(-?\d+), (-?\d+)\]", block, re.M)}  # fmt: skip
    code = {"current_decay": ir.DECAY_RANGE, "voltage_decay": ir.DECAY_RANGE, "threshold": ir.THRESHOLD_RANGE,
            "bias_mant": ir.BIAS_MANT_RANGE, "bias_exp": ir.BIAS_EXP_RANGE, "delay": ir.DELAY_RANGE,
            "weight_exp": ir.WEIGHT_EXP_RANGE}  # fmt: skip
    assert ranges == code
    manifest = yaml.safe_load(block)
    rng = np.random.default_rng(0)
    arrays = {"c1.in.weight": rng.integers(-128, 128, (16, 2, 5, 5)).astype(np.int8),
              "c1.in.release": np.full((16, 2, 5, 5), 127, np.uint8),
              "c1.in.fixed": np.zeros((16, 2, 5, 5), np.int8),
              "out.in.weight": rng.integers(-128, 128, (10, 16 * 16 * 16)).astype(np.int8)}  # fmt: skip
    net = ir.from_manifest(manifest, arrays)
    assert [la.name for la in net.layers] == ["c1", "out"] and net.input_shape == (2, 34, 34)
