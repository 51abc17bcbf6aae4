"""NIR export -> import round trips, conventions in the file, refusals."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

nir = pytest.importorskip("nir")

from spikekws.export.graph import fold_snn  # noqa: E402
from spikekws.export.nir import from_nir, read_nir, to_nir, write_nir  # noqa: E402

CONFIGS = [(n, ro) for n in ("lif", "rlif", "if") for ro in (True, False)]


@pytest.mark.parametrize("neuron,readout", CONFIGS)
def test_round_trip_identical_spikes_and_readout(make_snn, tmp_path, neuron, readout):
    model = make_snn(neuron, readout=readout)
    path = write_nir(model, tmp_path / "m.nir")
    back = read_nir(path, dtype=torch.float64)
    x = torch.randn(3, 40, 10, dtype=torch.float64) * 2
    ref, got = model.trace(x), back.trace(x)
    assert set(ref) == set(got)
    for key in ref:
        if key.startswith("layer"):
            assert torch.equal(ref[key], got[key]), key
            assert 0.02 < float(ref[key].mean()) < 0.9, (key, float(ref[key].mean()))
        else:  # BN folding reorders float64 sums: agreement to rounding
            torch.testing.assert_close(got[key], ref[key], rtol=1e-9, atol=1e-9)
    out_ref, rates_ref = model(x)
    out, rates = back(x)
    torch.testing.assert_close(out, out_ref, rtol=1e-9, atol=1e-9)
    assert torch.equal(rates, rates_ref)


@pytest.mark.parametrize("neuron", ["lif", "rlif"])
def test_float32_file_reimports_bit_exactly(make_snn, tmp_path, neuron):
    """The folded float32 graph and its re-imported copy agree bit for bit (tau round trip)."""
    model = make_snn(neuron, dtype=torch.float32)
    folded = fold_snn(model)
    back = read_nir(write_nir(model, tmp_path / "m.nir"))
    for a, b in zip(folded.layers, back.layers):
        assert torch.equal(a.alpha, b.alpha)
        assert torch.equal(a.weight, b.weight)
    x = torch.randn(2, 50, 10) * 2
    ref, got = folded.trace(x), back.trace(x)
    for key in ref:
        assert torch.equal(ref[key], got[key]), key


def test_file_conventions(make_snn):
    model = make_snn("rlif", hidden=(6,), dtype=torch.float32)
    g = to_nir(model)
    assert g.metadata["dt"] == pytest.approx(0.01)
    assert [e for e in g.edges] == [("input", "fc0"), ("fc0", "rlif0"), ("rlif0", "fc_out"),
                                    ("fc_out", "readout"), ("readout", "output")]
    sub = g.nodes["rlif0"]
    assert isinstance(sub, nir.NIRGraph)
    assert ("lif", "rec") in sub.edges and ("rec", "lif") in sub.edges
    lif = sub.nodes["lif"]
    alpha = model.layers[0].neuron.alpha.detach().double().numpy()
    np.testing.assert_allclose(lif.tau, 0.01 / (1 - alpha), rtol=1e-12)
    # Euler step with NIR's tau reproduces exp(-dt/tau_mem)
    tau_mem = model.layers[0].neuron.tau_mem.detach().double().numpy()
    np.testing.assert_allclose(1 - 0.01 / lif.tau, np.exp(-0.01 / tau_mem), rtol=1e-6)
    assert np.all(lif.tau > tau_mem)
    np.testing.assert_array_equal(lif.r, 1.0)
    np.testing.assert_array_equal(lif.v_leak, 0.0)
    np.testing.assert_array_equal(lif.v_threshold, 1.0)
    assert lif.metadata == {"reset": "subtract", "spike": ">="}
    rec = model.layers[0].neuron.recurrent_weight.detach().double().numpy()
    np.testing.assert_allclose(sub.nodes["rec"].weight, rec * (1 - np.eye(6)))
    # BatchNorm folded into the Affine
    lin, bn = model.layers[0].linear, model.layers[0].norm.norm
    with torch.no_grad():
        gain = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).double()
        want_w = (lin.weight.double() * gain[:, None]).numpy()
        want_b = ((lin.bias.double() - bn.running_mean.double()) * gain + bn.bias.double()).numpy()
    np.testing.assert_allclose(g.nodes["fc0"].weight, want_w, rtol=1e-6)
    np.testing.assert_allclose(g.nodes["fc0"].bias, want_b, rtol=1e-6, atol=1e-7)


def test_if_node_uses_r_equal_one_over_dt(make_snn):
    g = to_nir(make_snn("if", hidden=(4,), dtype=torch.float32))
    np.testing.assert_allclose(g.nodes["if0"].r, 100.0)


@pytest.mark.parametrize("neuron", ["adlif", "radlif"])
def test_adaptive_neurons_are_refused(make_snn, neuron):
    with pytest.raises(ValueError, match=rf"layers\.0 \({neuron}.*lif or rlif"):
        to_nir(make_snn(neuron))


def test_layernorm_and_bidirectional_are_refused(make_snn):
    with pytest.raises(ValueError, match="layers.0.*LayerNorm.*batchnorm"):
        to_nir(make_snn("lif", normalization="layernorm"))
    from spikekws.models import build_model
    m = build_model("snn", 4, 3, neuron="lif", hidden_sizes=[5, 5], bidirectional=True).eval()
    with pytest.raises(ValueError, match="bidirectional"):
        to_nir(m)
    with pytest.raises(TypeError, match="SNN"):
        to_nir(torch.nn.Linear(3, 3))


def test_foreign_graph_without_metadata_uses_nir_reset_to_value():
    """A hand-written NIR graph (reset to v_reset, spike on v > threshold, no dt)."""
    g = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([1])}),
               "fc": nir.Linear(weight=np.array([[1.0]])),
               "lif": nir.LIF(tau=np.array([0.02]), r=np.array([1.0]), v_leak=np.array([0.0]),
                              v_threshold=np.array([0.6]), v_reset=np.array([0.1])),
               "output": nir.Output(output_type={"output": np.array([1])})},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])
    with pytest.raises(ValueError, match="dt"):
        from_nir(g)
    net = from_nir(g, dt=0.01, dtype=torch.float64)  # alpha = 1 - 0.01/0.02 = 0.5
    x = torch.ones(1, 6, 1, dtype=torch.float64)
    s = net.trace(x)["layer0"][:, 0, 0].tolist()
    # v: .5, .75(>.6 spike), reset .1 -> .55, .775 spike, .55, .775 spike
    assert s == [0, 1, 0, 1, 0, 1]
    assert math.isclose(float(net.layers[0].alpha), 0.5)


def test_import_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.nir"):
        read_nir(tmp_path / "missing.nir")
    g = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([2])}),
               "pool": nir.Scale(scale=np.array([1.0, 2.0])),
               "output": nir.Output(output_type={"output": np.array([2])})},
        edges=[("input", "pool"), ("pool", "output")])
    with pytest.raises(ValueError, match="Scale is not supported"):
        from_nir(g, dt=0.01)


def test_round_trip_without_normalisation(make_snn, tmp_path):
    model = make_snn("rlif", normalization="none")
    with torch.no_grad():
        for layer in model.layers:
            layer.linear.weight.mul_(4.0)  # busy neurons without BatchNorm gain
    back = read_nir(write_nir(model, tmp_path / "m.nir"), dtype=torch.float64)
    x = torch.randn(2, 40, 10, dtype=torch.float64) * 2
    ref, got = model.trace(x), back.trace(x)
    assert float(ref["layer0"].mean()) > 0.02
    for key in ref:
        assert torch.equal(ref[key], got[key]), key
