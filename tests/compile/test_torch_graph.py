"""from_torch: a user's own model of quantal.nn layers lowers to IR v2, exactly where the IR has no rounding."""

import numpy as np
import pytest
import torch
from torch import nn

from quantal import nn as qnn
from quantal.compile import from_torch
from quantal.compile.lower import LoweringError
from quantal.hwsim import simulate


class CNN(nn.Module):
    """conv -> IF -> sum-pool -> flatten -> dense, plus a skip from the input, into a recurrent IF layer with
    subtractive reset, then a readout. IF neurons (alpha = 0, beta = 1) with integer weights and thresholds: the
    float model has no rounding, so the IR must give the same spikes and voltages."""

    def __init__(self, pool: type = qnn.SumPool2d) -> None:
        super().__init__()
        self.conv = qnn.Conv2d(2, 4, 3, padding=1)
        self.lif = qnn.LIF((4, 8, 8), alpha=0.0, beta=1.0, threshold=3.0)
        self.pool = pool(2)
        self.flat = qnn.Flatten()
        self.fc = qnn.Linear(64, 10)
        self.skip = qnn.Linear(128, 10)
        self.flat_in = qnn.Flatten()
        self.rec = qnn.RecurrentLIF(10, alpha=0.0, beta=1.0, threshold=2.0, reset="subtract")
        self.out = qnn.Linear(10, 3)
        self.readout = qnn.Readout(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.lif(self.conv(x))
        h = self.rec(self.fc(self.flat(self.pool(s))) + self.skip(self.flat_in(x)))
        return self.readout(self.out(h))


def integer_model(model: nn.Module, seed: int, scale: float = 1.0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randint(-3, 4, p.shape, generator=g).float() * scale)
            elif name.endswith("bias"):
                p.copy_(torch.randint(-1, 2, p.shape, generator=g).float())
    return model


@pytest.mark.parametrize("seed", range(3))
def test_an_if_cnn_with_skip_and_recurrence_lowers_exactly(seed):
    model = integer_model(CNN(), seed)
    x = (torch.rand(4, 10, 2, 8, 8, generator=torch.Generator().manual_seed(seed)) < 0.3).float()
    qnet, report = from_torch(model, x)
    net = qnet.to_network("cnn")
    assert [la.name for la in net.layers] == ["lif", "rec", "readout"]
    assert [(p.source, p.target, p.kind) for p in net.projections] == [
        ("input", "lif", "conv2d"), ("lif", "rec", "dense"), ("input", "rec", "dense"), ("rec", "rec", "dense"),
        ("rec", "readout", "dense")]  # fmt: skip
    assert net.is_recurrent(net.projections[3]) and net.layer("rec").neuron.reset == "subtract"
    hw = simulate(net, x.numpy().astype(bool), record=("spikes", "v"))
    with torch.no_grad():
        s_lif = model.lif(model.conv(x))
        s_rec = model.rec(model.fc(model.flat(model.pool(s_lif))) + model.skip(model.flat_in(x)))
        v_out = model.readout(model.out(s_rec))
    assert s_lif.sum() > 0 and s_rec.sum() > 0
    assert np.array_equal(hw["lif.spikes"], s_lif.reshape(4, 10, -1).numpy().astype(np.uint8))
    assert np.array_equal(hw["rec.spikes"], s_rec.numpy().astype(np.uint8))
    c = next(r["scale"] for r in report if r["name"] == "readout")
    assert np.array_equal(hw["readout.v"] / (64 * c), v_out.numpy())
    # the fake-quant model computes the same bits as hwsim
    q = qnet(x, record=True)
    assert np.array_equal(q.spikes[1].detach().numpy(), hw["rec.spikes"])
    assert np.array_equal(q.v[2].detach().numpy(), hw["readout.v"])


def test_average_pooling_is_fused_with_its_scale():
    model = integer_model(CNN(pool=qnn.AvgPool2d), 5, scale=4.0)  # weights multiples of 4: avg-pool stays exact
    x = (torch.rand(3, 8, 2, 8, 8, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    net = from_torch(model, x)[0].to_network()
    hw = simulate(net, x.numpy().astype(bool), record=("spikes",))
    with torch.no_grad():
        s_lif = model.lif(model.conv(x))
        s_rec = model.rec(model.fc(model.flat(model.pool(s_lif))) + model.skip(model.flat_in(x)))
    assert np.array_equal(hw["rec.spikes"], s_rec.numpy().astype(np.uint8))


def test_a_pool_before_a_conv_becomes_one_conv():
    model = nn.Sequential(qnn.Conv2d(1, 2, 3, padding=1), qnn.LIF((2, 8, 8), alpha=0.0, beta=1.0, threshold=2.0),
                          qnn.SumPool2d(2), qnn.Conv2d(2, 3, 3, padding=1), qnn.LIF((3, 4, 4), alpha=0.0, beta=1.0,
                          threshold=4.0), qnn.Flatten(), qnn.Linear(48, 2), qnn.Readout(2))  # fmt: skip
    integer_model(model, 2)
    x = (torch.rand(3, 8, 1, 8, 8, generator=torch.Generator().manual_seed(3)) < 0.4).float()
    net = from_torch(model, x)[0].to_network()
    p = net.projections[1]
    assert p.kind == "conv2d" and p.synapse.kernel == (6, 6) and p.synapse.stride == (2, 2)
    hw = simulate(net, x.numpy().astype(bool), record=("spikes",))
    with torch.no_grad():
        s1 = model[1](model[0](x))
        s2 = model[4](model[3](model[2](s1)))
    assert s2.sum() > 0 and np.array_equal(hw["4.spikes"], s2.reshape(3, 8, -1).numpy().astype(np.uint8))


def test_stochastic_layers_lower_to_release_codes_and_escape_noise():
    model = nn.Sequential(qnn.BlankOutLinear(20, 8, p=0.5), qnn.LIF(8, escape="sigmoid", escape_beta=4.0),
                          qnn.Linear(8, 3), qnn.Readout(3))  # fmt: skip
    x = (torch.rand(6, 5, 20) < 0.3).float()
    qnet, report = from_torch(model, x)
    net = qnet.to_network()
    assert (net.projections[0].synapse.release == 127).all() and net.projections[1].synapse.release is None
    c = report[0]["scale"]
    assert net.layers[0].neuron.escape_noise.scale == pytest.approx(64 * c / 4.0)
    conv = nn.Sequential(qnn.BlankOutConv2d(2, 3, 3, p=0.25), qnn.LIF((3, 4, 4)), qnn.Flatten(), qnn.Linear(48, 2),
                         qnn.Readout(2))  # fmt: skip
    net = from_torch(conv, torch.zeros(2, 4, 2, 6, 6))[0].to_network()
    assert net.projections[0].kind == "conv2d" and (net.projections[0].synapse.release == 63).all()


class Relu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = qnn.Linear(4, 3)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc(x))


class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = qnn.Linear(4, 3)
        self.out = qnn.Readout(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc(x)))


@pytest.mark.parametrize("model,needle", [
    (Relu(), "act (ReLU): no IR lowering for this module (known: "),
    (Functional(), "has no IR lowering"),
    (nn.Sequential(nn.Linear(4, 3), qnn.Readout(3)), "0 (Linear): a synapse with a bias"),
    (nn.Sequential(qnn.Linear(4, 3), qnn.LIF(3, escape="erf")), "escape function 'erf'"),
    (nn.Sequential(qnn.Linear(4, 3), qnn.Linear(3, 3), qnn.Readout(3)), "a synapse needs spikes"),
    (nn.Sequential(qnn.Linear(4, 5), qnn.Readout(3)), "has 5 outputs but the neuron layer has shape [3]"),
])  # fmt: skip
def test_what_cannot_lower_is_refused_with_the_module(model, needle):
    with pytest.raises(LoweringError, match=None) as e:
        from_torch(model, torch.zeros(2, 3, 4))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_flatten_over_time_is_refused():
    model = nn.Sequential(nn.Flatten(), qnn.Linear(12, 3), qnn.Readout(3))
    with pytest.raises(LoweringError, match="start_dim=2"):
        from_torch(model, torch.zeros(2, 3, 4))
