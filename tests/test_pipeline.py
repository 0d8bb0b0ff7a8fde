"""The pipeline as a user runs it: train -> compile -> run/eval/inspect, and its reports."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from quantal import cost
from quantal.cli import main
from quantal.compile import ir, reference
from quantal.compile.testing import random_network
from quantal.pipeline import PipelineError, compile_run, confidence_interval, evaluate, quant_outputs
from quantal.train.data import encode, load
from quantal.train.fakequant import QuantNet
from quantal.train.trainer import train

QUIET = {"progress": False, "log": lambda *_: None}
LIF = {"data": {"limit": 300, "steps": 6}, "model": {"kind": "lif", "hidden": [24], "p": 0.5, "escape": "sigmoid"},
       "train": {"epochs": 1, "lr": 0.005}, "quant": {"epochs": 1, "calibration": 128}}  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("lif")
    rows = train(LIF, d / "run", **QUIET)
    net, rep = compile_run(d / "run", d / "net.qnet", limit=60, log=lambda *_: None)
    return d, rows, net, rep


def test_a_fake_quant_trained_model_runs_identically_everywhere(run):
    d, rows, net, rep = run
    assert [r["phase"] for r in rows] == ["float", "fake-quant"]
    assert rep["fake_quant_equals_hwsim"] and rep["method"].startswith("fake-quant training")
    # the accuracy fake-quant training reported is the one hwsim measures (same streams and encoding)
    full = compile_run(d / "run", d / "full.qnet", log=lambda *_: None)[1]
    assert full["accuracy"]["hwsim"] == rows[-1]["test_acc"] == full["accuracy"]["fake_quant"]
    # fake-quant forward, `quantal run` and the reference executor: identical spikes in every layer
    ck = torch.load(d / "run" / "qat.pt", weights_only=True)
    q = QuantNet.from_structure(ck["structure"], ck["quant"])
    x = encode(load("digits", "test").x[:12], "rate", 6, seed=3)
    steps = net.metadata["input"]["run_steps"]
    np.save(d / "x.npy", x)
    assert main(["run", str(d / "net.qnet"), "--input", str(d / "x.npy"), "--out", str(d / "o.npz"), "--steps",
                 str(steps), "--seed", "5", "--record", "spikes,v", "-q"]) == 0  # fmt: skip
    hw = np.load(d / "o.npz")
    ref = reference.simulate(net, x, steps=steps, seed=5, record=("spikes", "v"))
    with torch.no_grad():
        out = q(torch.from_numpy(x), steps=steps, seed=5, record=True)
    for li, la in enumerate(net.layers):
        assert np.array_equal(out.spikes[li].numpy(), hw[f"{la.name}.spikes"])
        assert np.array_equal(ref[f"{la.name}.spikes"], hw[f"{la.name}.spikes"])
        assert np.array_equal(out.v[li].numpy(), hw[f"{la.name}.v"])


def test_post_training_quantisation_of_the_float_checkpoint(run):
    d, _, _, _ = run
    net, rep = compile_run(d / "run" / "last.pt", d / "ptq.qnet", limit=60, log=lambda *_: None)
    assert rep["method"].startswith("post-training") and rep["fake_quant_equals_hwsim"]
    assert set(rep["accuracy"]) == {"float", "fake_quant", "hwsim"}
    meta = ir.load(d / "ptq.qnet").metadata
    assert meta["input"]["encoder"] == "rate" and meta["training"]["model"]["kind"] == "lif"
    assert meta["quantization"]["layers"][0]["saturated_weights"] >= 0


def test_eval_reports_a_confidence_interval_over_trials(run):
    d, _, net, rep = run
    res = evaluate(net, "digits", trials=5, limit=60)
    assert res["trials"] == 5 and res["stochastic"] and res["ci95"][0] <= res["accuracy"] <= res["ci95"][1]
    # the per-trial accuracies are hwsim's trials 0..4; trial 0 equals the compile report's single run
    assert res["per_trial"][0] == rep["accuracy"]["hwsim"]
    one = evaluate(net, "digits", trials=1, limit=60)
    assert one["ci_method"].startswith("Wilson") and one["accuracy"] == rep["accuracy"]["hwsim"]


def test_confidence_intervals_match_their_closed_forms():
    lo, hi, how = confidence_interval(np.array([0.5]), 10)  # Wilson, 5 of 10, z = 1.96
    assert (round(lo, 4), round(hi, 4)) == (0.2366, 0.7634) and "one trial" in how
    accs = np.array([0.80, 0.82, 0.85, 0.81])  # t with 3 dof: 3.1824 * sd / sqrt(4)
    lo, hi, how = confidence_interval(accs, 100)
    half = 3.18245 * np.std(accs, ddof=1) / 2
    assert lo == pytest.approx(accs.mean() - half, abs=1e-4) and hi == pytest.approx(accs.mean() + half, abs=1e-4)
    assert how == "t-interval over 4 trials"


def test_confidence_intervals_stay_inside_0_1_and_say_how_they_were_chosen():
    lo, hi, how = confidence_interval(np.array([0.99, 0.92]), 100)  # t with 1 dof reaches 1.27 unclipped
    assert 0 <= lo and hi == 1.0 and "clipped" in how
    lo, hi, _ = confidence_interval(np.array([0.02, 0.0]), 100)
    assert lo == 0.0 and hi <= 1
    for accs in (np.array([1.0]), np.array([0.0]), np.array([1.0, 1.0, 1.0])):
        lo, hi, _ = confidence_interval(accs, 50)
        assert 0 <= lo <= accs.mean() <= hi <= 1
    # a deterministic network over several trials: the test set's Wilson interval, not a zero-width t-interval
    det = confidence_interval(np.array([0.7, 0.7, 0.7]), 200, deterministic=True)
    assert det[:2] == pytest.approx(confidence_interval(np.array([0.7]), 200)[:2]) and "deterministic" in det[2]
    same = confidence_interval(np.array([0.7, 0.7]), 200)
    assert same[1] > same[0] and "equal" in same[2]


def test_quant_outputs_batches_like_one_call(run):
    d, _, net, _ = run
    ck = torch.load(d / "run" / "qat.pt", weights_only=True)
    q = QuantNet.from_structure(ck["structure"], ck["quant"])
    x = encode(load("digits", "test").x[:30], "rate", 6, seed=0)
    assert np.array_equal(quant_outputs(q, x, 8, seed=2, batch=7), quant_outputs(q, x, 8, seed=2, batch=30))


def test_activity_counts_synaptic_operations_by_hand():
    net = random_network(np.random.default_rng(0), [3, 2])
    x = np.zeros((2, 4, 3), np.uint8)
    x[0, 0, 0] = x[0, 1, 2] = x[1, 3, 1] = 1  # the spike at the last input step is never integrated (4 steps)
    act = cost.activity(net, x, 4)
    fan = cost.fan_out(net, 0)
    assert act["per_inference"]["synops"] == (fan[0] + fan[2]) / 2
    e = (act["per_inference"]["synops"] * 23.6 + act["per_inference"]["neuron_updates"] * 81.0
         + act["per_inference"]["spikes"] * 1.7) / 1000  # fmt: skip
    assert act["energy_nj_per_inference"] == pytest.approx(e)
    (row,) = act["layers"]  # one layer: its share is the whole estimate, from its own counts
    assert row["rate"] == pytest.approx(row["spikes"] / (net.layers[0].size * 4))
    assert row["energy_nj"] == pytest.approx((row["synops"] * 23.6 + row["neuron_updates"] * 81.0
                                              + row["spikes"] * 1.7) / 1000) == pytest.approx(e)  # fmt: skip
    assert cost.cores(net) == [1]
    big = random_network(np.random.default_rng(0), [400, 400])  # 160,000 synapse bytes > 128 KiB
    assert cost.cores(big) == [2]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "quantal", *args], capture_output=True, text=True)


def test_cli_compile_eval_inspect(run):
    d, _, _, _ = run
    r = cli("compile", str(d / "run"), "-o", str(d / "c.qnet"), "--limit", "40")
    assert r.returncode == 0 and "fake-quant and hwsim outputs identical" in r.stdout
    r = cli("eval", str(d / "c.qnet"), "--data", "digits", "--limit", "40", "--trials", "3", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["trials"] == 3
    r = cli("inspect", str(d / "c.qnet"), "--data", "digits", "--limit", "20", "--json")
    rep = json.loads(r.stdout)
    assert rep["activity"]["per_inference"]["synops"] > 0 and rep["totals"]["cores"] >= 2
    assert rep["quantization"]["fake_quant_equals_hwsim"]
    r = cli("inspect", str(d / "c.qnet"), "--data", "digits", "--limit", "20")
    assert "energy estimate" in r.stdout and "synaptic ops" in r.stdout


def test_cli_errors_are_one_line(tmp_path, run):
    d, _, _, _ = run
    r = cli("compile", str(tmp_path / "nope"), "-o", str(tmp_path / "x.qnet"))
    assert r.returncode == 2 and "no such run directory" in r.stderr and len(r.stderr.splitlines()) == 1
    train({"data": {"limit": 100, "encoder": "none"}, "model": {"kind": "mlp", "hidden": [8]},
           "train": {"epochs": 1}}, tmp_path / "mlp", **QUIET)  # fmt: skip
    r = cli("compile", str(tmp_path / "mlp"), "-o", str(tmp_path / "x.qnet"))
    assert r.returncode == 2 and "MLP" in r.stderr and len(r.stderr.splitlines()) == 1
    assert not (tmp_path / "x.qnet").exists()
    bare = ir.save(random_network(np.random.default_rng(1), [64, 10]), tmp_path / "bare.qnet")
    r = cli("eval", str(bare), "--data", "digits")
    assert r.returncode == 2 and "--encoder" in r.stderr
    r = cli("eval", str(bare), "--data", "digits", "--encoder", "pairs", "--steps", "3")
    assert r.returncode == 2 and "128 channels" in r.stderr
    with pytest.raises(PipelineError, match="no checkpoint"):
        compile_run(tmp_path, tmp_path / "y.qnet")


@pytest.mark.lava
@pytest.mark.slow
@pytest.mark.usefixtures("lava")
def test_the_trained_stochastic_network_verifies_in_lava(run):
    d, _, net, _ = run
    x = encode(load("digits", "test").x[:10], "rate", 6, seed=1)
    np.save(d / "xv.npy", x)
    r = cli("verify", str(d / "net.qnet"), "--target", "lava", "--input", str(d / "xv.npy"), "--steps",
            str(net.metadata["input"]["run_steps"]), "--seed", "3")  # fmt: skip
    assert r.returncode == 0 and r.stdout.startswith("identical"), r.stdout + r.stderr


def test_eval_takes_a_npz_dataset(run, tmp_path):
    # the digits test split saved as a .npz dataset (images kept as 8x8) evaluates to the same accuracy
    from quantal.train import data

    d, _, net, _ = run
    te = data.load("digits", "test")
    tr = data.load("digits", "train")
    np.savez(tmp_path / "digits.npz", x_train=tr.x.reshape(-1, 8, 8), y_train=tr.y, x_test=te.x.reshape(-1, 8, 8),
             y_test=te.y)  # fmt: skip
    a = evaluate(net, "digits", trials=1, limit=60)
    b = evaluate(net, str(tmp_path / "digits.npz"), trials=1, limit=60, data_seed=0)
    assert a["accuracy"] == b["accuracy"] and b["samples"] == 60
    r = subprocess.run([sys.executable, "-m", "quantal", "eval", str(d / "net.qnet"), "--data", "mnist"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and "FILE.npz" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("meta,needle", [
    ({"input": "rate"}, "must be a mapping"),
    ({"input": {"encoder": 3, "steps": 4}}, "encoder"),
    ({"input": {"encoder": "morse", "steps": 4}}, "encoder"),
    ({"input": {"encoder": "rate", "steps": "4"}}, "steps"),
    ({"input": {"encoder": "rate", "steps": 4, "run_steps": 10**12}}, "run_steps"),
    ({"input": {"encoder": "rate", "steps": 4, "run_steps": 2}}, "at least steps"),
    ({"input": {"encoder": "rate", "steps": 4, "max_rate": "%"}}, "max_rate"),
])  # fmt: skip
def test_metadata_that_eval_reads_is_checked(meta, needle):
    from quantal.compile.testing import random_network
    from quantal.pipeline import input_spec

    net = random_network(np.random.default_rng(0), [64, 10]).replace(metadata=meta)
    with pytest.raises(PipelineError, match=needle):
        input_spec(net)
