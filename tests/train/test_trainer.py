"""`quantal train`: configurations, training on digits, metrics, checkpoints and resume."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from quantal.train import config as C
from quantal.train.trainer import train

QUICK = {"data": {"limit": 600, "steps": 6}, "model": {"hidden": [48]}, "train": {"epochs": 3, "lr": 0.005}}


def cfg(kind: str, **model) -> dict:
    c = json.loads(json.dumps(QUICK))
    c["model"].update(kind=kind, **model)
    if kind != "lif":
        c["data"]["encoder"] = "none"
    return c


@pytest.mark.parametrize(
    "kind,model,floor",
    [("mlp", {}, 0.7), ("s2m", {"p": 0.5}, 0.5), ("lif", {"p": 0.75, "escape": "sigmoid"}, 0.5),
     ("lif", {"p": 1.0, "escape": None, "surrogate": "sigmoid"}, 0.5)],
)  # fmt: skip
def test_each_model_learns_the_digits(tmp_path, kind, model, floor):
    # chance is 0.1; 3 epochs on 600 samples must clear the stated floor on the held-out split
    rows = train(cfg(kind, **model), tmp_path, progress=False, log=lambda *_: None)
    assert len(rows) == 3 and rows[-1]["test_acc"] > floor
    assert (tmp_path / "metrics.csv").read_text().count("\n") == 4
    ck = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ck["epoch"] == 3


def interrupt_and_resume(c, tmp_path, stop_at, checkpoint, key):
    """Train ``c`` uninterrupted into a/, and into b/ interrupted after the log line starting with ``stop_at``
    and resumed. Asserts equal metrics (but wall time) and equal ``checkpoint[key]``; returns b's metrics."""
    full = train(c, tmp_path / "a", progress=False, log=lambda *_: None)

    def stop(msg):
        if msg.startswith(stop_at):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(c, tmp_path / "b", progress=False, log=stop)
    interrupted = json.loads((tmp_path / "b" / "metrics.json").read_text())
    resumed = train(c, tmp_path / "b", progress=False, log=lambda *_: None)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in resumed]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in full]
    a = torch.load(tmp_path / "a" / checkpoint, weights_only=True)[key]
    b = torch.load(tmp_path / "b" / checkpoint, weights_only=True)[key]
    assert all(torch.equal(a[k], b[k]) for k in a)
    return interrupted, resumed


def test_resume_after_interruption_equals_an_uninterrupted_run(tmp_path):
    c = cfg("lif", p=0.75, escape="sigmoid")
    interrupted, resumed = interrupt_and_resume(c, tmp_path, "epoch 2", "last.pt", "model")
    assert interrupted[-1]["epoch"] == 2
    assert [r["epoch"] for r in resumed] == [1, 2, 3]


def test_a_run_directory_with_another_config_is_refused(tmp_path):
    train(cfg("mlp") | {"train": {"epochs": 1}}, tmp_path, progress=False, log=lambda *_: None)
    with pytest.raises(C.ConfigError, match="different configuration"):
        train(cfg("mlp") | {"train": {"epochs": 1, "lr": 0.1}}, tmp_path, progress=False, log=lambda *_: None)


@pytest.mark.parametrize(
    "raw,needle",
    [({"modle": {}}, "modle: unknown key"), ({"model": {"hidden": [0]}}, "model.hidden"),
     ({"model": {"kind": "rnn"}}, "model.kind"), ({"train": {"lr": -1}}, "train.lr"),
     ({"data": {"encoder": "none"}}, "data.encoder"), ({"model": {"kind": "s2m", "p": 1.0}}, "model.p"),
     ({"model": {"escape": "gauss"}}, "model.escape"), ({"train": {"epochs": 2.5}}, "train.epochs"),
     ({"model": {"kind": "binary", "estimator": ["moment"]}}, "model.estimator"),
     ({"model": {"kind": "binary", "hidden": [4, 4], "estimator": ["straight"]}}, "model.estimator")],
)  # fmt: skip
def test_invalid_configs_name_the_key(raw, needle):
    with pytest.raises(C.ConfigError, match=needle.replace(".", r"\.")):
        C.validate(raw)


