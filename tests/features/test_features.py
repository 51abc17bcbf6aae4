"""Feature extraction tests against an independent numpy / scipy reference."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

scipy_fft = pytest.importorskip("scipy.fft")
scipy_signal = pytest.importorskip("scipy.signal")

from spikekws.features import (  # noqa: E402
    FEATURES,
    MFCC,
    LogMel,
    add_deltas,
    build_features,
    dct_matrix,
    deltas,
    feature_kwargs,
    frame_params,
    hz_to_mel,
    log_mel,
    mel_filterbank,
    mel_to_hz,
    mfcc,
    normalize_utterance,
    resample,
    stft_power,
)

SR = 16000


# --------------------------------------------------------------------------- reference


def ref_hz_to_mel(f, scale):
    f = np.asarray(f, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    # Slaney: 3 mels per 200 Hz below 1 kHz, then log steps of ln(6.4)/27 per mel.
    step = np.log(6.4) / 27.0
    return np.where(f < 1000.0, 3.0 * f / 200.0,
                    15.0 + np.log(np.maximum(f, 1e-12) / 1000.0) / step)


def ref_mel_to_hz(m, scale):
    m = np.asarray(m, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    step = np.log(6.4) / 27.0
    return np.where(m < 15.0, 200.0 * m / 3.0, 1000.0 * np.exp(step * (m - 15.0)))


def ref_window(kind, win, n_fft):
    n = np.arange(win)
    if kind == "hann":
        w = 0.5 - 0.5 * np.cos(2 * np.pi * n / win)
    elif kind == "hamming":
        w = 0.54 - 0.46 * np.cos(2 * np.pi * n / win)
    else:  # povey (Kaldi)
        w = (0.5 - 0.5 * np.cos(2 * np.pi * n / (win - 1))) ** 0.85
    out = np.zeros(n_fft)
    left = (n_fft - win) // 2
    out[left:left + win] = w
    return out


def ref_power_spec(x, n_fft, hop, win, kind="hann", center=True, pad_mode="reflect", power=2.0):
    """[N] -> [T, n_fft // 2 + 1], own framing + np.fft.rfft."""
    x = np.asarray(x, dtype=np.float64)
    if center:
        x = np.pad(x, n_fft // 2, mode=pad_mode)
    n_frames = 1 + (len(x) - n_fft) // hop
    w = ref_window(kind, win, n_fft)
    frames = np.stack([x[t * hop:t * hop + n_fft] * w for t in range(n_frames)])
    return np.abs(np.fft.rfft(frames, axis=1)) ** power


def ref_mel_fb(n_freqs, f_min, f_max, n_mels, sr, scale="htk", norm=None):
    freqs = np.linspace(0.0, sr / 2.0, n_freqs)
    edges = ref_mel_to_hz(np.linspace(ref_hz_to_mel(f_min, scale), ref_hz_to_mel(f_max, scale),
                                      n_mels + 2), scale)
    fb = np.zeros((n_freqs, n_mels))
    for m in range(n_mels):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        for i, f in enumerate(freqs):
            if lo < f <= c:
                fb[i, m] = (f - lo) / (c - lo)
            elif c < f < hi:
                fb[i, m] = (hi - f) / (hi - c)
        if norm == "slaney":
            fb[:, m] *= 2.0 / (hi - lo)
    return fb


def ref_log_mel(x, sr=SR, n_mels=40, win_ms=25.0, hop_ms=10.0, f_min=20.0, f_max=None, offset=1e-6):
    win = int(round(sr * win_ms / 1000))
    hop = int(round(sr * hop_ms / 1000))
    n_fft = 1
    while n_fft < win:
        n_fft *= 2
    f_max = sr / 2 if f_max is None else f_max
    p = ref_power_spec(x, n_fft, hop, win)
    fb = ref_mel_fb(n_fft // 2 + 1, f_min, f_max, n_mels, sr)
    return np.log(p @ fb + offset)


def ref_mfcc(x, n_mfcc=13, **kw):
    return scipy_fft.dct(ref_log_mel(x, **kw), type=2, norm="ortho", axis=-1)[:, :n_mfcc]


def ref_deltas(c, win_length=5):
    k = (win_length - 1) // 2
    t_len = c.shape[0]
    out = np.zeros_like(c)
    denom = 2 * sum(n * n for n in range(1, k + 1))
    for t in range(t_len):
        acc = np.zeros(c.shape[1])
        for n in range(1, k + 1):
            acc += n * (c[min(t + n, t_len - 1)] - c[max(t - n, 0)])
        out[t] = acc / denom
    return out


def rel_err(a, b):
    a = np.asarray(a.detach().cpu().double() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def make_signal(n=8000, seed=0, batch=None):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    shape = (n,) if batch is None else (batch, n)
    base = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 2500 * t + 0.3)
    return base + 0.05 * rng.standard_normal(shape)


# --------------------------------------------------------------------------- framing / STFT


def test_frame_params():
    assert frame_params(16000) == (400, 160, 512)
    assert frame_params(8000, 32.0, 16.0) == (256, 128, 256)
    assert frame_params(16000, 25.0, 10.0, n_fft=1024) == (400, 160, 1024)
    with pytest.raises(ValueError, match="n_fft"):
        frame_params(16000, 25.0, 10.0, n_fft=256)


@pytest.mark.parametrize("kind", ["hann", "hamming", "povey"])
@pytest.mark.parametrize("center,pad_mode", [(True, "reflect"), (True, "constant"), (False, "reflect")])
def test_stft_power_matches_numpy(kind, center, pad_mode):
    x = make_signal(3000)
    got = stft_power(torch.from_numpy(x), 512, 160, 400, window=kind, center=center, pad_mode=pad_mode)
    ref = ref_power_spec(x, 512, 160, 400, kind=kind, center=center, pad_mode=pad_mode).T
    assert got.shape == ref.shape and got.dtype == torch.float64
    assert rel_err(got, ref) < 1e-12


def test_stft_magnitude():
    x = make_signal(2000)
    got = stft_power(torch.from_numpy(x), 256, 100, 200, power=1.0)
    assert rel_err(got, ref_power_spec(x, 256, 100, 200, power=1.0).T) < 1e-12


# --------------------------------------------------------------------------- mel scale


def test_mel_scale_hand_values():
    # HTK: 2595 log10(2) at 700 Hz; ~1000 mel at 1 kHz.
    assert hz_to_mel(700.0, "htk") == pytest.approx(781.1737, abs=1e-3)
    assert hz_to_mel(1000.0, "htk") == pytest.approx(999.9855, abs=1e-3)
    # Slaney: linear (3 mel / 200 Hz) below 1 kHz, 27 mels per factor 6.4 above.
    assert hz_to_mel(500.0, "slaney") == pytest.approx(7.5)
    assert hz_to_mel(1000.0, "slaney") == pytest.approx(15.0)
    assert hz_to_mel(6400.0, "slaney") == pytest.approx(42.0)
    assert hz_to_mel(2000.0, "slaney") == pytest.approx(25.08188, abs=1e-4)
    assert mel_to_hz(28.5, "slaney") == pytest.approx(1000.0 * math.sqrt(6.4))
    for scale in ("htk", "slaney"):
        f = torch.tensor([0.0, 60.0, 440.0, 999.0, 1000.0, 3000.0, 8000.0], dtype=torch.float64)
        m = hz_to_mel(f, scale)
        np.testing.assert_allclose(m.numpy(), ref_hz_to_mel(f.numpy(), scale), rtol=1e-12)
        np.testing.assert_allclose(mel_to_hz(m, scale).numpy(), f.numpy(), rtol=1e-12, atol=1e-9)
        for v in (60.0, 440.0, 3000.0):
            assert hz_to_mel(v, scale) == pytest.approx(float(hz_to_mel(torch.tensor(v), scale)), rel=1e-6)


@pytest.mark.parametrize("scale,norm", [("htk", None), ("slaney", None), ("htk", "slaney"), ("slaney", "slaney")])
def test_mel_filterbank_matches_formula(scale, norm):
    got = mel_filterbank(257, 20.0, 8000.0, 40, 16000, norm=norm, mel_scale=scale, dtype=torch.float64)
    ref = ref_mel_fb(257, 20.0, 8000.0, 40, 16000, scale=scale, norm=norm)
    assert got.shape == (257, 40)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-12)


def test_mel_filterbank_slaney_hand_values():
    # f_min=0, f_max=1000 Hz, 4 filters on the Slaney scale: edges at 0, 3, ..., 15 mel
    # = 0, 200, 400, 600, 800, 1000 Hz. Bins at 0, 100, ..., 1000 Hz (sr 2000, 11 bins).
    fb = mel_filterbank(11, 0.0, 1000.0, 4, 2000, norm="slaney", mel_scale="slaney", dtype=torch.float64)
    assert fb[1, 0].item() == pytest.approx(0.5 * 2.0 / 400.0)  # half-way up filter 0
    assert fb[2, 0].item() == pytest.approx(2.0 / 400.0)  # peak of filter 0 (200 Hz)
    assert fb[4, 1].item() == pytest.approx(2.0 / 400.0)  # peak of filter 1 (400 Hz)
    assert fb[3, 1].item() == pytest.approx(0.0025)
    assert fb[4, 0].item() == 0.0
    # Log region: 1 filter from 1000 to 6400 Hz (15 -> 42 mel) peaks at 28.5 mel = 1000 sqrt(6.4) Hz.
    fb = mel_filterbank(1001, 1000.0, 6400.0, 1, 20000, norm="slaney", mel_scale="slaney",
                        dtype=torch.float64)  # bins every 10 Hz
    peak = 1000.0 * math.sqrt(6.4)
    lo_bin = 300  # 3000 Hz, on the falling side
    expected = (6400.0 - 3000.0) / (6400.0 - peak) * 2.0 / (6400.0 - 1000.0)
    assert fb[lo_bin, 0].item() == pytest.approx(expected, rel=1e-9)
    # Slaney-normalised triangles have unit area in Hz.
    assert (fb[:, 0].sum().item() * 10.0) == pytest.approx(1.0, rel=1e-3)


def test_mel_filterbank_bad_args():
    with pytest.raises(ValueError, match="f_max"):
        mel_filterbank(257, 20.0, 9000.0, 40, 16000)
    with pytest.raises(ValueError, match="n_mels"):
        mel_filterbank(257, 20.0, 8000.0, 0, 16000)


# --------------------------------------------------------------------------- DCT


def test_dct_orthonormal_and_matches_scipy():
    d = dct_matrix(40, 40, "ortho", dtype=torch.float64)
    np.testing.assert_allclose((d.T @ d).numpy(), np.eye(40), atol=1e-12)
    np.testing.assert_allclose((d @ d.T).numpy(), np.eye(40), atol=1e-12)
    x = np.random.default_rng(1).standard_normal((5, 40))
    np.testing.assert_allclose((torch.from_numpy(x) @ d).numpy(),
                               scipy_fft.dct(x, type=2, norm="ortho", axis=-1), atol=1e-12)
    d13 = dct_matrix(13, 40, "ortho", dtype=torch.float64)
    np.testing.assert_allclose((d13.T @ d13).numpy(), np.eye(13), atol=1e-12)
    dn = dct_matrix(40, 40, None, dtype=torch.float64)
    np.testing.assert_allclose((torch.from_numpy(x) @ dn).numpy(),
                               scipy_fft.dct(x, type=2, axis=-1), atol=1e-10)
    with pytest.raises(ValueError, match="n_mfcc"):
        dct_matrix(41, 40)


# --------------------------------------------------------------------------- log-mel / MFCC


def test_log_mel_float64_matches_reference():
    x = make_signal(8000)
    got = log_mel(torch.from_numpy(x), SR)
    ref = ref_log_mel(x)
    assert got.shape == ref.shape == (51, 40) and got.dtype == torch.float64
    assert rel_err(got, ref) < 1e-10


def test_log_mel_float32_matches_reference():
    x = make_signal(8000)
    got = log_mel(torch.from_numpy(x).float(), SR)
    assert got.dtype == torch.float32
    assert rel_err(got, ref_log_mel(x)) < 1e-4


def test_mfcc_matches_reference():
    x = make_signal(8000)
    ref = ref_mfcc(x)
    got64 = mfcc(torch.from_numpy(x), SR)
    assert got64.shape == ref.shape == (51, 13)
    assert rel_err(got64, ref) < 1e-10
    assert rel_err(mfcc(torch.from_numpy(x).float(), SR), ref) < 1e-4


def test_mfcc_lifter():
    x = torch.from_numpy(make_signal(4000))
    plain = mfcc(x, SR)
    lift = mfcc(x, SR, lifter=22)
    w = 1 + 11 * np.sin(np.pi * np.arange(13) / 22)
    np.testing.assert_allclose(lift.numpy(), plain.numpy() * w, rtol=1e-10)


def test_modules_match_reference():
    x = make_signal(8000, seed=3)
    lm = LogMel(normalize="none")
    mf = MFCC(normalize="none")
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-4)):
        xt = torch.from_numpy(x).to(dtype)
        out = lm(xt)
        assert out.dtype == dtype and out.shape == (51, 40)
        assert rel_err(out, ref_log_mel(x)) < tol
        assert rel_err(mf(xt), ref_mfcc(x)) < tol
    # A module converted with .double() keeps float64 accuracy.
    assert rel_err(MFCC(normalize="none").double()(torch.from_numpy(x)), ref_mfcc(x)) < 1e-10


