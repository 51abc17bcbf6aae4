"""PCEN (per-channel energy normalisation): the functional form against a plain recursion
in numpy, the feature modules against a numpy reference pipeline, state carry across
blocks, gain robustness and argument checks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("scipy.fft")

from spikekws.features import MFCC, LogMel, build_features  # noqa: E402
from spikekws.features import functional as AF  # noqa: E402

from .test_features import SR, make_signal, ref_mel_fb, ref_power_spec, rel_err  # noqa: E402


def ref_pcen(e, s, alpha=0.98, delta=2.0, r=0.5, eps=1e-6, m0=None):
    """Frame-by-frame recursion in float64: e [T, F] (or [B, T, F])."""
    e = np.asarray(e, dtype=np.float64)
    m = e[..., 0, :].copy() if m0 is None else np.asarray(m0, dtype=np.float64).copy()
    out = np.zeros_like(e)
    for t in range(e.shape[-2]):
        m = (1 - s) * m + s * e[..., t, :]
        out[..., t, :] = (e[..., t, :] / (eps + m) ** alpha + delta) ** r - delta ** r
    return out, m


def test_smoothing_coefficient_matches_formula():
    t = 0.4 * 100.0
    assert AF.pcen_smoothing(0.4, 100.0) == pytest.approx((math.sqrt(1 + 4 * t * t) - 1) / (2 * t * t))
    # a longer time constant tracks the level more slowly
    assert AF.pcen_smoothing(1.0, 100.0) < AF.pcen_smoothing(0.1, 100.0)


@pytest.mark.parametrize("frames", [1, 5, 64, 65, 200])
def test_pcen_matches_recursion(frames):
    rng = np.random.default_rng(frames)
    e = rng.gamma(0.5, 3.0, size=(3, frames, 7))
    out, m = AF.pcen(torch.from_numpy(e), s=0.06, alpha=0.9, delta=1.5, r=0.4, eps=1e-4)
    ref, ref_m = ref_pcen(e, 0.06, 0.9, 1.5, 0.4, 1e-4)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.numpy(), ref_m, rtol=1e-10)


def test_pcen_state_carries_across_blocks():
    e = torch.from_numpy(np.random.default_rng(0).gamma(1.0, 1.0, size=(150, 4)))
    whole, m_whole = AF.pcen(e, s=0.05)
    a, m = AF.pcen(e[:37], s=0.05)
    b, m2 = AF.pcen(e[37:], s=0.05, initial=m)
    torch.testing.assert_close(torch.cat([a, b]), whole, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m2, m_whole)
    # without the carried state the second block starts from its own first frame: differs
    c, _ = AF.pcen(e[37:], s=0.05)
    assert not torch.allclose(c, b)


def test_modules_match_reference_pipeline():
    x = make_signal(8000, seed=5)
    n_fft, hop, win = 512, 160, 400
    mel = ref_power_spec(x, n_fft, hop, win) @ ref_mel_fb(n_fft // 2 + 1, 20.0, SR / 2, 40, SR)
    s = AF.pcen_smoothing(0.4, SR / hop)
    ref, _ = ref_pcen(mel, s)
    lm = LogMel(normalize="pcen")
    assert rel_err(lm(torch.from_numpy(x)), ref) < 1e-10  # float64 in, float64 accuracy
    assert rel_err(lm(torch.from_numpy(x).float()), ref) < 1e-4
    from scipy.fft import dct
    mf = MFCC(normalize="pcen")
    assert rel_err(mf(torch.from_numpy(x)), dct(ref, type=2, norm="ortho", axis=-1)[:, :13]) < 1e-10
    # parameters reach the computation
    ref2, _ = ref_pcen(mel, AF.pcen_smoothing(0.1, SR / hop), alpha=0.8, r=0.25)
    lm2 = LogMel(normalize="pcen", pcen={"time_constant": 0.1, "alpha": 0.8, "r": 0.25})
    assert rel_err(lm2(torch.from_numpy(x)), ref2) < 1e-10


def test_pcen_is_robust_to_gain_where_log_mel_is_not():
    x = torch.from_numpy(make_signal(16000, seed=6)).float()
    pc = LogMel(normalize="pcen")
    raw = LogMel(normalize="none")
    # the same clip 20 dB louder: relative change of the features
    d_pcen = rel_err(pc(10 * x), pc(x).double().numpy())
    d_log = rel_err(raw(10 * x), raw(x).double().numpy())
    assert d_pcen < 0.15 < d_log


def test_batched_equals_one_by_one_and_padding_is_zero():
    x = torch.from_numpy(make_signal(6000, seed=7, batch=3)).float()
    x[2, 3000:] = 0.0  # a short clip padded with digital silence
    fe = LogMel(normalize="pcen")
    batch = fe(x)
    for i in range(3):
        torch.testing.assert_close(batch[i], fe(x[i]), rtol=1e-5, atol=1e-6)
    assert batch[2, -5:].abs().max() == 0.0  # zero energy -> zero PCEN


@pytest.mark.parametrize("pcen,match", [
    ({"alpha": 1.5}, "alpha"),
    ({"r": 0.0}, "r must"),
    ({"time_constant": -1.0}, "time_constant"),
    ({"gain": 1.0}, "unknown key.*gain"),
    ({"delta": "big"}, "pcen.delta"),
    ([0.5], "pcen must be a dict"),
])
def test_bad_pcen_arguments(pcen, match):
    with pytest.raises(ValueError, match=match):
        LogMel(normalize="pcen", pcen=pcen)


def test_registry_builds_pcen_features():
    fe = build_features("mfcc", sample_rate=16000, normalize="pcen", n_mfcc=10)
    assert fe.normalize == "pcen" and fe(torch.zeros(1600) + 0.01).shape == (11, 10)
    with pytest.raises(ValueError, match="'utterance', 'pcen', 'none'"):
        build_features("logmel", sample_rate=16000, normalize="cmvn")
