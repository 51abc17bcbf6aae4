"""Spike encoders: values, shapes, determinism, registry."""
from __future__ import annotations

import pytest
import torch

from spikekws.features import ENCODERS, FEATURES, build_encoder, build_features, encoder_kwargs
from spikekws.features.encoders import DeltaEncoder, LatencyEncoder, RateEncoder, to_intensity


def test_registry():
    assert {"rate", "latency", "delta"} <= set(ENCODERS.list())
    assert isinstance(build_encoder("RATE"), RateEncoder)
    with pytest.raises(KeyError, match="latency"):
        build_encoder("latenci")
    with pytest.raises(TypeError, match="window_size"):
        build_encoder("latency", window_size=3)
    enc = build_encoder("latency", window=4, threshold=0.2, curve="log")
    assert build_encoder("latency", **encoder_kwargs(enc)).extra_repr() == enc.extra_repr()


@pytest.mark.parametrize("kwargs,arg", [
    ({"mode": "bernoulli"}, "mode"), ({"repeat": 0}, "repeat"), ({"gain": -1.0}, "gain"),
    ({"normalize": "zscore"}, "normalize"), ({"seed": -2}, "seed")])
def test_rate_bad_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        RateEncoder(**kwargs)


@pytest.mark.parametrize("p", [0.0, 0.13, 0.25, 0.5, 0.77, 1.0])
@pytest.mark.parametrize("steps", [1, 7, 40])
def test_deterministic_rate_count_is_round_intensity_times_steps(p, steps):
    x = torch.full((2, steps, 3), p)
    spikes = RateEncoder(mode="deterministic", normalize="none")(x)
    assert spikes.shape == x.shape
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    expected = int(torch.floor(torch.tensor(p * steps + 0.5, dtype=torch.float64)))
    assert torch.all(spikes.sum(1) == expected)


def test_deterministic_rate_repeat_and_spreading():
    x = torch.tensor([[0.5, 0.25]])  # [T=1, F=2]
    s = RateEncoder(mode="deterministic", repeat=8, normalize="none")(x)
    assert s.shape == (8, 2)
    assert s[:, 0].sum() == 4 and s[:, 1].sum() == 2
    assert s[:, 0].tolist() == [1, 0, 1, 0, 1, 0, 1, 0]  # evenly spread


def test_poisson_rate_is_seeded_and_matches_probability():
    x = torch.full((4, 500, 2), 0.3)
    a = RateEncoder(normalize="none", seed=7)(x)
    b = RateEncoder(normalize="none", seed=7)(x)
    c = RateEncoder(normalize="none", seed=8)(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert abs(a.mean().item() - 0.3) < 0.03
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(RateEncoder(normalize="none")(x, generator=g1),
                       RateEncoder(normalize="none")(x, generator=g2))
    assert RateEncoder(normalize="none", seed=1)(torch.zeros(1, 50, 2)).sum() == 0
    assert RateEncoder(normalize="none", seed=1)(torch.ones(1, 50, 2)).sum() == 100


def test_latency_one_spike_per_channel_and_ordering():
    intensities = torch.tensor([[0.05, 0.2, 0.4, 0.6, 0.8, 1.0]])  # [T=1, F=6]
    enc = LatencyEncoder(window=11, threshold=0.1, normalize="none")
    s = enc(intensities)
    assert s.shape == (11, 6)
    assert s.sum(0).tolist() == [0, 1, 1, 1, 1, 1]  # below threshold: silent
    first = s.argmax(0)[1:]
    assert torch.all(first[:-1] > first[1:])  # stronger fires earlier
    assert first[-1] == 0 and first.tolist() == [8, 6, 4, 2, 0]  # round((1 - I) * 10)
    log_first = LatencyEncoder(window=11, threshold=0.1, curve="log", normalize="none")(intensities)
    log_first = log_first.argmax(0)[1:]
    assert torch.all(log_first[:-1] > log_first[1:])
    assert log_first[0] == 7  # round(10 * ln 0.2 / ln 0.1)


def test_latency_per_frame_windows_batched():
    x = torch.rand(3, 5, 4)
    enc = LatencyEncoder(window=6)
    s = enc(x)
    assert s.shape == (3, 30, 4)
    per_window = s.view(3, 5, 6, 4).sum(2)
    assert torch.all(per_window <= 1)
    steps = enc.spike_steps(x)
    assert torch.equal(per_window, (steps >= 0).float())
    assert torch.equal(enc(x[1]), s[1])  # unbatched == batched


def test_delta_reconstructs_within_threshold():
    torch.manual_seed(0)
    thr = 0.1
    steps = torch.rand(2, 200, 5) * 2 * thr - thr  # |change| <= threshold per step
    x = torch.cumsum(steps, dim=1)
    enc = DeltaEncoder(threshold=thr)
    s = enc(x)
    assert s.shape == (2, 200, 10) and set(s.unique().tolist()) <= {0.0, 1.0}
    assert torch.all(s[..., :5] * s[..., 5:] == 0)  # never up and down at once
    rec = enc.reconstruct(s)
    assert (rec - x).abs().max() < thr + 1e-6


def test_delta_first_initial_and_direction():
    x = torch.tensor([[1.0], [1.0], [1.35], [1.35], [1.0]])
    enc = DeltaEncoder(threshold=0.1, initial="first")
    s = enc(x)
    assert s[:2].sum() == 0  # starts at the first frame: no catch-up spikes
    assert s[2, 0] == 1 and s[2, 1] == 0 and s[4, 1] == 1
    rec = enc.reconstruct(s.unsqueeze(0), initial=x[0].unsqueeze(0))[0]
    assert (rec[:2] - x[:2]).abs().max() < 1e-6
    assert DeltaEncoder(threshold=0.1)(torch.zeros(1, 10, 3)).sum() == 0


def test_to_intensity_modes():
    x = torch.tensor([[[-2.0, 0.0], [2.0, 1.0]]])
    m = to_intensity(x, "minmax")
    assert m.min() == 0 and m.max() == 1 and m[0, 0, 1] == 0.5
    assert torch.equal(to_intensity(torch.ones(1, 3, 2), "minmax"), torch.zeros(1, 3, 2))
    assert torch.equal(to_intensity(x, "clamp"), x.clamp(0, 1))
    with pytest.raises(ValueError, match="normalize"):
        to_intensity(x, "bogus")


def test_encoders_on_logmel_features():
    wave = torch.randn(2, 4000) * 0.1
    feats = build_features("logmel", sample_rate=8000, n_mels=16)(wave)
    for name, factor, mult in (("rate", 1, 1), ("latency", 10, 1), ("delta", 1, 2)):
        enc = build_encoder(name)
        s = enc(feats)
        assert s.shape == (2, feats.shape[1] * factor, 16 * mult)
        assert enc.time_factor == factor and enc.num_outputs(16) == 16 * mult
        assert set(s.unique().tolist()) <= {0.0, 1.0}


def test_identity_frontend_registered():
    ident = build_features("none", sample_rate=16000)
    x = torch.randint(0, 3, (2, 5, 4))
    assert "none" in FEATURES.list()
    out = ident(x)
    assert out.dtype == torch.float32 and torch.equal(out, x.float())