def test_too_many_mel_filters_warns():
    with pytest.warns(UserWarning, match="all zero"):
        mel_filterbank(65, 0.0, 8000.0, 80, 16000)


def test_module_normalize_and_deltas_against_reference():
    x = make_signal(8000, seed=4)
    static = ref_log_mel(x)
    d1 = ref_deltas(static)
    d2 = ref_deltas(d1)
    full = np.concatenate([static, d1, d2], axis=1)
    ref = (full - full.mean(0)) / np.sqrt(full.var(0) + 1e-5)
    m = LogMel(deltas=2)
    assert m.num_features == 120
    got = m(torch.from_numpy(x))
    assert got.shape == (51, 120)
    assert rel_err(got, ref) < 1e-9
    got32 = m(torch.from_numpy(x).float())
    assert rel_err(got32, ref) < 1e-4
    mf = MFCC(deltas=1)
    assert mf.num_features == 26 and mf(torch.from_numpy(x).float()).shape == (51, 26)


def test_batched_equals_one_by_one():
    xb = torch.from_numpy(make_signal(6000, seed=5, batch=3)).float()
    for mod in (LogMel(deltas=1), MFCC(deltas=2)):
        out = mod(xb)
        assert out.shape == (3, mod.num_frames(6000), mod.num_features)
        for i in range(3):
            torch.testing.assert_close(out[i], mod(xb[i]), rtol=1e-5, atol=1e-5)
    # Functional forms take arbitrary leading dims.
    x4 = xb.reshape(3, 1, 6000).expand(3, 2, 6000)
    out = log_mel(x4, SR)
    assert out.shape == (3, 2, 38, 40)
    torch.testing.assert_close(out[2, 1], log_mel(xb[2], SR))