def test_cli_train_and_its_errors(tmp_path):
    good = tmp_path / "c.yaml"
    good.write_text("data: {name: digits, encoder: none, limit: 300}\nmodel: {kind: mlp, hidden: [16]}\n"
                    "train: {epochs: 1}\n")  # fmt: skip
    r = subprocess.run([sys.executable, "-m", "quantal", "train", str(good), "--out", str(tmp_path / "run")],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "test accuracy" in r.stdout and (tmp_path / "run" / "config.yaml").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {kind: lif, hiden: [3]}\n")
    r = subprocess.run([sys.executable, "-m", "quantal", "train", str(bad), "--out", str(tmp_path / "r2")],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "model.hiden" in r.stderr
    assert not (tmp_path / "r2").exists()


# Floors: mean - 3 sd of the test accuracy over seeds 0-2 of examples/train_binary.yaml (blank-out p = 0.5,
# 10 epochs, lr 0.01), as `python examples/binary_estimators.py` measures them (docs/train.md): surrogate
# 84.5 +- 4.2%, straight 85.7 +- 2.5%, unbiased 40.7 +- 2.7%, noisy_rectifier 87.4 +- 2.5%, moment 89.4 +- 2.9%.
@pytest.mark.parametrize(
    "estimator,floor",
    [("surrogate", 0.719), ("straight", 0.782), ("noisy_rectifier", 0.799), ("moment", 0.807), ("unbiased", 0.326)],
)
def test_binary_units_train_with_every_estimator(tmp_path, estimator, floor):
    import yaml

    c = yaml.safe_load((Path(__file__).parents[2] / "examples" / "train_binary.yaml").read_text())
    c["model"]["estimator"] = estimator  # the documented configuration, seed 0
    rows = train(c, tmp_path, progress=False, log=lambda *_: None)
    assert rows[-1]["test_acc"] > floor, rows


@pytest.mark.parametrize("estimator", [["surrogate", "straight"], ["noisy_rectifier", "surrogate"], "moment"])
def test_per_layer_estimators_and_blank_out_synapses(tmp_path, estimator):
    # two hidden layers, blank-out synapses p = 0.75 (sampled, or mean and variance in moment mode)
    c = {"data": {"encoder": "none"},
         "model": {"kind": "binary", "hidden": [96, 64], "estimator": estimator, "p": 0.75},
         "train": {"epochs": 4, "lr": 0.01}}  # fmt: skip
    rows = train(c, tmp_path, progress=False, log=lambda *_: None)
    assert rows[-1]["test_acc"] > 0.4, rows  # chance 0.1


def test_unbiased_estimator_moves_the_hidden_weights(tmp_path):
    # no backward pass reaches the hidden layer except through the estimator's surrogate loss
    from quantal.train.trainer import BinaryNet

    torch.manual_seed(0)
    net = BinaryNet(8, [5], 3, ["unbiased"])
    x = torch.rand(16, 8)
    per = torch.nn.functional.cross_entropy(net(x), torch.zeros(16, dtype=torch.long), reduction="none")
    per.mean().backward()
    assert net.layers[0].weight.grad is None or net.layers[0].weight.grad.abs().sum() == 0
    net.estimator_loss(per.detach()).backward()
    assert net.layers[0].weight.grad.abs().sum() > 0


def test_unbiased_layer_in_a_stack_gets_and_passes_gradients():
    # [unbiased, straight]: backprop reaches the straight layer and the readout; the unbiased layer's weights
    # get gradient only from its estimator. (It learns slowly: its units start near Bernoulli(0.5).)
    from quantal.train.trainer import BinaryNet

    torch.manual_seed(0)
    net = BinaryNet(8, [6, 5], 3, ["unbiased", "straight"], p=0.75)
    x = torch.rand(16, 8)
    per = torch.nn.functional.cross_entropy(net(x), torch.zeros(16, dtype=torch.long), reduction="none")
    per.mean().backward()
    assert net.layers[1].weight.grad.abs().sum() > 0 and net.readout.weight.grad.abs().sum() > 0
    assert net.layers[0].weight.grad is None or net.layers[0].weight.grad.abs().sum() == 0
    net.estimator_loss(per.detach()).backward()
    assert net.layers[0].weight.grad.abs().sum() > 0


def test_rbse_trains_from_a_config_and_resumes(tmp_path):
    # unsupervised CD-1 + logistic readout; chance 0.1, 0.79 seen after 10 epochs: floor 0.6 after 2
    c = {"data": {"encoder": "none"}, "model": {"kind": "rbse", "hidden": [32], "p": 0.6},
         "train": {"epochs": 2, "lr": 0.2}}  # fmt: skip

    def stop_after_1(msg):
        if msg.startswith("epoch 1"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(c, tmp_path, progress=False, log=stop_after_1)
    rows = train(c, tmp_path, progress=False, log=lambda *_: None)
    assert [r["epoch"] for r in rows] == [1, 2] and rows[-1]["test_acc"] > 0.6
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 2
    with pytest.raises(C.ConfigError, match="one hidden layer"):
        C.validate({"model": {"kind": "rbse", "hidden": [8, 8]}})


def test_fake_quant_training_resumes_bit_identically(tmp_path):
    c = cfg("lif", p=0.5, escape="sigmoid") | {"train": {"epochs": 1, "lr": 0.005},
                                              "quant": {"epochs": 2, "calibration": 64}}  # fmt: skip
    c["data"]["limit"] = 200
    interrupted, resumed = interrupt_and_resume(c, tmp_path, "fake-quant epoch 2", "qat.pt", "quant")
    assert [r["phase"] for r in interrupted] == ["float", "fake-quant"]
    assert [r["phase"] for r in resumed] == ["float", "fake-quant", "fake-quant"]


def test_fake_quant_training_needs_a_lowerable_model():
    with pytest.raises(C.ConfigError, match="quant.epochs"):
        C.validate({"model": {"kind": "mlp"}, "data": {"encoder": "none"}, "quant": {"epochs": 1}})


def test_hardware_aware_training_runs_on_a_device(tmp_path):
    c = cfg("lif", p=0.5, escape="sigmoid") | {"train": {"epochs": 1, "lr": 0.005},
                                              "quant": {"epochs": 1, "calibration": 64, "device": "pcm"}}  # fmt: skip
    c["data"]["limit"] = 200
    rows = train(c, tmp_path, progress=False, log=lambda *_: None)
    assert rows[-1]["phase"] == "fake-quant" and rows[-1]["test_acc"] > 0.15  # chance: 0.1
    with pytest.raises(C.ConfigError, match="quant.device: preset"):
        C.validate({"quant": {"device": "flash"}})
    with pytest.raises(C.ConfigError, match="quant.device_times"):
        C.validate({"quant": {"device_times": [-1]}})


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "quantal", *args], capture_output=True, text=True)


@pytest.mark.parametrize("content,needle", [
    (b"model: {kind: lif}\n\xff\xfe", "UTF-8"),
    (b"a: " + b"[" * 50000 + b"]" * 50000, "YAML"),
    (b"seed: " + b"7" * 5000, "YAML"),
    (b"model: {hidden: [100000000]}", "model.hidden"),        # a 78 GB layer: refused before anything exists
    (b"model: {hidden: [60000, 60000, 60000]}", "weights"),
])  # fmt: skip
def test_hostile_configs_exit_2_with_one_line_and_leave_no_run_folder(tmp_path, content, needle):
    p = tmp_path / "c.yaml"
    p.write_bytes(content)
    r = _cli("train", str(p), "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and needle in r.stderr, r.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("victim,content", [("last.pt", b"PK\x03\x04torn"), ("metrics.json", b"[{\"epoch\": 1,"),
                                            ("metrics.json", b"{\"a\": 1}"), ("config.yaml", b"\xff\xfe")])
def test_a_torn_run_folder_is_one_line_on_resume(tmp_path, victim, content):
    c = cfg("mlp")
    c["train"]["epochs"] = 1
    out = tmp_path / "run"
    train(c, out, progress=False, log=lambda *a: None)
    (out / victim).write_bytes(content)
    p = tmp_path / "c.yaml"
    import yaml

    p.write_text(yaml.safe_dump(c))
    r = _cli("train", str(p), "--out", str(out))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and victim in r.stderr, r.stderr
