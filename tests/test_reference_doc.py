"""docs/reference.md is generated from the code (quantal.reference): the committed page must match it."""

from pathlib import Path

from quantal import reference
from quantal.train import config


def test_the_reference_page_matches_the_code():
    page = (Path(__file__).resolve().parents[1] / "docs" / "reference.md").read_text()
    assert page == reference.markdown(), "regenerate it: python -m quantal.reference > docs/reference.md"


def test_every_config_key_and_command_is_listed():
    page = reference.markdown()
    for path, _ in reference._flat(config.DEFAULTS):
        assert f"| `{path}` |" in page
    from quantal.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in sub.choices:
        assert f"### `quantal {name}`" in page
