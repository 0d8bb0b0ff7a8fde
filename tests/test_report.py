"""`quantal report`: one self-contained HTML page, rendered by headless Chromium (Debian's `chromium`)."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from quantal import plots, report
from quantal.compile import ir
from quantal.compile.testing import random_network

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def run_dir(tmp_path):
    d = tmp_path / "run"
    (d / "train").mkdir(parents=True)
    rows = [{"epoch": 1, "phase": "float", "train_loss": 1.0, "train_acc": 0.5, "test_acc": 0.6, "seconds": 1.0},
            {"epoch": 2, "phase": "fake-quant", "train_loss": 0.5, "train_acc": 0.8, "test_acc": 0.7, "seconds": 1.0}]
    (d / "train" / "metrics.json").write_text(json.dumps(rows))
    (d / "train" / "config.yaml").write_text("seed: 0\n")
    plots.training_curve(rows, d / "training_curve.png")
    plots.accuracy_bars([("a", 0.5, (0.4, 0.6)), ("b", 0.7, None)], d / "accuracy.png")
    ir.save(random_network(np.random.default_rng(0), [5, 4, 3], release=0.5, readout=True), d / "n.qnet")
    return d


def test_the_page_is_self_contained(run_dir):
    text = report.build(run_dir)
    assert text.count("data:image/png;base64,") == 3  # the two PNGs and the weight histograms of n.qnet
    assert not re.search(r"(src|href)=['\"](https?:|//|file:)", text)  # nothing fetched from elsewhere
    assert "Training: train" in text and "Network: n.qnet" in text and "seed: 0" in text


@pytest.mark.skipif(CHROMIUM is None and os.environ.get("CI") != "true", reason="chromium is not installed")
def test_chromium_renders_the_report(run_dir):
    assert CHROMIUM is not None, "CI needs Debian's chromium (make apt-deps)"
    r = subprocess.run([sys.executable, "-m", "quantal", "report", str(run_dir)], capture_output=True, text=True)
    assert r.returncode == 0
    page = run_dir / "report.html"
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--window-size=1280,900", "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout  # fmt: skip
    assert 'data-images-ok="3/3"' in dom  # the inline script ran after load and every image decoded
    assert 'data-overflow="0"' in dom  # no horizontal scrolling of the page at 1,280 px
    assert "<table>" in dom and "quantal report: run" in dom


def test_the_summary_card_leads_with_readable_numbers_and_checks(run_dir):
    summary = {"accuracy": {"float": 0.9554, "hwsim_stochastic": {"accuracy": 0.9457, "ci95": [0.9421, 0.9493],
                                                                  "ci_method": "t-interval over 20 trials"}},
               "fake_quant_equals_hwsim": True, "lava_verification": {"exit_status": 0, "result": "identical"},
               "nir": {"round_trip_exact": True}, "netx": {"exit_status": 2, "result": "refused: layer 'x'"},
               "drift": [{"device": "pcm", "time": 31536000.0, "accuracy": 0.91, "ci_lo": 0.9, "ci_hi": 0.92}]}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    text = report.build(run_dir)
    card = text[text.index("At a glance"):text.index("</div>", text.index("At a glance"))]
    assert "95.5%" in card and "94.6% &plusmn; 0.4%" in card and "t-interval over 20 trials" in card
    assert "bit for bit" in card and "Lava: identical" in card and "exact round trip" in card and "refused" in card
    assert "1 year" in text and "31536000" not in text  # times in people's units
    assert "0.9554" not in text and "[94.2%, 94.9%]" in text


def test_cli_refuses_a_missing_folder(tmp_path):
    r = subprocess.run([sys.executable, "-m", "quantal", "report", str(tmp_path / "none")], capture_output=True,
                       text=True)  # fmt: skip
    assert r.returncode == 2 and "no such run directory" in r.stderr


def test_the_report_skips_symlinks_fifos_and_unreadable_files(tmp_path):
    import os

    from quantal import report

    run = tmp_path / "run"
    run.mkdir()
    (run / "ok.yaml").write_text("a: 1\n")
    outside = tmp_path / "secret.yaml"
    outside.write_text("password: hunter2\n")
    (run / "link.yaml").symlink_to(outside)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.yaml").write_text("also: secret\n")
    (run / "linked_dir").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    os.mkfifo(run / "fifo.yaml")  # reading it would block forever
    (run / "metrics.json").write_text("[{\"epoch\": 1,")  # torn
    (run / "summary.json").write_text("not json")
    text = report.build(run)  # returns: nothing blocks, nothing raises
    assert "a: 1" in text and "hunter2" not in text and "also: secret" not in text
    assert "not readable training metrics" in text


def test_networks_are_drawn_with_every_projection():
    from quantal.compile.testing import random_graph

    net = random_graph(np.random.default_rng(4), conv=True, release="random")
    svg = report.graph_svg(net)
    assert svg.count("<rect") == len(net.layers) + 1 and svg.count("marker-end") == len(net.projections)
    assert any(p.source == p.target for p in net.projections) and "C" in svg  # the recurrent loop is a curve
    assert svg.count("stroke-dasharray") == sum(p.synapse.stochastic for p in net.projections)


def test_the_raster_of_a_chosen_sample_is_the_reference_executors_run():
    """The raster's sample is the dataset's test sample N encoded as the metadata says; its prediction is the
    plain-numpy reference executor's on that sample (same seed, the sample's own random streams)."""
    import dataclasses

    from quantal.compile import reference
    from quantal.compile.runspec import RunSpec
    from quantal.pipeline import encoded_dataset

    net = random_network(np.random.default_rng(1), [64, 12, 10], release=0.5, readout=True)
    net = dataclasses.replace(net, metadata={"input": {"dataset": "digits", "encoder": "rate", "steps": 6}})
    for sample in (0, 7):
        png, caption = report.sample_raster(net, sample, seed=3)
        assert png is not None and png.startswith(b"\x89PNG")
        x, y, spec = encoded_dataset(net, "digits", seed=3, limit=sample + 1)
        ref = reference.simulate(net, x[sample:sample + 1], RunSpec(steps=spec["run_steps"], seed=3,
                                 record=("counts",)), sample_offset=sample)  # fmt: skip
        pred = int(np.argmax(ref[f"{net.layers[-1].name}.counts"][0]))
        assert f"test sample {sample} (label {int(y[sample])}, predicted {pred})" in caption
    png, caption = report.sample_raster(net, 10**9)
    assert png is None and "not a sample" in caption
    png, caption = report.sample_raster(dataclasses.replace(net, metadata={}), 0)
    assert png is None and "names no dataset" in caption


def test_report_cli_draws_the_chosen_sample(run_dir, tmp_path):
    out = tmp_path / "r.html"
    r = subprocess.run([sys.executable, "-m", "quantal", "report", str(run_dir), "--sample", "2", "--out", str(out)],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "no spike raster: the network" in out.read_text()  # the fixture's network names no dataset
    r = subprocess.run([sys.executable, "-m", "quantal", "report", str(run_dir), "--sample", "-1"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and r.stderr.count("\n") == 1


@pytest.fixture
def full_run(tmp_path):
    """A folder with every kind of result the demo writes: a summary with per-layer activity, a network with its
    dataset, training metrics and a drift sweep over two devices."""
    import yaml

    from quantal import cost, sweep
    from quantal.pipeline import encoded_dataset

    d = tmp_path / "demo"
    (d / "train").mkdir(parents=True)
    rows = [{"epoch": 1, "phase": "float", "train_loss": 1.0, "train_acc": 0.5, "test_acc": 0.6, "seconds": 1.0}]
    (d / "train" / "metrics.json").write_text(json.dumps(rows))
    net = random_network(np.random.default_rng(0), [64, 24, 10], release=0.5, readout=True)
    net = net.replace(name="r", metadata={"input": {"dataset": "digits", "encoder": "rate", "steps": 4,
                                                    "run_steps": 7}})  # fmt: skip
    netp = ir.save(net, d / "net.qnet")
    x, _, _ = encoded_dataset(net, "digits", limit=20)
    act = cost.activity(net, x, 7)
    summary = {"accuracy": {"float": 0.9, "hwsim_stochastic": {"accuracy": 0.88, "ci95": [0.86, 0.9]}},
               "activity": act, "fake_quant_equals_hwsim": True}  # fmt: skip
    (d / "summary.json").write_text(json.dumps(summary))
    sw = tmp_path / "sw.yaml"
    sw.write_text(yaml.safe_dump({"name": "drift", "networks": {"a": str(netp)}, "data": {"limit": 40},
                                  "trials": 2, "grid": {"device": ["ideal", "pcm"], "time": [1, 86400]}}))  # fmt: skip
    sweep.run(sw, d / "sweep", workers=1)
    return d


VIEWS = ("At a glance", "spikes per layer of digits test sample", "activity per layer", "weights: stored mantissas",
         "Sweep: sweep", "Network: net.qnet", "Training: train")  # fmt: skip


def test_every_view_is_on_the_page(full_run):
    text = report.build(full_run)
    for view in VIEWS:
        assert view in text, view
    act = json.loads((full_run / "summary.json").read_text())["activity"]
    assert all("energy_nj" in r for r in act["layers"])
    assert sum(r["energy_nj"] for r in act["layers"]) == pytest.approx(act["energy_nj_per_inference"])
    assert text.count("<svg") >= 1 and len(list((full_run / "sweep").glob("sweep_*.png"))) >= 1


@pytest.mark.skipif(CHROMIUM is None and os.environ.get("CI") != "true", reason="chromium is not installed")
def test_chromium_renders_every_view_without_overflow(full_run):
    assert CHROMIUM is not None, "CI needs Debian's chromium (make apt-deps)"
    page = report.write(full_run, sample=5)
    n_img = page.read_text().count("<img")
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--window-size=1280,900", "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout  # fmt: skip
    assert n_img >= 5 and f'data-images-ok="{n_img}/{n_img}"' in dom
    assert 'data-overflow="0"' in dom and "test sample 5" in dom
