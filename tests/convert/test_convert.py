"""ANN -> SNN conversion: BN folding, int8 quantisation, IF rate code, calibration,
float vs integer simulation, and ``spikekws convert`` on a tiny trained run."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spikekws.cli import main
from spikekws.convert import (build_snn, calibrate, clip_floor, collect_preactivations,
                              fold_batchnorm, from_model, if_spike_counts, input_scale_for,
                              quantize, quantize_tensor, simulate, simulate_integer,
                              thresholds_from_samples)
from spikekws.models import build_model
from spikekws.models.ann import LastDimBatchNorm

FRAMES, FEAT, C = 12, 10, 5
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _trained_like(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Give BatchNorms non-trivial running statistics and affine parameters."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.3)
        model.train()
        for _ in range(3):
            model(x)
    return model.eval()


def _cnn(seed: int = 0, **options) -> nn.Module:
    torch.manual_seed(seed)
    opts = {"channels": [4, 8], "hidden_sizes": [12], "dropout": 0.0, **options}
    return build_model("cnn2d", FEAT, C, **opts)


def _data(n: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, FRAMES, FEAT, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def cnn_and_data():
    x = _data()
    return _trained_like(_cnn(), x), x


# --------------------------------------------------------------------------- folding
def test_fold_batchnorm_conv_and_linear_exact():
    g = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(3, 6, 3, padding=1).double()
    bn = nn.BatchNorm2d(6).double()
    lin = nn.Linear(5, 4, bias=False).double()
    bn1 = LastDimBatchNorm(4).double()
    for m in (bn, bn1):
        m.running_mean.copy_(torch.randn(m.num_features, generator=g, dtype=torch.float64))
        m.running_var.copy_(torch.rand(m.num_features, generator=g, dtype=torch.float64) + 0.1)
        with torch.no_grad():
            m.weight.copy_(torch.randn(m.num_features, generator=g, dtype=torch.float64))
            m.bias.copy_(torch.randn(m.num_features, generator=g, dtype=torch.float64))
    bn.eval(), bn1.eval()
    x = torch.randn(2, 3, 7, 6, generator=g, dtype=torch.float64)
    w, b = fold_batchnorm(conv.weight, conv.bias, bn)
    with torch.no_grad():
        torch.testing.assert_close(F.conv2d(x, w, b, padding=1), bn(conv(x)), rtol=0, atol=1e-12)
        xl = torch.randn(2, 9, 5, generator=g, dtype=torch.float64)
        w, b = fold_batchnorm(lin.weight, None, bn1)
        torch.testing.assert_close(F.linear(xl, w, b), bn1(lin(xl)), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["cnn2d", "cnn2d-qcfs", "mlp"])
def test_converted_ann_equals_the_model(kind):
    x = _data()
    if kind == "mlp":
        torch.manual_seed(0)
        model = build_model("mlp", FEAT, C, hidden_sizes=[16, 8], dropout=0.2)
    else:
        model = _cnn(qcfs=4 if kind.endswith("qcfs") else 0, dropout=0.3)
    model = _trained_like(model, x)
    net = from_model(model, x[:2])
    assert [layer.activation for layer in net.layers][-1] is None
    assert all(layer.spiking for layer in net.layers[:-1])
    with torch.no_grad():
        torch.testing.assert_close(net(x), model(x)[0], rtol=1e-5, atol=1e-5)


def test_non_convertible_models_raise():
    x = _data(4)
    with pytest.raises(ValueError, match="max pooling"):
        from_model(_cnn(pool="max").eval(), x)
    with pytest.raises(ValueError, match="cannot be converted"):
        from_model(build_model("gru", FEAT, C, hidden_sizes=[4]), x)
    with pytest.raises(ValueError, match="cannot be converted"):
        from_model(build_model("gru", FEAT, C, hidden_sizes=[4]), x, name="gru")
    with pytest.raises(ValueError, match="LayerNorm"):
        from_model(build_model("mlp", FEAT, C, hidden_sizes=[4], normalization="layernorm"), x)


# --------------------------------------------------------------------------- quantisation
@pytest.mark.parametrize("per_channel", [False, True])
def test_int8_quantisation_error_bounds(per_channel):
    g = torch.Generator().manual_seed(3)
    magnitudes = torch.tensor([1e-3, 0.1, 1.0, 3.0, 10.0, 0.5]).reshape(6, 1, 1, 1)
    w = torch.randn(6, 4, 3, 3, generator=g) * magnitudes
    w[5] = 0.0  # a dead channel
    q, s = quantize_tensor(w, per_channel=per_channel)
    assert q.dtype == torch.int8 and s.shape == (6,)
    assert int(q.abs().max()) <= 127
    view = s.reshape(-1, 1, 1, 1)
    err = (w - q.float() * view).abs()
    assert (err <= view / 2 * (1 + 1e-6)).all()
    amax = w.abs().reshape(6, -1).amax(1) if per_channel else w.abs().max().expand(6)
    live = amax > 0
    # scales are max|w| / 127 rounded up by less than 2**-15 (relative)
    ratio = s[live] / (amax[live] / 127)
    assert (ratio >= 1).all() and (ratio <= 1 + 2 ** -15).all()
    if per_channel:
        assert (q.reshape(6, -1).abs().amax(1)[live] >= 126).all()
        assert (q[5] == 0).all()
    # dequantised weights are exact in float32 (16-bit scales times 8-bit codes)
    assert torch.equal((q.double() * view.double()).float(), q.float() * view)


def test_per_channel_is_never_worse_than_per_tensor():
    g = torch.Generator().manual_seed(4)
    w = torch.randn(8, 20, generator=g) * torch.logspace(-2, 1, 8).reshape(8, 1)
    errs = {}
    for pc in (False, True):
        q, s = quantize_tensor(w, per_channel=pc)
        errs[pc] = ((w - q.float() * s.reshape(-1, 1)) ** 2).mean()
    assert errs[True] < errs[False]


def test_input_scale_is_a_covering_power_of_two():
    x = torch.tensor([0.3, -5.2, 1.0])
    s = input_scale_for(x)
    assert s == 2.0 ** -4 and 127 * s >= 5.2 > 127 * s / 2


# --------------------------------------------------------------------------- IF rate code
@pytest.mark.parametrize("shift", [False, True])
@pytest.mark.parametrize("timesteps", [1, 7, 64])
def test_if_spike_count_is_clip_floor(shift, timesteps):
    # multiples of 2**-10 keep the membrane sums exact, so the comparison is exact too
    k = torch.arange(-300, 2600, 7)
    x = k.double() / 1024
    theta = 1.5
    counts = if_spike_counts(x, theta, timesteps, shift=shift)
    phi = 0.5 if shift else 0.0
    expected = torch.clamp(torch.floor(timesteps * x / theta + phi), 0, timesteps).long()
    assert torch.equal(counts, expected)
    assert torch.equal(counts, clip_floor(x, theta, timesteps, shift, counts=True).long())
    assert (counts[x <= 0] == 0).all() and (counts[x >= theta] == timesteps).all()


def test_first_layer_spikes_follow_clip_floor(cnn_and_data):
    model, x = cnn_and_data
    net = from_model(model, x)
    thresholds = calibrate(net, x, "max")
    snn = build_snn(net, thresholds)
    T = 20
    res = simulate(snn, x, T, dtype=torch.float64)
    _, z = net.forward(x.double(), return_preactivations=True)
    expected = clip_floor(z[0], thresholds[0], T, counts=True).long()
    assert (res.spike_counts[0] != expected).float().mean() < 1e-3  # only float ties may differ


def test_qcfs_network_at_t_equals_levels_reproduces_the_activation():
    x = _data()
    model = _trained_like(_cnn(qcfs=4), x)
    net = from_model(model, x)
    thresholds = calibrate(net, x, "qcfs")
    assert thresholds == [layer.qcfs_lambda for layer in net.spiking_layers]
    snn = build_snn(net, thresholds, shift=True)
    res = simulate(snn, x, 4, dtype=torch.float64)
    _, z = net.forward(x.double(), return_preactivations=True)
    layer0 = net.spiking_layers[0]
    rate_code = res.spike_counts[0].double() * (thresholds[0] / 4)
    mismatch = (rate_code - layer0.activate(z[0])).abs() > 1e-9
    assert mismatch.float().mean() < 1e-3


# --------------------------------------------------------------------------- calibration
def test_calibration_methods(cnn_and_data):
    model, x = cnn_and_data
    net = from_model(model, x)
    samples = collect_preactivations(net, x)
    top = thresholds_from_samples(net, samples, "max")
    p = thresholds_from_samples(net, samples, "percentile", percentile=99.0)
    T = 8
    mse = thresholds_from_samples(net, samples, "mse", timesteps=T)
    _, zs = net.forward(x, return_preactivations=True)
    for i, z in enumerate(zs):
        assert top[i] == pytest.approx(float(torch.relu(z).max()), rel=1e-6)
        assert 0 < p[i] <= top[i]

        def cost(theta):
            return float(((torch.relu(z) - clip_floor(z, theta, T)) ** 2).mean())

        assert cost(mse[i]) <= min(cost(top[i]), cost(p[i])) + 1e-9
    # the error-optimal threshold clips more when fewer steps are available
    assert thresholds_from_samples(net, samples, "mse", timesteps=2)[0] < \
        thresholds_from_samples(net, samples, "mse", timesteps=256)[0]
    with pytest.raises(ValueError, match="time steps"):
        calibrate(net, x, "mse")
    with pytest.raises(ValueError, match="QCFS"):
        calibrate(net, x, "qcfs")
    with pytest.raises(KeyError, match="available"):
        calibrate(net, x, "median")


# --------------------------------------------------------------------------- simulation
@pytest.mark.parametrize("quantized", [False, True])
def test_snn_approaches_the_ann_as_t_grows(cnn_and_data, quantized):
    model, x = cnn_and_data
    net = from_model(model, x)
    if quantized:
        net = quantize(net, per_channel=True, calibration=x)
    snn = build_snn(net, calibrate(net, x, "max"))
    ann = net(x)
    errs = [float((simulate(snn, x, T).outputs - ann).abs().mean()) for T in (8, 64, 512)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.05 * float(ann.abs().mean())
    agree = (simulate(snn, x, 512).outputs.argmax(1) == ann.argmax(1)).float().mean()
    assert agree >= 0.9


@pytest.mark.parametrize("kind,shift,per_channel", [
    ("cnn2d", False, False), ("cnn2d", True, True), ("cnn2d-qcfs", True, False), ("mlp", False, True),
])
def test_integer_simulation_is_bit_exact(kind, shift, per_channel):
    x = _data(16)
    if kind == "mlp":
        torch.manual_seed(0)
        model = build_model("mlp", FEAT, C, hidden_sizes=[16, 8])
    else:
        model = _cnn(qcfs=4 if kind.endswith("qcfs") else 0)
    model = _trained_like(model, x)
    qnet = quantize(from_model(model, x), per_channel=per_channel, calibration=x)
    method = "qcfs" if kind.endswith("qcfs") else "mse"
    snn = build_snn(qnet, calibrate(qnet, x, method, timesteps=24, shift=shift), shift=shift)
    assert snn.integer
    ref = simulate(snn, x, 24, dtype=torch.float64, return_spikes=True)
    res = simulate_integer(snn, x, 24, return_spikes=True)
    assert all(s.dtype == torch.long for s in (snn.layers[0].threshold_int, snn.layers[0].bias_int))
    assert len(res.spikes) == len(qnet.spiking_layers)
    for a, b in zip(ref.spikes, res.spikes):
        assert torch.equal(a, b)
    assert sum(int(s.sum()) for s in res.spikes) > 0  # not vacuous
    torch.testing.assert_close(res.outputs, ref.outputs, rtol=1e-6, atol=1e-6)
    assert torch.equal(res.firing_rates, ref.firing_rates)
    # float32 may flip spikes on exact ties but tracks the integer network closely
    fast = simulate(snn, x, 24)
    assert (fast.outputs.argmax(1) == res.outputs.argmax(1)).float().mean() >= 0.9


def test_simulation_input_checks(cnn_and_data):
    model, x = cnn_and_data
    net = from_model(model, x)
    snn = build_snn(net, calibrate(net, x, "max"))
    with pytest.raises(ValueError, match="expects inputs"):
        simulate(snn, x[:, :-1], 4)
    with pytest.raises(ValueError, match="timesteps"):
        simulate(snn, x, 0)
    with pytest.raises(ValueError, match="int8"):
        simulate_integer(snn, x, 4)
    with pytest.raises(ValueError, match="thresholds"):
        build_snn(net, [1.0])


# --------------------------------------------------------------------------- CLI
@pytest.fixture
def _restore_logging():
    logger = logging.getLogger("spikekws")
    state = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers, logger.propagate = state[0], state[2]
    logger.setLevel(state[1])


@pytest.fixture(scope="module")
def tiny_cnn_run(tmp_path_factory) -> Path:
    from spikekws.config import load_config
    from spikekws.data.synth import generate
    from spikekws.train.runner import train_run

    root = tmp_path_factory.mktemp("convert-data")
    data = generate(root / "synth", words=["no", "up", "yes"], speakers=4, workers=2,
                    progress=False)
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "cnn_mfcc.yaml", [
        f"data.root={data}", "train.epochs=2", "train.batch_size=4", "train.device=cpu",
        "train.progress=false", "model.options.channels=[4,8]", "model.hidden_sizes=[8]"])
    run = root / "run"
    train_run(cfg, run)
    return run


def test_cli_convert_writes_the_table(tiny_cnn_run, capsys, _restore_logging):
    rc = main(["-q", "convert", str(tiny_cnn_run), "--timesteps", "4,8", "--device", "cpu",
               "--no-progress"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "ANN int8" in out and "| SNN | 8 |" in out
    rep = json.loads((tiny_cnn_run / "conversion.json").read_text())
    assert [r["model"] for r in rep["rows"]] == ["ANN float32", "ANN int8", "SNN", "SNN"]
    assert [r["timesteps"] for r in rep["rows"][2:]] == [4, 8]
    for r in rep["rows"]:
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["f1_micro"] <= 1
    assert rep["calibration"] == "mse" and rep["shift"] is False
    assert rep["fold_max_abs_error"] < 1e-4
    assert "| ANN float32 |" in (tiny_cnn_run / "conversion.md").read_text()
    assert (tiny_cnn_run / "conversion.png").read_bytes()[:8] == PNG_MAGIC


def test_cli_convert_integer_shift_per_channel(tiny_cnn_run, capsys, _restore_logging):
    rc = main(["-q", "convert", str(tiny_cnn_run), "--timesteps", "6", "--calibration",
               "percentile", "--shift", "--per-channel", "--integer", "--device", "cpu",
               "--no-progress"])
    _, err = capsys.readouterr()
    assert rc == 0, err
    rep = json.loads((tiny_cnn_run / "conversion.json").read_text())
    assert rep["simulation"] == "integer" and rep["shift"] and rep["per_channel"]
    assert rep["percentile"] == 99.9 and len(rep["rows"]) == 3


@pytest.mark.parametrize("argv,message", [
    (["--timesteps", "4,x"], "timesteps"),
    (["--timesteps", "0"], "positive"),
    (["--calibration", "qcfs"], "QCFS"),
])
def test_cli_convert_user_errors(tiny_cnn_run, capsys, _restore_logging, argv, message):
    rc = main(["-q", "convert", str(tiny_cnn_run), "--device", "cpu", "--no-progress", *argv])
    _, err = capsys.readouterr()
    assert rc == 2
    assert err.startswith("spikekws: error:") and message in err and "Traceback" not in err


def test_cli_convert_missing_run(tmp_path, capsys, _restore_logging):
    rc = main(["-q", "convert", str(tmp_path / "nope")])
    _, err = capsys.readouterr()
    assert rc == 2 and "not found" in err