def test_num_frames_and_integer_input():
    m = LogMel()
    for n in (400, 1000, 16000, 16159, 16160):
        assert m(torch.randn(n)).shape[0] == m.num_frames(n) == 1 + n // 160
    m2 = LogMel(center=False)
    assert m2(torch.randn(1000)).shape[0] == m2.num_frames(1000) == 1 + (1000 - 512) // 160
    pcm = (torch.randn(2, 4000) * 3000).to(torch.int16)
    assert m(pcm).dtype == torch.get_default_dtype()


# --------------------------------------------------------------------------- deltas / normalisation


@pytest.mark.parametrize("win", [3, 5, 9])
def test_deltas_match_loop(win):
    c = np.random.default_rng(2).standard_normal((2, 17, 6))
    got = deltas(torch.from_numpy(c), win)
    for b in range(2):
        np.testing.assert_allclose(got[b].numpy(), ref_deltas(c[b], win), atol=1e-12)
    short = np.random.default_rng(3).standard_normal((2, 4))  # T shorter than the window
    np.testing.assert_allclose(deltas(torch.from_numpy(short), 9).numpy(), ref_deltas(short, 9), atol=1e-12)
    assert add_deltas(torch.from_numpy(c), 2, win).shape == (2, 17, 18)
    with pytest.raises(ValueError, match="win_length"):
        deltas(torch.from_numpy(c), 1)


