"""The spiking global-local hybrid ``spikescr``: wiring, causality, options, errors."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from spikekws.models import build_model
from spikekws.models.spikescr import SpikeAttentionProduct, SpikeSCR

F_IN, C = 6, 3


def _model(**kw) -> SpikeSCR:
    torch.manual_seed(0)
    kw.setdefault("hidden_sizes", [8, 8])
    kw.setdefault("heads", 2)
    return build_model("spikescr", F_IN, C, **kw)


def _x(seed=0, b=2, t=10):
    return torch.randn(b, t, F_IN, generator=torch.Generator().manual_seed(seed)) * 3


def test_hidden_sizes_give_width_and_depth_and_options_win():
    m = _model(hidden_sizes=[16, 16, 16], heads=4)
    assert (m.dim, m.depth) == (16, 3) and len(m.layers) == 4
    m = _model(hidden_sizes=[16, 16], dim=12, depth=1, heads=3)
    assert (m.dim, m.depth, m.heads) == (12, 1, 3)
    _, rates = m(_x())
    assert rates.shape == (2,)


def test_attention_product_by_hand():
    q = torch.tensor([1.0, 0.0, 1.0]).reshape(1, 1, 3, 1)
    k = torch.tensor([1.0, 1.0, 0.0]).reshape(1, 1, 3, 1)
    v = torch.tensor([1.0, 0.0, 1.0]).reshape(1, 1, 3, 1)
    # scores[t, tau] = q_t k_tau; A_t = sum_tau scores v_tau / n_t
    full = SpikeAttentionProduct(causal=False)(q, k, v).flatten().tolist()
    assert full == pytest.approx([1 / 3, 0.0, 1 / 3])
    causal = SpikeAttentionProduct(causal=True)(q, k, v).flatten().tolist()
    assert causal == pytest.approx([1.0, 0.0, 1 / 3])


def _final_spikes(model, x):
    got = {}
    h = model.blocks[-1].out_lif.register_forward_hook(lambda m, i, o: got.update(s=o[0]))
    with torch.no_grad():
        model(x)
    h.remove()
    return got["s"]  # [T, B, D]


def test_causal_model_ignores_the_future():
    model = _model(causal=True).eval()
    x = _x(1)
    x2 = x.clone()
    x2[:, 6:] = torch.randn(2, 4, F_IN) * 5
    a, b = _final_spikes(model, x), _final_spikes(model, x2)
    assert torch.equal(a[:6], b[:6])
    ref = _model(causal=False).eval()
    for mod in ref.modules():  # make the non-causal model fire so that the future matters
        if hasattr(mod, "v_threshold"):
            mod.v_threshold = 0.05
    assert not torch.equal(_final_spikes(ref, x)[:6], _final_spikes(ref, x2)[:6])


def test_every_weight_after_the_embedding_sees_binary_spikes():
    model = _model().eval()
    seen = {}
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Linear, nn.Conv1d)):
            mod.register_forward_hook(lambda m, i, o, n=name: seen.update({n: i[0]}))
    with torch.no_grad():
        model(_x(2))
    assert "embed.conv" in seen and len(seen) > 5
    for name, inp in seen.items():
        binary = bool(((inp == 0) | (inp == 1)).all())
        assert binary == (name != "embed.conv"), name


def test_rates_are_mean_spike_probabilities_per_layer():
    model = _model(hidden_sizes=[8]).eval()
    spikes = {}
    for name, mod in model.named_modules():
        if name.endswith("lif") and hasattr(mod, "alpha"):
            mod.register_forward_hook(lambda m, i, o, n=name: spikes.update({n: o[0]}))
    with torch.no_grad():
        _, rates = model(_x(3))
    emb = spikes.pop("embed.lif")
    block = torch.cat([s.flatten() for s in spikes.values()])
    assert len(spikes) == 7  # q, k, v, attention, mid, depthwise, out
    torch.testing.assert_close(rates, torch.stack([emb.mean(), block.mean()]))


def test_norm_momentum_reaches_every_batch_norm():
    m = _model(norm_momentum=0.3)
    bns = [b for b in m.modules() if isinstance(b, nn.BatchNorm1d)]
    assert len(bns) == 1 + 2 * 7 + 1 and all(b.momentum == 0.3 for b in bns)


def test_mean_readout_gives_logits_and_li_readout_log_probabilities():
    m = _model(readout="mean").eval()
    out, _ = m(_x())
    assert out.shape == (2, C) and m.li_readout is None
    m = _model().eval()
    out, _ = m(_x())
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(2))


def test_recurrent_neuron_name_maps_to_feed_forward_counterpart(caplog):
    m = _model(neuron="radlif")
    assert m.neuron == "adlif"
    assert not any("recurrent_weight" in n for n, _ in m.named_parameters())
    assert "adlif" in caplog.text


def test_neuron_options_reach_every_neuron():
    m = _model(dt=0.02, tau_mem=0.1, threshold=0.7, surrogate="atan")
    neurons = [mod for mod in m.modules() if hasattr(mod, "v_threshold") and hasattr(mod, "alpha")]
    assert len(neurons) == 1 + 2 * 7
    assert all(n.dt == 0.02 and n.v_threshold == 0.7 for n in neurons)
    assert all(type(n.surrogate).__name__ == "ATan" for n in neurons)
    assert m.li_readout.li.dt == 0.02


@pytest.mark.parametrize("kw,match", [
    (dict(hidden_sizes=[8, 16]), "hidden_sizes"),
    (dict(dim=10, heads=4), "divisible"),
    (dict(readout="max"), "readout"),
    (dict(bidirectional=True), "bidirectional"),
    (dict(kernel_size=0), "kernel_size"),
    (dict(dropout=1.0), "dropout"),
    (dict(normalization="group"), "normalization"),
    (dict(norm_momentum=0.0), "norm_momentum"),
])
def test_bad_options(kw, match):
    with pytest.raises(ValueError, match=match):
        _model(**kw)
    with pytest.raises(KeyError, match="available"):
        _model(neuron="nope")
