"""Contract for models (parametrised over ``MODELS`` and, for "snn", over ``NEURONS``)."""
from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F

from spikekws.models import MODELS, SNN, build_model
from spikekws.neurons import NEURONS

B, T, FEAT, C = 3, 12, 7, 4
SMALL = {"snn": {"hidden_sizes": [10, 10]}}

CASES = [(name, {}) for name in MODELS.list()] + [
    ("snn", {"neuron": n}) for n in NEURONS.list()
]
IDS = [f"{n}-{o.get('neuron', 'default')}" for n, o in CASES]


def _build(name: str, options: dict, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(name, FEAT, C, **{**SMALL.get(name, {}), **options})


def _input(seed: int = 1, batch: int = B, steps: int = T) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, steps, FEAT, generator=g) * 2.0


@pytest.mark.parametrize("name,options", CASES, ids=IDS)
def test_forward_backward(name, options):
    model = _build(name, options)
    model.train()
    x = _input().requires_grad_(True)
    out, rates = model(x)
    assert out.shape == (B, C)
    # spiking models report one rate per spiking layer; ANN baselines report none
    assert rates.dim() == 1 and rates.numel() == (len(model.layers) if getattr(model, "spiking", True) else 0)
    assert torch.isfinite(out).all()
    assert ((rates >= 0) & (rates <= 1)).all(), rates
    targets = torch.tensor([0, 1, 3])
    loss = F.cross_entropy(out, targets) + rates.sum()
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{pname} got no gradient"
            assert torch.isfinite(p.grad).all(), f"{pname} gradient not finite"


@pytest.mark.parametrize("name,options", CASES, ids=IDS)
def test_state_dict_roundtrip_gives_identical_outputs(name, options):
    model = _build(name, options, seed=0)
    model.train()
    with torch.no_grad():
        model(_input(seed=2))  # moves any running statistics away from their init
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    fresh = _build(name, options, seed=123)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    model.eval()
    fresh.eval()
    x = _input(seed=3)
    with torch.no_grad():
        a, ra = model(x)
        b, rb = fresh(x)
    assert torch.equal(a, b)
    assert torch.equal(ra, rb)


@pytest.mark.parametrize("name,options", CASES, ids=IDS)
def test_eval_is_deterministic(name, options):
    model = _build(name, options)
    model.eval()
    x = _input(seed=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        a, ra = model(x)
        b, rb = model(x)
    assert torch.equal(a, b) and torch.equal(ra, rb)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"eval forward changed {k}"


@pytest.mark.parametrize("name,options", CASES, ids=IDS)
def test_any_batch_size_and_length(name, options):
    model = _build(name, options).eval()
    x = _input(seed=5, batch=4, steps=9)
    with torch.no_grad():
        out4, _ = model(x)
        out1, _ = model(x[2:3])
        out_short, _ = model(x[:, :5])
    assert out4.shape == (4, C) and out_short.shape == (4, C)
    torch.testing.assert_close(out1, out4[2:3], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", MODELS.list())
def test_wrong_feature_size_raises(name):
    model = _build(name, {})
    with pytest.raises(ValueError, match=str(FEAT)):
        model(torch.randn(B, T, FEAT + 1))
    with pytest.raises(ValueError):
        model(torch.randn(T, FEAT))


def test_readout_gives_log_probabilities():
    model = _build("snn", {}).eval()
    with torch.no_grad():
        out, _ = model(_input())
    assert (out <= 0).all()
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(B), rtol=0, atol=1e-5)


def test_sparch_constructor():
    torch.manual_seed(0)
    model = SNN(input_shape=(8, 20, 7), layer_sizes=[16, 16, 5], neuron_type="RadLIF",
                dropout=0.1, normalization="batchnorm", use_bias=False, bidirectional=True,
                use_readout_layer=True)
    assert len(model.layers) == 2
    # bidirectional doubles each spiking layer's width; the next layer reads 2 * 16.
    assert [layer.out_features for layer in model.layers] == [32, 32]
    assert model.layers[1].linear.in_features == 32
    assert model.readout.linear.in_features == 32
    assert all(layer.linear.bias is None for layer in model.layers)
    x = torch.randn(8, 20, 7)
    out, rates = model(x)
    assert out.shape == (8, 5) and rates.shape == (2,)
    out.sum().backward()
    model.eval()
    with torch.no_grad():
        tr = model.trace(torch.randn(3, 11, 7))
    assert tr["layer0"].shape == (11, 3, 32) and tr["layer1"].shape == (11, 3, 32)
    assert tr["readout"].shape == (11, 3, 5)


def test_bidirectional_backward_half_sees_the_future():
    # Reversing time only changes the backward half of a bidirectional layer by the reversal.
    torch.manual_seed(0)
    model = SNN((1, 1, 7), [6, 3], neuron_type="lif", normalization="none",
                bidirectional=True).eval()
    x = _input(seed=6)
    with torch.no_grad():
        s = model.trace(x)["layer0"]
        s_rev = model.trace(x.flip(1))["layer0"]
    fwd, bwd = s[..., :6], s[..., 6:]
    fwd_r, bwd_r = s_rev[..., :6], s_rev[..., 6:]
    assert torch.equal(bwd, fwd_r.flip(0))
    assert torch.equal(fwd, bwd_r.flip(0))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_without_readout_returns_spike_counts(bidirectional):
    torch.manual_seed(0)
    model = SNN((1, 1, 7), [16, 5], neuron_type="lif", use_readout_layer=False,
                bidirectional=bidirectional, normalization="none").eval()
    assert model.readout is None
    assert len(model.layers) == 2
    assert model.layers[-1].hidden_size == 5 and model.layers[-1].out_features == 5
    x = _input(seed=7) * 3
    with torch.no_grad():
        counts, rates = model(x)
        tr = model.trace(x)
    assert counts.shape == (B, 5) and rates.shape == (2,)
    assert torch.equal(counts, tr["layer1"].sum(0))
    assert torch.equal(counts, counts.round())
    assert (counts >= 0).all() and (counts <= T).all()


def test_firing_rates_are_spike_probabilities_under_dropout():
    # A saturated layer spikes at every step; with dropout active in training mode its
    # firing rate must still be exactly 1 (rates measure spikes, not dropped-out activity).
    torch.manual_seed(0)
    model = SNN((1, 1, 4), [32, 3], neuron_type="if", threshold=1e-3, dropout=0.5,
                normalization="none")
    with torch.no_grad():
        model.layers[0].linear.weight.fill_(1.0)
    model.train()
    x = torch.ones(B, T, 4)
    _, rates = model(x)
    assert rates.tolist() == [1.0]
    model.eval()
    _, rates_eval = model(x)
    assert rates_eval.tolist() == [1.0]


def test_firing_rates_match_trace():
    torch.manual_seed(0)
    model = SNN((1, 1, 7), [12, 12, 3], neuron_type="adlif").eval()
    x = _input(seed=8)
    with torch.no_grad():
        _, rates = model(x)
        tr = model.trace(x)
    expected = torch.stack([tr["layer0"].mean(), tr["layer1"].mean()])
    torch.testing.assert_close(rates, expected, rtol=0, atol=0)


def test_bad_constructor_arguments():
    with pytest.raises(KeyError, match="available"):
        SNN((1, 1, 7), [8, 3], neuron_type="nosuchneuron")
    with pytest.raises(ValueError):
        SNN((1, 1, 7), [8, 0])
    with pytest.raises(ValueError, match="normalization"):
        SNN((1, 1, 7), [8, 3], normalization="groupnorm")
    with pytest.raises(KeyError, match="did you mean"):
        build_model("snnn", FEAT, C)