def test_normalize_utterance_with_lengths():
    x = torch.randn(3, 20, 5, dtype=torch.float64) * 4 + 2
    y = normalize_utterance(x)
    torch.testing.assert_close(y.mean(1), torch.zeros(3, 5, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(y.var(1, unbiased=False), torch.ones(3, 5, dtype=torch.float64),
                               atol=1e-5, rtol=0)
    lengths = torch.tensor([20, 7, 12])
    ym = normalize_utterance(x, lengths=lengths)
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(ym[i, :n], normalize_utterance(x[i, :n]))
        assert torch.all(ym[i, n:] == 0)


def test_module_lengths_masking():
    m = LogMel()
    x = torch.randn(2, 8000)
    x[1, 4000:] = 0
    out = m(x, lengths=torch.tensor([8000, 4000]))
    valid = m.num_frames(4000)
    assert torch.all(out[1, valid:] == 0)
    assert out[1, :valid].mean(0).abs().max() < 1e-4
    torch.testing.assert_close(out[0], m(x[0]))


def test_normalize_utterance_with_mask():
    x = torch.randn(2, 15, 4, dtype=torch.float64) * 3 - 1
    mask = torch.rand(2, 15) > 0.4
    mask[:, 0] = True
    y = normalize_utterance(x, mask=mask)
    for i in range(2):
        torch.testing.assert_close(y[i, mask[i]], normalize_utterance(x[i, mask[i]]))
        assert torch.all(y[i, ~mask[i]] == 0)
    with pytest.raises(ValueError, match="mask must have shape"):
        normalize_utterance(x, mask=mask[:, :5])


def test_module_statistics_ignore_zero_padding():
    """The same clip with different amounts of zero padding gives the same features."""
    m = LogMel()
    hop = m.hop_length
    speech = torch.randn(20 * hop) * torch.hann_window(20 * hop)
    a = torch.nn.functional.pad(speech, (10 * hop, 20 * hop))
    b = torch.nn.functional.pad(speech, (30 * hop, 40 * hop))
    fa, fb = m(a), m(b)
    active_a, active_b = m.active_frames(a), m.active_frames(b)
    assert active_a.sum() == active_b.sum() > 20
    assert torch.all(fa[~active_a] == 0) and torch.all(fb[~active_b] == 0)
    torch.testing.assert_close(fa[active_a], fb[active_b], atol=1e-4, rtol=1e-4)
    # without the silence mask the statistics would depend on the padding
    raw = LogMel(normalize="none")
    naive_a, naive_b = normalize_utterance(raw(a)), normalize_utterance(raw(b))
    assert (naive_a[active_a] - naive_b[active_b]).abs().max() > 0.1


# --------------------------------------------------------------------------- resampling


@pytest.mark.parametrize("orig,new,freq", [(16000, 8000, 200.0), (8000, 16000, 300.0), (44100, 16000, 440.0),
                                           (48000, 16000, 1000.0)])
def test_resample_low_frequency_sine(orig, new, freq):
    n = orig // 2
    x = np.sin(2 * np.pi * freq * np.arange(n) / orig)
    got = resample(torch.from_numpy(x), orig, new)
    g = math.gcd(orig, new)
    ref_poly = scipy_signal.resample_poly(x, new // g, orig // g)
    exact = np.sin(2 * np.pi * freq * np.arange(len(got)) / new)
    assert len(got) == len(ref_poly) == math.ceil(n * new / orig)
    edge = new // 50  # skip 20 ms at each end (filter transients / zero padding)
    inner = slice(edge, len(got) - edge)
    assert np.max(np.abs(got.numpy()[inner] - exact[inner])) < 2e-3
    assert np.max(np.abs(got.numpy()[inner] - ref_poly[inner])) < 5e-3


def test_resample_attenuates_above_new_nyquist():
    n = 16000
    x = np.sin(2 * np.pi * 6000.0 * np.arange(n) / 16000)  # new Nyquist is 4 kHz
    y = resample(torch.from_numpy(x), 16000, 8000).numpy()
    inner = y[200:-200]
    atten_db = 20 * np.log10(np.sqrt(np.mean(inner ** 2)) / np.sqrt(np.mean(x ** 2)))
    assert atten_db < -40.0


def test_resample_batched_dtype_identity():
    x = torch.randn(2, 3, 1000)
    y = resample(x, 16000, 12000)
    assert y.shape == (2, 3, 750) and y.dtype == torch.float32
    torch.testing.assert_close(y[1, 2], resample(x[1, 2], 16000, 12000))
    torch.testing.assert_close(resample(x, 16000, 16000), x)
    with pytest.raises(ValueError, match="rolloff"):
        resample(x, 16000, 8000, rolloff=1.5)


# --------------------------------------------------------------------------- modules / registry


def test_buffers_move_with_to_and_are_not_persistent():
    m = MFCC(deltas=1)
    assert dict(m.state_dict()) == {}
    names = {n for n, _ in m.named_buffers()}
    assert {"window", "mel_fb", "dct"} <= names
    m64 = m.to(torch.float64)
    assert all(b.dtype == torch.float64 for b in m64.buffers())
    meta = MFCC().to("meta")
    assert all(b.device.type == "meta" for b in meta.buffers())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    m = LogMel(deltas=1)
    x = torch.randn(4, 16000)
    ref = m(x)
    mc = m.to("cuda")
    assert all(b.device.type == "cuda" for b in mc.buffers())
    torch.testing.assert_close(mc(x.cuda()).cpu(), ref, rtol=1e-3, atol=1e-3)


def test_registry_and_build():
    assert {"logmel", "mfcc"} <= set(FEATURES.list())
    m = build_features("logmel", n_mels=32, deltas=1)
    assert isinstance(m, LogMel) and m.num_features == 64
    assert isinstance(build_features("MFCC", n_mfcc=20), MFCC)
    with pytest.raises(KeyError, match="logmel"):
        build_features("lgmel")
    with pytest.raises(TypeError, match="n_mel_bins"):
        build_features("logmel", n_mel_bins=40)
    with pytest.raises(TypeError, match="bogus"):
        LogMel(bogus=1)
    rebuilt = build_features("mfcc", **feature_kwargs(MFCC(n_mfcc=10, deltas=2, lifter=22)))
    assert rebuilt.num_features == 30 and rebuilt.lifter == 22


@pytest.mark.parametrize("cls,kwargs,arg", [
    (LogMel, {"n_mels": 0}, "n_mels"),
    (LogMel, {"n_mels": -3}, "n_mels"),
    (LogMel, {"f_max": 9000.0}, "f_max"),
    (LogMel, {"f_min": -1.0}, "f_min"),
    (LogMel, {"f_min": 5000.0, "f_max": 4000.0}, "f_max"),
    (LogMel, {"hop_ms": 30.0}, "hop_ms"),
    (LogMel, {"win_ms": 0.0}, "win_ms"),
    (LogMel, {"n_fft": 256}, "n_fft"),
    (LogMel, {"deltas": 3}, "deltas"),
    (LogMel, {"normalize": "global"}, "normalize"),
    (LogMel, {"log_offset": 0.0}, "log_offset"),
    (LogMel, {"window": "kaiser"}, "window"),
    (LogMel, {"sample_rate": 0}, "sample_rate"),
    (MFCC, {"n_mfcc": 50}, "n_mfcc"),
    (MFCC, {"lifter": -1.0}, "lifter"),
])
def test_bad_arguments_raise_value_error(cls, kwargs, arg):
    with pytest.raises(ValueError, match=arg) as exc:
        cls(**kwargs)
    assert repr(kwargs[arg]) in str(exc.value)


def test_gradients_flow():
    torch.manual_seed(0)
    m = LogMel(sample_rate=8000, n_mels=6, win_ms=4.0, hop_ms=2.0, f_min=0.0, deltas=1)
    x = torch.randn(2, 80, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (x,), eps=1e-6, atol=1e-5)
    mf = MFCC(sample_rate=8000, n_mfcc=4, n_mels=6, win_ms=4.0, hop_ms=2.0, f_min=0.0)
    assert torch.autograd.gradcheck(mf, (x,), eps=1e-6, atol=1e-5)
    xr = torch.randn(2, 90, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w: resample(w, 3, 2), (xr,), eps=1e-6, atol=1e-5)
