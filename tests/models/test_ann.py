"""Non-spiking baselines: mlp, rnn, gru, ligru, cnn2d (and the QCFS activation)."""
from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F

from spikekws.models import MODELS, build_model
from spikekws.models.ann import QCFS, CNN2d, Pool2d, ligru_scan, qcfs

B, T, FEAT, C = 3, 12, 7, 4

CASES = {
    "mlp": {"hidden_sizes": [10, 10]},
    "mlp-qcfs": {"hidden_sizes": [10], "qcfs": 4},
    "rnn": {"hidden_sizes": [10]},
    "rnn-relu-bidir": {"hidden_sizes": [10, 6], "nonlinearity": "relu", "bidirectional": True},
    "gru": {"hidden_sizes": [10, 10]},
    "gru-bidir-layernorm": {"hidden_sizes": [10], "bidirectional": True, "normalization": "layernorm"},
    "ligru": {"hidden_sizes": [10, 10]},
    "ligru-bidir": {"hidden_sizes": [10], "bidirectional": True},
    "cnn2d": {"channels": [4, 8], "hidden_sizes": [10]},
    "cnn2d-qcfs": {"channels": [4, 8], "hidden_sizes": [10], "qcfs": 8},
    "cnn2d-max-nobn": {"channels": [4], "pool": "max", "normalization": "none"},
}
# what the runner passes to every model, spiking-only entries included
RUNNER_KWARGS = {"neuron": "radlif", "surrogate": "boxcar", "dropout": 0.1,
                 "normalization": "batchnorm", "bidirectional": False}


def _build(case: str, seed: int = 0):
    torch.manual_seed(seed)
    name = case.split("-")[0]
    return build_model(name, FEAT, C, **{**RUNNER_KWARGS, **CASES[case]})


def _input(seed: int = 1, batch: int = B, steps: int = T) -> torch.Tensor:
    return torch.randn(batch, steps, FEAT, generator=torch.Generator().manual_seed(seed))


def test_all_baselines_are_registered():
    assert {"mlp", "rnn", "gru", "ligru", "cnn2d"} <= set(MODELS.list())


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_backward(case):
    model = _build(case).train()
    assert model.spiking is False
    x = _input().requires_grad_(True)
    out, rates = model(x)
    assert out.shape == (B, C) and torch.isfinite(out).all()
    assert rates.shape == (0,)
    F.cross_entropy(out, torch.tensor([0, 1, 3])).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("case", sorted(CASES))
def test_save_load_gives_identical_outputs(case):
    model = _build(case, seed=0).train()
    with torch.no_grad():
        model(_input(seed=2))  # move running statistics away from their init
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    fresh = _build(case, seed=123)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    model.eval(), fresh.eval()
    x = _input(seed=3)
    with torch.no_grad():
        assert torch.equal(model(x)[0], fresh(x)[0])


@pytest.mark.parametrize("case", sorted(CASES))
def test_any_batch_size_and_length(case):
    model = _build(case).eval()
    x = _input(seed=5, batch=4, steps=9)
    with torch.no_grad():
        out4, _ = model(x)
        out1, _ = model(x[2:3])
        out_short, _ = model(x[:, :1])
    assert out_short.shape == (4, C)
    torch.testing.assert_close(out1, out4[2:3], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["mlp", "rnn", "gru", "ligru", "cnn2d"])
def test_wrong_input_shape_raises(name):
    model = build_model(name, FEAT, C)
    with pytest.raises(ValueError, match=str(FEAT)):
        model(torch.randn(B, T, FEAT + 1))
    with pytest.raises(ValueError):
        model(torch.randn(T, FEAT))


@pytest.mark.parametrize("name", ["mlp", "rnn", "gru", "ligru", "cnn2d"])
def test_unknown_option_is_a_type_error_naming_it(name):
    with pytest.raises(TypeError, match="chanels"):
        build_model(name, FEAT, C, chanels=[4])


def test_spiking_only_options_are_ignored():
    model = build_model("cnn2d", FEAT, C, neuron="lif", surrogate="atan", threshold=2.0,
                        tau_mem=0.02, dt=0.001, use_readout_layer=True, channels=[4])
    assert isinstance(model, CNN2d)


def test_bad_values_raise_value_errors():
    with pytest.raises(ValueError, match="bidirectional"):
        build_model("cnn2d", FEAT, C, bidirectional=True)
    with pytest.raises(ValueError, match="pool"):
        build_model("cnn2d", FEAT, C, pool="median")
    with pytest.raises(ValueError, match="kernel_size"):
        build_model("cnn2d", FEAT, C, kernel_size=4)
    with pytest.raises(ValueError, match="normalization"):
        build_model("cnn2d", FEAT, C, normalization="layernorm")
    with pytest.raises(ValueError, match="normalization"):
        build_model("gru", FEAT, C, normalization="groupnorm")
    with pytest.raises(ValueError, match="channels"):
        build_model("cnn2d", FEAT, C, channels=[])
    with pytest.raises(ValueError, match="dropout"):
        build_model("mlp", FEAT, C, dropout=1.0)
    with pytest.raises(ValueError, match="qcfs"):
        build_model("cnn2d", FEAT, C, qcfs=-1)
    with pytest.raises(TypeError, match="nonlinearity"):
        build_model("gru", FEAT, C, nonlinearity="relu")


def test_pool2d_pads_to_complete_windows():
    x = torch.arange(1.0, 16.0).reshape(1, 1, 3, 5)
    avg = Pool2d(2, "avg")(x)
    assert avg.shape == (1, 1, 2, 3)
    # the last row/column windows hold zeros, and every window divides by 4
    assert avg[0, 0, 1, 2].item() == 15.0 / 4
    assert avg[0, 0, 0, 0].item() == (1 + 2 + 6 + 7) / 4
    assert Pool2d(2, "max")(x)[0, 0, 1, 2].item() == 15.0


def test_qcfs_values_and_gradients():
    lam = torch.tensor(2.0, requires_grad=True)
    x = torch.tensor([-1.0, 0.1, 0.3, 0.76, 1.3, 2.5], requires_grad=True)
    y = qcfs(x, lam, levels=4)
    # lam/L * clamp(floor(x * L / lam + 0.5), 0, L) with L = 4, lam = 2: steps of 0.5
    assert y.tolist() == [0.0, 0.0, 0.5, 1.0, 1.5, 2.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]  # straight through inside [0, lam]
    assert lam.grad is not None and lam.grad.item() != 0.0
    act = QCFS(levels=8, init=3.0)
    assert act.lam.item() == 3.0 and act(torch.tensor([10.0])).item() == 3.0
    with pytest.raises(ValueError):
        QCFS(levels=0)


def test_ligru_scan_two_steps_by_hand():
    rec = torch.nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        rec.weight.zero_()
    # [B=1, T=2, 2H=2]: candidate currents (a) then update-gate currents (z)
    wx = torch.tensor([[[1.0, 0.0], [-1.0, 2.0]]])
    h = ligru_scan(wx, rec)
    z1, z2 = torch.sigmoid(torch.tensor(0.0)), torch.sigmoid(torch.tensor(2.0))
    h1 = (1 - z1) * 1.0
    h2 = z2 * h1 + (1 - z2) * 0.0
    torch.testing.assert_close(h.reshape(-1), torch.stack([h1, h2]))
