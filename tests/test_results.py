"""examples/results.py: every result names a command that exists and pages that exist, and bad names exit 2."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _results():
    spec = importlib.util.spec_from_file_location("results", ROOT / "examples" / "results.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["results"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_every_result_runs_a_file_that_exists_and_names_real_pages():
    res = _results()
    for name, r in res.RESULTS.items():
        argv = res.command(name)
        scripts = [a for a in argv if a.endswith((".py", ".yaml"))]
        assert argv[0] == "make" or scripts, name
        for s in scripts:
            assert (ROOT / s).is_file(), (name, s)
        for page in r.pages.split(", "):
            path = page.split(" ")[0]
            assert (ROOT / path).is_file(), (name, path)
        if argv[0] == "make":
            assert f"\n{argv[1]}:" in (ROOT / "Makefile").read_text(), name


def test_every_example_that_prints_results_is_listed():
    res = _results()
    named = {a for name in res.RESULTS for a in res.command(name)}
    helpers = {"results.py", "demo.py"}  # demo.py runs through `make demo`
    for f in (ROOT / "examples").glob("*.py"):
        assert f.name in helpers or f"examples/{f.name}" in named, f.name


def test_listing_and_unknown_names(capsys):
    res = _results()
    assert res.main([]) == 0
    assert "s2m" in capsys.readouterr().out
    assert res.main(["no-such-result"]) == 2
    assert "unknown result" in capsys.readouterr().err
