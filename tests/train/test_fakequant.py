"""The fake-quant forward equals the IR's reference executor (and hwsim) bit for bit, and trains."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quantal.compile import reference
from quantal.compile.testing import edge_network, random_network, random_spikes
from quantal.hwsim import simulate
from quantal.train.fakequant import QuantNet, rz, ste, wrap32


def _assert_same(net, q_out, ref, trial=None):
    for li, layer in enumerate(net.layers):
        for qty, got in (("spikes", q_out.spikes), ("u", q_out.u), ("v", q_out.v)):
            want = ref[f"{layer.name}.{qty}"]
            want = want if trial is None else want[trial]
            assert np.array_equal(got[li].detach().numpy(), want), (layer.name, qty)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), sizes=st.lists(st.integers(1, 12), min_size=2, max_size=4),
       release=st.sampled_from([None, 0.5, "random"]), fixed=st.booleans(), escape=st.booleans(),
       readout=st.booleans(), memoryless=st.booleans(), stream_seed=st.integers(0, 2**64 - 1))  # fmt: skip
def test_random_networks_equal_the_reference(seed, sizes, release, fixed, escape, readout, memoryless, stream_seed):
    rng = np.random.default_rng(seed)
    net = random_network(rng, sizes, release=release, weight_fixed=fixed, escape=escape, readout=readout,
                         memoryless=memoryless)  # fmt: skip
    x = random_spikes(rng, 3, 5, net.input_size)
    ref = reference.simulate(net, x, steps=9, seed=stream_seed, trials=2, record=("spikes", "u", "v"),
                             sample_offset=40)  # fmt: skip
    q = QuantNet.from_network(net)
    for trial in range(2):
        out = q(torch.from_numpy(x), steps=9, seed=stream_seed, trial=trial, samples=torch.arange(40, 43), record=True)
        _assert_same(net, out, ref, trial)


def test_wrap_and_saturation_edge_cases_equal_the_reference():
    rng = np.random.default_rng(11)
    for _ in range(15):
        net = edge_network(rng)
        x = random_spikes(rng, 3, 6, net.input_size, density=0.9)
        ref = reference.simulate(net, x, steps=10, seed=5, record=("spikes", "u", "v"))
        _assert_same(net, QuantNet.from_network(net)(torch.from_numpy(x), steps=10, seed=5, record=True), ref)


def test_equals_hwsim_on_a_larger_stochastic_network():
    rng = np.random.default_rng(3)
    net = random_network(rng, [40, 64, 32, 10], release="random", weight_fixed=True, escape=True, readout=True)
    x = random_spikes(rng, 50, 8, 40)
    hw = simulate(net, x, steps=12, seed=9, record=("spikes", "v", "counts"))
    out = QuantNet.from_network(net)(torch.from_numpy(x), steps=12, seed=9, record=True)
    for li, layer in enumerate(net.layers):
        assert np.array_equal(out.spikes[li].detach().numpy(), hw[f"{layer.name}.spikes"])
    assert np.array_equal(out.final_v.detach().numpy(), hw[f"{net.layers[-1].name}.counts"])


def test_to_network_round_trips():
    rng = np.random.default_rng(5)
    net = random_network(rng, [7, 9, 4], release="random", weight_fixed=True, escape=True, readout=True)
    back = QuantNet.from_network(net, scales=[37.0, 0.25]).to_network(net.name)
    assert back.projections == net.projections
    for a, b in zip(net.layers, back.layers):
        assert np.array_equal(a.neuron.effective_bias(a.size), b.neuron.effective_bias(b.size))
        assert a.neuron.escape_noise == b.neuron.escape_noise and a.neuron.threshold == b.neuron.threshold


def test_structure_and_state_rebuild_the_model():
    rng = np.random.default_rng(6)
    q = QuantNet.from_network(random_network(rng, [5, 6, 3], release=0.5, escape=True, readout=True))
    q2 = QuantNet.from_structure(q.structure(), q.state_dict())
    x = torch.from_numpy(random_spikes(rng, 4, 5, 5))
    assert torch.equal(q(x, steps=8).final_v, q2(x, steps=8).final_v)


def test_integer_ops_are_exact_with_straight_through_gradients():
    x = torch.tensor([-594432.0, 594432.0, 4095.0, -4095.0, 2.0**31, -(2.0**31) - 1], dtype=torch.float64,
                     requires_grad=True)  # fmt: skip
    y = rz(x)
    assert y.tolist() == [-145, 145, 0, 0, 2**19, -(2**19)]  # rounds toward zero (floor would give -146)
    w = wrap32(x)
    assert w.tolist()[4:] == [-(2.0**31), 2.0**31 - 1]  # two's-complement wrap
    (y.sum() + w.sum()).backward()
    assert torch.allclose(x.grad, torch.full_like(x, 1 / 4096 + 1))  # identity gradients through the rounding
    s = ste(torch.tensor([1.0]), torch.tensor([0.3], requires_grad=True))
    assert s.item() == 1.0


def test_gradients_reach_every_weight_and_bias():
    rng = np.random.default_rng(8)
    net = random_network(rng, [20, 16, 5], release=0.5, escape=True, readout=True)
    q = QuantNet.from_network(net, scales=[float(max(la.neuron.threshold, 1)) for la in net.layers])
    x = torch.from_numpy(random_spikes(rng, 32, 6, 20, density=0.5))
    out = q(x, steps=9)
    torch.nn.functional.cross_entropy(out.logits, torch.arange(32) % 5).backward()
    for name, p in q.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if name.endswith("weight"):
            assert p.grad.abs().sum() > 0, name


def test_wrong_input_size_is_refused():
    q = QuantNet.from_network(random_network(np.random.default_rng(0), [4, 3]))
    with pytest.raises(ValueError, match="expects .batch, T, 4"):
        q(torch.zeros(1, 2, 5))


def test_a_device_forward_equals_hwsim_on_the_same_device():
    # static device effects (no read noise): the hardware-aware forward is hwsim's device run, bit for bit
    from quantal.hwsim import devices as D
    from quantal.train.fakequant import DeviceRun

    rng = np.random.default_rng(0)
    net = random_network(rng, [10, 12, 6], release="random", weight_fixed=True, escape=True, readout=True)
    x = random_spikes(rng, 5, 6, 10)
    spec = D.from_config({"preset": "rram", "read_sigma_rel": 0.0}, time=3600.0)
    hw = simulate(net, x, steps=9, seed=3, trials=2, record=("spikes", "v"), device=spec)
    q = QuantNet.from_network(net)
    for r in range(2):
        out = q(torch.from_numpy(x), steps=9, seed=3, trial=r, record=True, device=DeviceRun(spec, seed=3, trial=r))
        for li, la in enumerate(net.layers):
            assert np.array_equal(out.spikes[li].detach().numpy(), hw[f"{la.name}.spikes"][r])
            assert np.array_equal(out.v[li].detach().numpy(), hw[f"{la.name}.v"][r])


def test_read_noise_in_the_device_forward_has_the_summed_variance():
    # one neuron, 3 always-active reliable inputs: the per-neuron Gaussian has variance sum_j s2w_ij
    from quantal.compile.ir import DenseSynapse, Network, Neuron
    from quantal.hwsim import devices as D
    from quantal.train.fakequant import DeviceRun

    net = Network.chain("n", 3, (("l", 1, DenseSynapse(weight=np.array([[60, -30, 90]], np.int8), weight_exp=7),
        Neuron(kind="readout", current_decay=4096, voltage_decay=4096, threshold=0)),))  # fmt: skip
    spec = D.from_config("pcm", time=60.0)
    q = QuantNet.from_network(net)
    x = torch.ones(20000, 1, 3, dtype=torch.float64)
    out = q(x, steps=2, record=True, device=DeviceRun(spec, seed=1, generator=torch.Generator().manual_seed(0)))
    a = out.u[0][:, 1, 0].detach().numpy() / 64 / 2**7
    ((w, _, s2w, _),) = D.layer_weights(spec, net, 1, 0)
    var = float(s2w.sum()) + 2.0**-14 / 12
    assert abs(a.var(ddof=1) / var - 1) < 4.5 * np.sqrt(2 / 20000)


# ------------------------------------------------------------------------------------------------ IR v2


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32), conv=st.booleans(), recurrent=st.booleans(), max_delay=st.sampled_from([0, 3]),
       release=st.sampled_from([None, 0.5, "random"]), fixed=st.booleans(), escape=st.booleans(),
       per_neuron=st.booleans(), stream_seed=st.integers(0, 2**64 - 1))  # fmt: skip
def test_random_graphs_equal_the_reference(seed, conv, recurrent, max_delay, release, fixed, escape, per_neuron,
                                           stream_seed):  # fmt: skip
    from quantal.compile.testing import random_graph

    rng = np.random.default_rng(seed)
    net = random_graph(rng, conv=conv, recurrent=recurrent, max_delay=max_delay, release=release, weight_fixed=fixed,
                       escape=escape, per_neuron=per_neuron)  # fmt: skip
    x = random_spikes(rng, 3, 5, net.input_size)
    ref = reference.simulate(net, x, steps=9, seed=stream_seed, trials=2, record=("spikes", "u", "v"),
                             sample_offset=7)  # fmt: skip
    q = QuantNet.from_network(net)
    for trial in range(2):
        out = q(torch.from_numpy(x.reshape(3, 5, *net.input_shape)), steps=9, seed=stream_seed, trial=trial,
                samples=torch.arange(7, 10), record=True)  # fmt: skip
        _assert_same(net, out, ref, trial)
    assert q.to_network().projections == net.projections


def test_graph_structure_rebuilds_and_gradients_reach_conv_and_recurrent_weights():
    from quantal.compile.testing import random_graph

    rng = np.random.default_rng(4)
    net = random_graph(rng, release="random", escape=True, max_delay=2)
    q = QuantNet.from_network(net)
    q2 = QuantNet.from_structure(q.structure(), q.state_dict())
    x = torch.from_numpy(random_spikes(rng, 6, 6, net.input_size, 0.5))
    assert torch.equal(q(x, steps=10).final_v, q2(x, steps=10).final_v)
    out = q(x, steps=10)
    (out.logits.sum() + sum(s.sum() for s in out.spikes)).backward()
    for name, p in q.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    conv = [pr for pr in q.projections if pr.spec.kind == "conv2d"]
    assert conv and all(pr.weight.grad.abs().sum() > 0 for pr in conv)


def test_a_graph_on_a_device_equals_hwsim():
    from quantal.compile.testing import random_graph
    from quantal.hwsim import devices as D
    from quantal.train.fakequant import DeviceRun

    rng = np.random.default_rng(5)
    net = random_graph(rng, release="random", weight_fixed=True, max_delay=2)
    x = random_spikes(rng, 4, 6, net.input_size, 0.4)
    spec = D.from_config({"preset": "rram", "read_sigma_rel": 0.0}, time=3600.0)
    hw = simulate(net, x, steps=9, seed=3, record=("spikes", "v"), device=spec)
    out = QuantNet.from_network(net)(torch.from_numpy(x), steps=9, seed=3, record=True,
                                     device=DeviceRun(spec, seed=3, trial=0))  # fmt: skip
    for li, la in enumerate(net.layers):
        assert np.array_equal(out.spikes[li].detach().numpy(), hw[f"{la.name}.spikes"])
        assert np.array_equal(out.v[li].detach().numpy(), hw[f"{la.name}.v"])


@pytest.mark.parametrize("kind", ["dense", "conv2d"])
@pytest.mark.parametrize("src_dtype", [torch.float32, torch.float64])
def test_stochastic_kernels_give_autograds_gradients(kind, src_dtype):
    """The Numba forward and backward of a stochastic projection equal plain torch autograd on the same draws
    (the event list of :meth:`QuantProjection._events`, summed with ``index_add``)."""
    from quantal.compile.testing import random_graph

    rng = np.random.default_rng(11)
    net = random_graph(rng, conv=kind == "conv2d", release="random")
    q = QuantNet.from_network(net)
    pi = next(i for i, p in enumerate(q.projections) if p.spec.kind == kind and p.release is not None)
    pr = q.projections[pi]
    n_src = int(np.prod(pr.spec.src_shape))
    size = int(np.prod(pr.spec.dst_shape))
    src = torch.from_numpy((rng.random((6, n_src)) < 0.5) * rng.integers(1, 3, (6, n_src))).to(src_dtype)
    src.requires_grad_(True)
    samples, steps = torch.arange(3, 9), torch.arange(6) % 3 + 1
    g = torch.from_numpy(rng.normal(size=(6, size)))
    got = pr.synaptic_input(src, 5, 1, samples, steps, pi)
    (got * g).sum().backward()
    gw, gs = pr.weight.grad.clone(), src.grad.clone()
    pr.weight.grad, src.grad = None, None
    rows, tgt, elem, xs = pr._events(src, 5, 1, samples, steps, pi)
    contrib = xs * pr.mantissa().reshape(-1)[elem]
    total = torch.zeros(6 * size, dtype=torch.float64).index_add(0, rows * size + tgt, contrib)
    want = total.view(6, size) * 2.0**pr.spec.weight_exp
    assert torch.equal(torch.floor(want.detach()), got.detach())  # the same draws, exact integer sums
    (want * g).sum().backward()
    assert torch.allclose(pr.weight.grad, gw, rtol=1e-5, atol=1e-6)
    assert torch.allclose(src.grad.double(), gs.double(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind,reset,escape,wide", [("lif", "zero", False, False), ("lif", "subtract", True, True),
                                                    ("lif", "zero", True, False), ("readout", "zero", False, True)])
def test_the_neuron_kernel_equals_the_tensor_step(kind, reset, escape, wide):
    """The CPU's Numba neuron step gives the tensor step's integers exactly and its gradients."""
    from quantal.train.fakequant import LayerSpec, QuantLayer

    rng = np.random.default_rng(3)
    n, b = 37, 5
    spec = LayerSpec("l", (n,), kind=kind, scale=3.0, reset=reset, escape_scale=40.0 if escape else None)
    la = QuantLayer(spec, threshold=rng.integers(0, 3000, n), current_decay=rng.integers(0, 4097, n),
                    voltage_decay=rng.integers(0, 4097, n), bias=torch.from_numpy(rng.normal(0, 20, n)),
                    bias_exp=rng.integers(0, 3, n))  # fmt: skip
    big = 2.0**26 if wide else 2.0**17  # wide: the 32-bit and 24-bit wraps are reached
    leaves = [torch.from_numpy(np.rint(rng.uniform(-1, 1, (b, n)) * m)).requires_grad_(True)
              for m in (big, 2.0**23 - 1, 2.0**23 - 1)]  # a, u, v
    uni = torch.from_numpy(rng.integers(0, 65536, (b, n))) if escape else None
    g = [torch.from_numpy(rng.normal(size=(b, n))) for _ in range(3)]
    results = []
    for fn in (la.step, la.step_tensors):
        for t in leaves:
            t.grad = None
        la.bias.grad = None
        out = fn(*leaves, la.bias_v(), uni, wide)
        sum((o * gi).sum() for o, gi in zip(out, g)).backward()
        results.append(([o.detach() for o in out], [t.grad.clone() for t in leaves] + [la.bias.grad.clone()]))
    (vals_k, grads_k), (vals_t, grads_t) = results
    for got, want in zip(vals_k, vals_t):
        assert torch.equal(got, want)
    for got, want in zip(grads_k, grads_t):
        assert torch.allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["dense", "conv2d"])
def test_the_release_kernels_sum_any_weights_over_the_same_draws(kind):
    """Device weights and read-noise variances (non-integer floats) summed by the kernels over exactly the
    synapses the event list says transmit."""
    from quantal.compile.testing import random_graph

    rng = np.random.default_rng(12)
    q = QuantNet.from_network(random_graph(rng, conv=kind == "conv2d", release="random"))
    pi = next(i for i, p in enumerate(q.projections) if p.spec.kind == kind and p.release is not None)
    pr = q.projections[pi]
    n_src, size = int(np.prod(pr.spec.src_shape)), int(np.prod(pr.spec.dst_shape))
    src = torch.from_numpy((rng.random((5, n_src)) < 0.5).astype(np.float64))
    samples, steps = torch.arange(5), torch.arange(5) + 2
    w = torch.from_numpy(rng.gamma(2.0, 1.5, tuple(pr.weight.shape)))
    got = pr._release_sum(src, w, 9, 2, samples, steps, pi)
    rows, tgt, elem, xs = pr._events(src, 9, 2, samples, steps, pi)
    want = torch.zeros(5 * size, dtype=torch.float64).index_add(0, rows * size + tgt, xs * w.reshape(-1)[elem])
    assert torch.allclose(got, want.view(5, size), rtol=1e-12, atol=1e-9)
