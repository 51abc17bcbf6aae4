"""Integer-only inference vs the float simulation of the same quantised network."""
from __future__ import annotations

import pytest
import torch

from spikekws.export.integer import (IntegerSNN, IntLayer, agreement, decay_code, quantize_snn,
                                     quantize_weight)


@pytest.mark.parametrize("decay", ["shift", "fixed12"])
def test_if_network_is_bit_exact(make_snn, decay):
    model = make_snn("if", dtype=torch.float32)
    x = torch.randn(8, 40, 10) * 2
    q = quantize_snn(model, calibration=x, decay=decay)
    rep = agreement(q, x)
    assert rep["spikes_layer0"] == 1.0 and rep["spikes_layer1"] == 1.0
    # the LI readout leaks with a floor, so its membrane (and rarely a prediction) may differ
    assert rep["predictions"] >= 0.75 and rep["readout_max_abs_diff"] < 0.1
    fl = q.to_float().trace(q.quantize_input_float(x))
    it = q.trace(x)
    assert torch.equal(fl["layer0"], it["layer0"]) and 0.05 < float(it["layer0"].mean()) < 0.95


@pytest.mark.parametrize("neuron", ["lif", "rlif"])
@pytest.mark.parametrize("decay", ["shift", "fixed12"])
def test_leaky_networks_agree_up_to_leak_rounding(make_snn, neuron, decay):
    model = make_snn(neuron, dtype=torch.float32)
    x = torch.randn(8, 40, 10) * 2
    q = quantize_snn(model, calibration=x, decay=decay)
    rep = agreement(q, x)
    assert rep["spikes_layer0"] >= 0.99, rep
    assert rep["spikes_layer1"] >= 0.95, rep
    assert rep["predictions"] >= 0.75, rep
    if decay == "shift":
        for L in q.int_layers:
            assert L.shift is not None and bool(((L.shift >= 0) & (L.shift <= 12)).all())


def test_integer_leak_is_a_floor_shift():
    """One neuron, k = 1 (d = 2048): u_t = w - (w >> 1) + I, hand-computed."""
    L = IntLayer("l", "lif", weight=torch.tensor([[1]]), scale=1.0, sigma=1.0,
                 bias=torch.tensor([0]), d=torch.tensor([2048]), threshold=torch.tensor([10]))
    net = IntegerSNN([L], input_scale=1.0, input_bits=8, dt=0.01, has_readout=False)
    x = torch.tensor([7.0, 7.0, 7.0, -5.0, 0.0]).reshape(1, 5, 1)
    s = net.trace(x)["layer0"][:, 0, 0].tolist()
    # u: 7 -> 7-3+7=11 (spike) -> w=1: 1-0+7=8 -> 8-4-5=-1 -> -1-(-1)+0=0
    assert s == [0, 1, 0, 0, 0]
    assert L.shift.tolist() == [1]


def test_decay_codes_and_weights():
    alpha = torch.tensor([0.5, 0.9, 0.99])
    d = decay_code(alpha, "shift")
    assert d.tolist() == [2048, 512, 32]  # k = 1, 3 (0.1 -> 2**-3), 7 (0.01 -> 2**-7)
    assert decay_code(alpha, "fixed12").tolist() == [2048, 410, 41]
    codes, s = quantize_weight(torch.tensor([[0.5, -1.0], [0.25, 0.0]]), 8)
    assert codes.abs().max() == 127 and abs(s - 1.0 / 127) < 1e-6
    with pytest.raises(ValueError, match="decay"):
        decay_code(alpha, "linear")


def test_profile_schemes(make_snn):
    from spikekws.export.integer import quantize_for
    model = make_snn("lif", dtype=torch.float32)
    x = torch.randn(4, 20, 10)
    xylo = quantize_for(model, "xylo", calibration=x)
    assert all(L.shift is not None for L in xylo.int_layers)  # v -= v >> k
    tn = quantize_for(model, "truenorth", calibration=x)
    assert int(tn.int_layers[0].weight.abs().max()) == 255  # 9-bit codes
    loihi = quantize_for(model, "loihi2", calibration=x)
    assert any(L.shift is None for L in loihi.int_layers)  # 12-bit multiplier decay


def test_quantize_errors(make_snn):
    model = make_snn("lif", dtype=torch.float32)
    with pytest.raises(ValueError, match="calibration"):
        quantize_snn(model)
    with pytest.raises(ValueError, match="power of two"):
        quantize_snn(model, input_scale=0.3)
    with pytest.raises(ValueError, match="radlif"):
        quantize_snn(make_snn("radlif"), input_scale=1.0)
