"""Augmentation: functional values, spec validation, dataset wiring (train split only)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spikekws.data import build_dataset
from spikekws.data.augment import (
    AUGMENT_KEYS,
    Augment,
    SpecAugment,
    add_noise,
    apply_gain,
    augment_events,
    build_augment,
    coloured_noise,
    mask_time_freq,
    speed_perturb,
    time_shift,
    time_stretch,
    vtlp_warp,
    warp_frequencies,
)
from spikekws.data.spikes import write_spike_h5


def sine(freq: float, n: int = 8000, sr: int = 8000) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float64) / sr
    return (0.5 * torch.sin(2 * math.pi * freq * t)).float()


# --------------------------------------------------------------------------- functional
@pytest.mark.parametrize("snr", [-5.0, 0.0, 10.0, 30.0])
def test_add_noise_hits_the_snr(snr):
    wave = sine(440.0)
    noise = coloured_noise(wave.numel(), "white", np.random.default_rng(0))
    out = add_noise(wave, noise, snr)
    added = out - wave
    measured = 10 * math.log10(wave.double().pow(2).mean() / added.double().pow(2).mean())
    assert abs(measured - snr) < 1e-3
    assert torch.equal(add_noise(torch.zeros(10), torch.ones(10), snr), torch.zeros(10))


def test_coloured_noise_spectra():
    rng = np.random.default_rng(1)
    for colour in ("white", "pink", "brown"):
        n = coloured_noise(16384, colour, rng)
        assert abs(n.std().item() - 1.0) < 1e-3
    pink = torch.fft.rfft(coloured_noise(16384, "pink", rng).double()).abs() ** 2
    low, high = pink[10:100].mean(), pink[4000:5000].mean()
    assert low > 10 * high  # 1/f: far more power at low frequencies
    with pytest.raises(ValueError, match="colour"):
        coloured_noise(10, "blue", rng)


def test_time_shift_and_gain():
    x = torch.arange(1.0, 6.0)
    assert time_shift(x, 2).tolist() == [0, 0, 1, 2, 3]
    assert time_shift(x, -2).tolist() == [3, 4, 5, 0, 0]
    assert time_shift(x, 9).sum() == 0 and torch.equal(time_shift(x, 0), x)
    assert torch.allclose(apply_gain(torch.tensor([0.1, -0.2]), 20 * math.log10(2)),
                          torch.tensor([0.2, -0.4]))
    assert apply_gain(torch.tensor([0.9]), 12).item() == 1.0  # clipped


def test_speed_perturb_changes_length_and_pitch():
    wave = sine(500.0)
    fast = speed_perturb(wave, 1.25)
    assert fast.numel() == math.ceil(8000 / 1.25)
    spec = torch.fft.rfft(fast.double()).abs()
    peak_hz = spec.argmax().item() * 8000 / fast.numel()
    assert abs(peak_hz - 625.0) < 5
    assert torch.equal(speed_perturb(wave, 1.001), wave)  # rounds to 1.00


def _peaks(wave: torch.Tensor, sr: int, count: int):
    """The ``count`` strongest spectral peaks (Hz) of the middle of ``wave``."""
    mid = wave[1000:-1000].double().numpy()
    spec = np.abs(np.fft.rfft(mid * np.hanning(mid.size)))
    freqs = np.fft.rfftfreq(mid.size, 1 / sr)
    found = []
    for i in np.argsort(spec)[::-1]:
        if all(abs(freqs[i] - f) > 50 for f in found):
            found.append(freqs[i])
        if len(found) == count:
            return sorted(found)
    return sorted(found)


def test_warp_frequencies_is_the_piecewise_linear_vtlp_map():
    f = torch.linspace(0, 4000, 401, dtype=torch.float64)
    for alpha in (0.85, 0.9, 1.1, 1.2):
        w = warp_frequencies(f, alpha, 4000.0)
        f0 = 0.8 * 4000 * min(alpha, 1.0) / alpha
        low = f <= f0
        assert torch.allclose(w[low], alpha * f[low])
        assert w[0] == 0 and abs(w[-1].item() - 4000.0) < 1e-9  # band edges stay
        assert (w[1:] > w[:-1]).all()  # monotonic, hence invertible
        # straight line above f0
        slope = (w[~low][1:] - w[~low][:-1]) / (f[~low][1:] - f[~low][:-1])
        assert torch.allclose(slope, slope[0].expand_as(slope))
    assert torch.equal(warp_frequencies(f, 1.0, 4000.0), f)
    with pytest.raises(ValueError, match="vtlp"):
        warp_frequencies(f, 0.0, 4000.0)


@pytest.mark.parametrize("alpha", [0.9, 1.1, 1.15])
def test_vtlp_moves_partials_and_keeps_duration(alpha):
    sr = 8000
    wave = sine(1000.0, sr=sr) + 0.6 * sine(2300.0, sr=sr)
    out = vtlp_warp(wave, alpha, sr)
    assert out.shape == wave.shape and out.dtype == wave.dtype
    expect = sorted(warp_frequencies(torch.tensor([1000.0, 2300.0], dtype=torch.float64),
                                     alpha, sr / 2).tolist())
    got = _peaks(out, sr, 2)
    assert got == pytest.approx(expect, abs=3.0)  # spectral resolution 1.3 Hz
    # the energy stays of the same order (interpolated magnitudes, no silence, no blow-up)
    ratio = out.double().pow(2).mean() / wave.double().pow(2).mean()
    assert 0.5 < ratio.item() < 1.5
    # timing unchanged: a burst stays where it was
    burst = torch.zeros(8000)
    burst[3000:4000] = sine(1500.0, n=1000, sr=sr)
    env = vtlp_warp(burst, alpha, sr).abs()
    inside = env[3000:4000].pow(2).sum()
    assert inside / env.pow(2).sum() > 0.95


def test_vtlp_identity_batch_and_augment_key():
    wave = sine(700.0)
    assert torch.equal(vtlp_warp(wave, 1.0, 8000), wave)
    batch = torch.stack([wave, sine(1200.0)])
    out = vtlp_warp(batch, 1.1, 8000)
    assert torch.allclose(out[1], vtlp_warp(batch[1], 1.1, 8000), atol=1e-6)
    aug = build_augment({"vtlp": 0.1})
    assert aug.vtlp == pytest.approx((0.9, 1.1)) and aug.has_wave
    a = aug.wave(wave, 8000, 8000, aug.generator(0, 1))
    assert torch.equal(a, aug.wave(wave, 8000, 8000, aug.generator(0, 1)))
    assert not torch.equal(a, wave)
    with pytest.raises(ValueError, match="vtlp"):
        build_augment({"vtlp": [1.2, 0.8]})
    with pytest.raises(ValueError, match="vtlp"):
        build_augment({"vtlp": [0.0, 1.1]})


@pytest.mark.parametrize("rate", [0.8, 1.25])
def test_time_stretch_keeps_pitch_and_scales_timing(rate):
    sr = 8000
    wave = sine(1000.0, sr=sr) + 0.6 * sine(2300.0, sr=sr)
    out = time_stretch(wave, rate, sr)
    assert out.shape == (round(8000 / rate),) and out.dtype == wave.dtype
    assert _peaks(out, sr, 2) == pytest.approx([1000.0, 2300.0], abs=3.0)
    ratio = out[500:-500].double().pow(2).mean() / wave.double().pow(2).mean()
    assert 0.5 < ratio.item() < 1.5
    # the stretched sound reaches the last samples: no zero-padded tail
    assert out[-4:].abs().max() > 0.05 * wave.abs().max()
    # a burst at 0.25-0.375 s moves to 0.25 / rate - 0.375 / rate s
    burst = torch.zeros(8000)
    burst[2000:3000] = sine(1500.0, n=1000, sr=sr)
    env = time_stretch(burst, rate, sr).double().pow(2)
    lo, hi = round(2000 / rate), round(3000 / rate)
    assert env[lo:hi].sum() / env.sum() > 0.95
    assert env[lo + 100:hi - 100].min() > 0  # sound throughout, no gap


def test_time_stretch_identity_and_key():
    wave = sine(700.0)
    assert torch.equal(time_stretch(wave, 1.0, 8000), wave)
    with pytest.raises(ValueError, match="tempo"):
        time_stretch(wave, 0.0, 8000)
    import warnings
    with warnings.catch_warnings():  # istft is given the frames to cover every output sample
        warnings.simplefilter("error")
        time_stretch(torch.randn(8000), 0.8, 8000)
    for n in (10, 63, 300):  # shorter than a hop, a window, a few windows
        assert time_stretch(torch.randn(n), 0.8, 8000).shape == (round(n / 0.8),)
        assert time_stretch(torch.randn(3, n), 1.25, 8000).shape == (3, round(n / 1.25))
        assert vtlp_warp(torch.randn(2, n), 0.9, 8000).shape == (2, n)
    aug = build_augment({"tempo": [0.8, 1.25]})
    assert aug.tempo == (0.8, 1.25) and aug.has_wave and "tempo" in aug.active_keys()
    out = aug.wave(wave, 8000, 8000, aug.generator(0, 2))
    assert out.shape == (8000,) and not torch.equal(out, wave)


def test_mask_time_freq():
    x = torch.ones(50, 20)
    rng = np.random.default_rng(0)
    out = mask_time_freq(x, rng, time_mask=5, time_masks=2, freq_mask=3, freq_masks=1)
    zero_rows = (out == 0).all(1).sum().item()
    zero_cols = (out == 0).all(0).sum().item()
    assert zero_rows <= 10 and zero_cols <= 3 and (out == 0).any()
    assert torch.equal(mask_time_freq(x, rng), x)  # widths 0: nothing masked


def test_augment_events():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 10000)
    u = np.full(10000, 50)
    t2, u2 = augment_events(t, u, 100, rng, event_drop=0.3)
    assert abs(t2.size / 10000 - 0.7) < 0.03
    t3, u3 = augment_events(t, u, 100, rng, channel_shift=10)
    assert len(np.unique(u3)) == 1 and abs(int(u3[0]) - 50) <= 10
    t4, u4 = augment_events(t, u, 100, rng, channel_jitter=2, time_jitter=0.001)
    assert set(np.unique(u4).tolist()) == {48, 49, 50, 51, 52}
    assert abs(np.std(t4 - t) - 0.001) < 1e-4 and (t4 >= 0).all()
    t5, u5 = augment_events(np.array([0.1, 0.2]), np.array([0, 99]), 100, rng, channel_jitter=1)
    assert ((u5 >= 0) & (u5 < 100)).all()  # events pushed outside are dropped


def test_spec_augment_module_off_in_eval():
    m = SpecAugment(time_mask=4, freq_mask=4, seed=0)
    x = torch.ones(3, 30, 10)
    assert (m(x) == 0).any()
    m.eval()
    assert m(x) is x


# --------------------------------------------------------------------------- spec
def test_build_augment_validation(tmp_path):
    assert build_augment(None) is None and build_augment({}) is None
    aug = build_augment({"noise_snr": [5, 20], "shift_ms": 100, "gain_db": 6, "speed": 0.1})
    assert aug.noise_snr == (5.0, 20.0) and aug.gain_db == (-6.0, 6.0)
    assert aug.speed == pytest.approx((0.9, 1.1))
    assert build_augment(aug) is aug
    with pytest.raises(ValueError, match="did you mean 'noise_snr'"):
        build_augment({"noise_snrr": 5})
    with pytest.raises(ValueError, match="noise_snr"):
        build_augment({"noise": "white"})
    with pytest.raises(ValueError, match="shift_ms"):
        build_augment({"shift_ms": -1})
    with pytest.raises(ValueError, match="low <= high"):
        build_augment({"noise_snr": [20, 5]})
    with pytest.raises(ValueError, match="augment.noise"):
        build_augment({"noise_snr": 10, "noise": str(tmp_path / "missing.wav")})
    with pytest.raises(TypeError, match="dict"):
        build_augment(["noise_snr"])
    assert "event_drop" in AUGMENT_KEYS


def test_per_item_draws_are_reproducible():
    aug = Augment(seed=3, shift_ms=50, gain_db=6, noise_snr=10)
    wave = sine(300.0)
    a = aug.wave(wave, 8000, 8000, aug.generator(0, 5))
    b = aug.wave(wave, 8000, 8000, aug.generator(0, 5))
    c = aug.wave(wave, 8000, 8000, aug.generator(1, 5))
    assert torch.equal(a, b) and not torch.equal(a, c) and a.shape == (8000,)


# --------------------------------------------------------------------------- wiring
def test_audio_dataset_augments_train_only(tmp_path, make_gsc_tree):
    root = make_gsc_tree(tmp_path / "g")
    spec = {"seed": 1, "noise_snr": [0, 5], "shift_ms": 50, "gain_db": 3, "speed": [0.9, 1.1]}
    plain = build_dataset("synth", root, "train")
    aug = build_dataset("synth", root, "train", augment=spec)
    wave, label = aug[0]
    assert wave.shape == plain[0][0].shape and label == plain[0][1]
    assert not torch.equal(wave, plain[0][0])
    assert torch.equal(aug[0][0], wave)  # same epoch and index: same draw
    aug.set_epoch(1)
    assert not torch.equal(aug[0][0], wave)
    for split in ("valid", "test"):
        a, p = build_dataset("synth", root, split, augment=spec), build_dataset("synth", root, split)
        assert a.augment is None and torch.equal(a[0][0], p[0][0])


def test_noise_from_files_is_resampled(tmp_path, make_gsc_tree, make_wav):
    root = make_gsc_tree(tmp_path / "g")
    noise = make_wav(tmp_path / "noise" / "hum.wav", seconds=0.3, sr=8000, freq=50.0)
    ds = build_dataset("synth", root, "train",
                       augment={"noise_snr": 0, "noise": str(noise.parent), "seed": 2})
    wave, _ = ds[1]
    assert wave.shape == (16000,) and torch.isfinite(wave).all()
    assert len(ds.augment._noise_cache[16000]) == 1


def test_kind_mismatch_is_an_error(tmp_path, make_gsc_tree):
    root = make_gsc_tree(tmp_path / "g")
    with pytest.raises(ValueError, match="time_mask.*audio dataset"):
        build_dataset("synth", root, "train", augment={"time_mask": 5})
    spk = tmp_path / "spk"
    times = [np.array([0.001, 0.002, 0.0205]), np.array([0.0])]
    units = [np.array([1, 2, 3]), np.array([0])]
    for split in ("train", "test"):
        write_spike_h5(spk / f"{split}.h5", times, units, [0, 1], keys=["a", "b"],
                       attrs={"spikekws_num_channels": 4, "spikekws_max_time": 0.05})
    with pytest.raises(ValueError, match="noise_snr.*spike dataset"):
        build_dataset("shd", spk, "train", augment={"noise_snr": 5})


def test_spike_dataset_augments_train_only(tmp_path):
    spk = tmp_path / "spk"
    rng = np.random.default_rng(0)
    times = [np.sort(rng.uniform(0, 0.5, 400)) for _ in range(4)]
    units = [rng.integers(0, 8, 400) for _ in range(4)]
    for split in ("train", "test"):
        write_spike_h5(spk / f"{split}.h5", times, units, [0, 1, 0, 1], keys=["a", "b"],
                       attrs={"spikekws_num_channels": 8, "spikekws_max_time": 0.5})
    opts = {"valid_fraction": 0.0, "augment": {"event_drop": 0.5, "time_mask": 5, "seed": 0}}
    train = build_dataset("shd", spk, "train", **opts)
    plain = build_dataset("shd", spk, "train", valid_fraction=0.0)
    x, xp = train[0][0], plain[0][0]
    assert x.shape == xp.shape == (50, 8)
    assert 0.3 * xp.sum() < x.sum() < 0.7 * xp.sum()
    assert torch.equal(train[0][0], x)
    test = build_dataset("shd", spk, "test", **opts)
    assert torch.equal(test[0][0], build_dataset("shd", spk, "test")[0][0])
