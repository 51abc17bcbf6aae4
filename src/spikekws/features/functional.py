"""Stateless audio feature functions in plain torch.

Every function works on tensors with any number of leading (batch) dimensions and
follows the device and floating dtype of its input. Time-frequency outputs put TIME
BEFORE FEATURES: a batch of waveforms ``[B, N]`` becomes ``[B, T, F]``.

Conventions match the usual speech toolkits:

* periodic Hann / Hamming windows (as ``torch.hann_window``), Kaldi's "povey" window,
  zero-padded and centred inside ``n_fft``;
* ``center=True`` pads ``n_fft // 2`` samples on both sides, so
  ``frames = 1 + num_samples // hop_length``;
* triangular mel filters on the HTK or Slaney mel scale, optional Slaney area
  normalisation;
* DCT-II basis with optional orthonormal scaling;
* regression deltas with edge replication (HTK).
"""
from __future__ import annotations

import math
import warnings
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "WINDOWS",
    "MEL_SCALES",
    "frame_params",
    "num_frames",
    "make_window",
    "stft_power",
    "hz_to_mel",
    "mel_to_hz",
    "mel_filterbank",
    "dct_matrix",
    "lifter_weights",
    "log_mel",
    "mfcc",
    "deltas",
    "add_deltas",
    "normalize_utterance",
    "pcen",
    "pcen_smoothing",
    "resample",
]

WINDOWS = ("hann", "hamming", "povey")
MEL_SCALES = ("htk", "slaney")
PAD_MODES = ("reflect", "constant")

# Slaney mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
_SLANEY_F_SP = 200.0 / 3.0
_SLANEY_MIN_LOG_HZ = 1000.0
_SLANEY_MIN_LOG_MEL = _SLANEY_MIN_LOG_HZ / _SLANEY_F_SP  # 15.0
_SLANEY_LOGSTEP = math.log(6.4) / 27.0


# --------------------------------------------------------------------------- helpers


def _bad(name: str, allowed: str, value: object) -> ValueError:
    return ValueError(f"{name} must be {allowed}, got {value!r}")


def _check_choice(name: str, value: object, choices: Tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.lower() not in choices:
        raise _bad(name, "one of " + ", ".join(repr(c) for c in choices), value)
    return value.lower()


def _as_float(x: Tensor) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())


def _next_pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


# --------------------------------------------------------------------------- framing


def frame_params(
    sample_rate: int,
    win_ms: float = 25.0,
    hop_ms: float = 10.0,
    n_fft: Optional[int] = None,
) -> Tuple[int, int, int]:
    """Convert window / hop durations to sample counts.

    Returns ``(win_length, hop_length, n_fft)``; ``n_fft`` defaults to the next power
    of two that is ``>= win_length``.
    """
    if not sample_rate or sample_rate <= 0:
        raise _bad("sample_rate", "> 0", sample_rate)
    if win_ms is None or win_ms <= 0:
        raise _bad("win_ms", "> 0", win_ms)
    if hop_ms is None or hop_ms <= 0:
        raise _bad("hop_ms", "> 0", hop_ms)
    win_length = int(round(sample_rate * win_ms / 1000.0))
    hop_length = int(round(sample_rate * hop_ms / 1000.0))
    if win_length < 1:
        raise _bad("win_ms", f">= {1000.0 / sample_rate:g} (one sample at {sample_rate} Hz)", win_ms)
    if hop_length < 1:
        raise _bad("hop_ms", f">= {1000.0 / sample_rate:g} (one sample at {sample_rate} Hz)", hop_ms)
    if n_fft is None:
        n_fft = _next_pow2(win_length)
    elif int(n_fft) < win_length:
        raise _bad("n_fft", f">= win_length ({win_length} samples)", n_fft)
    return win_length, hop_length, int(n_fft)


def num_frames(num_samples: int, n_fft: int, hop_length: int, center: bool = True) -> int:
    """Number of STFT frames produced for ``num_samples`` input samples."""
    num_samples = int(num_samples)
    if center:
        return 1 + num_samples // hop_length
    if num_samples < n_fft:
        return 0
    return 1 + (num_samples - n_fft) // hop_length


def make_window(
    kind: str,
    win_length: int,
    n_fft: Optional[int] = None,
    *,
    dtype: Optional[torch.dtype] = None,
    device: Optional[Union[str, torch.device]] = None,
) -> Tensor:
    """Analysis window of ``win_length`` samples, zero-padded and centred in ``n_fft``.

    ``"hann"`` and ``"hamming"`` are periodic (DFT-even); ``"povey"`` is Kaldi's
    symmetric Hann window raised to the power 0.85.
    """
    kind = _check_choice("window", kind, WINDOWS)
    n_fft = win_length if n_fft is None else int(n_fft)
    if win_length < 1:
        raise _bad("win_length", ">= 1", win_length)
    if n_fft < win_length:
        raise _bad("n_fft", f">= win_length ({win_length})", n_fft)
    dtype = dtype or torch.get_default_dtype()
    n = torch.arange(win_length, dtype=torch.float64)
    if kind == "hann":
        w = 0.5 - 0.5 * torch.cos(2.0 * math.pi * n / win_length)
    elif kind == "hamming":
        w = 0.54 - 0.46 * torch.cos(2.0 * math.pi * n / win_length)
    else:  # povey
        denom = max(win_length - 1, 1)
        w = (0.5 - 0.5 * torch.cos(2.0 * math.pi * n / denom)).pow(0.85)
    left = (n_fft - win_length) // 2
    w = F.pad(w, (left, n_fft - win_length - left))
    return w.to(dtype=dtype, device=device)


def stft_power(
    waveform: Tensor,
    n_fft: int,
    hop_length: int,
    win_length: Optional[int] = None,
    window: Union[str, Tensor] = "hann",
    center: bool = True,
    pad_mode: str = "reflect",
    power: float = 2.0,
) -> Tensor:
    """Magnitude (``power=1``) or power (``power=2``) spectrogram.

    ``waveform``: ``[..., N]`` -> ``[..., n_fft // 2 + 1, frames]``. ``window`` is a
    window name (see :data:`WINDOWS`) or a precomputed window tensor of length
    ``win_length`` or ``n_fft``.
    """
    x = _as_float(waveform)
    win_length = n_fft if win_length is None else int(win_length)
    if hop_length < 1:
        raise _bad("hop_length", ">= 1", hop_length)
    if win_length > n_fft:
        raise _bad("win_length", f"<= n_fft ({n_fft})", win_length)
    if power is None or power <= 0:
        raise _bad("power", "> 0", power)
    pad_mode = _check_choice("pad_mode", pad_mode, PAD_MODES)
    if isinstance(window, Tensor):
        w = window.to(dtype=x.dtype, device=x.device)
        if w.numel() == win_length and win_length < n_fft:
            left = (n_fft - win_length) // 2
            w = F.pad(w, (left, n_fft - win_length - left))
        elif w.numel() != n_fft:
            raise _bad("window", f"a tensor of length win_length ({win_length}) or n_fft ({n_fft})",
                       tuple(w.shape))
    else:
        w = make_window(window, win_length, n_fft, dtype=x.dtype, device=x.device)

    lead = x.shape[:-1]
    n = x.shape[-1]
    flat = x.reshape(-1, n)
    if center and pad_mode == "reflect" and n <= n_fft // 2:
        raise ValueError(
            f"waveform too short for reflect padding: need more than n_fft // 2 = {n_fft // 2} "
            f"samples, got {n} (use pad_mode='constant')"
        )
    if not center and n < n_fft:
        raise ValueError(f"waveform too short: need at least n_fft = {n_fft} samples with center=False, got {n}")
    spec = torch.stft(
        flat,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=n_fft,
        window=w,
        center=center,
        pad_mode=pad_mode,
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    if power == 2.0:
        ri = torch.view_as_real(spec)
        out = ri[..., 0].square() + ri[..., 1].square()
    elif power == 1.0:
        out = spec.abs()
    else:
        out = spec.abs().pow(power)
    return out.reshape(lead + out.shape[-2:])


# --------------------------------------------------------------------------- mel scale


def hz_to_mel(freq: Union[float, Tensor], mel_scale: str = "htk") -> Union[float, Tensor]:
    """Hz -> mel on the ``"htk"`` (2595 log10(1 + f/700)) or ``"slaney"`` scale."""
    mel_scale = _check_choice("mel_scale", mel_scale, MEL_SCALES)
    if isinstance(freq, Tensor):
        f = _as_float(freq)
        if mel_scale == "htk":
            return 2595.0 * torch.log10(1.0 + f / 700.0)
        lin = f / _SLANEY_F_SP
        log = _SLANEY_MIN_LOG_MEL + torch.log(
            torch.clamp(f, min=_SLANEY_MIN_LOG_HZ) / _SLANEY_MIN_LOG_HZ) / _SLANEY_LOGSTEP
        return torch.where(f >= _SLANEY_MIN_LOG_HZ, log, lin)
    f = float(freq)
    if mel_scale == "htk":
        return 2595.0 * math.log10(1.0 + f / 700.0)
    if f >= _SLANEY_MIN_LOG_HZ:
        return _SLANEY_MIN_LOG_MEL + math.log(f / _SLANEY_MIN_LOG_HZ) / _SLANEY_LOGSTEP
    return f / _SLANEY_F_SP


def mel_to_hz(mel: Union[float, Tensor], mel_scale: str = "htk") -> Union[float, Tensor]:
    """Inverse of :func:`hz_to_mel`."""
    mel_scale = _check_choice("mel_scale", mel_scale, MEL_SCALES)
    if isinstance(mel, Tensor):
        m = _as_float(mel)
        if mel_scale == "htk":
            return 700.0 * (torch.pow(10.0, m / 2595.0) - 1.0)
        lin = m * _SLANEY_F_SP
        log = _SLANEY_MIN_LOG_HZ * torch.exp(
            _SLANEY_LOGSTEP * (torch.clamp(m, min=_SLANEY_MIN_LOG_MEL) - _SLANEY_MIN_LOG_MEL))
        return torch.where(m >= _SLANEY_MIN_LOG_MEL, log, lin)
    m = float(mel)
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    if m >= _SLANEY_MIN_LOG_MEL:
        return _SLANEY_MIN_LOG_HZ * math.exp(_SLANEY_LOGSTEP * (m - _SLANEY_MIN_LOG_MEL))
    return m * _SLANEY_F_SP


def mel_filterbank(
    n_freqs: int,
    f_min: float,
    f_max: float,
    n_mels: int,
    sample_rate: int,
    norm: Optional[str] = None,
    mel_scale: str = "htk",
    *,
    dtype: Optional[torch.dtype] = None,
    device: Optional[Union[str, torch.device]] = None,
) -> Tensor:
    """Triangular mel filters, ``[n_freqs, n_mels]``.

    ``n_freqs`` bins are spread linearly over ``[0, sample_rate / 2]``. Filter ``m``
    rises from ``f[m]`` to a peak of 1 at ``f[m + 1]`` and falls back to 0 at
    ``f[m + 2]``, where ``f`` are ``n_mels + 2`` points equally spaced in mel between
    ``f_min`` and ``f_max``. ``norm="slaney"`` scales each filter by
    ``2 / (f[m + 2] - f[m])`` (unit area in Hz).
    """
    if n_freqs is None or int(n_freqs) < 2:
        raise _bad("n_freqs", ">= 2", n_freqs)
    if n_mels is None or int(n_mels) < 1:
        raise _bad("n_mels", ">= 1", n_mels)
    if sample_rate is None or sample_rate <= 0:
        raise _bad("sample_rate", "> 0", sample_rate)
    nyquist = sample_rate / 2.0
    if f_min is None or f_min < 0:
        raise _bad("f_min", f"in [0, {nyquist:g}) Hz", f_min)
    if f_max is None or f_max > nyquist or f_max <= f_min:
        raise _bad("f_max", f"in ({f_min:g}, {nyquist:g}] Hz (f_min < f_max <= sample_rate / 2)", f_max)
    if norm is not None and norm != "slaney":
        raise _bad("norm", "None or 'slaney'", norm)
    mel_scale = _check_choice("mel_scale", mel_scale, MEL_SCALES)

    n_freqs, n_mels = int(n_freqs), int(n_mels)
    all_freqs = torch.linspace(0.0, nyquist, n_freqs, dtype=torch.float64)
    m_lo = hz_to_mel(float(f_min), mel_scale)
    m_hi = hz_to_mel(float(f_max), mel_scale)
    m_pts = torch.linspace(m_lo, m_hi, n_mels + 2, dtype=torch.float64)
    f_pts = mel_to_hz(m_pts, mel_scale)
    lo, mid, hi = f_pts[:-2], f_pts[1:-1], f_pts[2:]
    fr = all_freqs[:, None]
    rising = (fr - lo) / (mid - lo)
    falling = (hi - fr) / (hi - mid)
    fb = torch.clamp(torch.minimum(rising, falling), min=0.0)
    if norm == "slaney":
        fb = fb * (2.0 / (hi - lo))
    empty = int((fb.amax(dim=0) == 0).sum())
    if empty:
        warnings.warn(
            f"{empty} of {n_mels} mel filters are all zero: n_mels={n_mels} is too high for "
            f"n_freqs={n_freqs} over [{f_min:g}, {f_max:g}] Hz",
            stacklevel=2,
        )
    return fb.to(dtype=dtype or torch.get_default_dtype(), device=device)


def dct_matrix(
    n_mfcc: int,
    n_mels: int,
    norm: Optional[str] = "ortho",
    *,
    dtype: Optional[torch.dtype] = None,
    device: Optional[Union[str, torch.device]] = None,
) -> Tensor:
    """DCT-II basis ``[n_mels, n_mfcc]`` so that ``coeffs = x @ dct``.

    ``D[n, k] = cos(pi / n_mels * (n + 0.5) * k)``; with ``norm="ortho"`` it is scaled to
    be orthonormal (as ``scipy.fft.dct(type=2, norm="ortho")``), with ``norm=None`` it
    is multiplied by 2 (as scipy's unnormalised DCT-II).
    """
    if n_mels is None or int(n_mels) < 1:
        raise _bad("n_mels", ">= 1", n_mels)
    if n_mfcc is None or not 1 <= int(n_mfcc) <= int(n_mels):
        raise _bad("n_mfcc", f"in [1, n_mels={n_mels}]", n_mfcc)
    if norm is not None and norm != "ortho":
        raise _bad("norm", "'ortho' or None", norm)
    n = torch.arange(int(n_mels), dtype=torch.float64)[:, None]
    k = torch.arange(int(n_mfcc), dtype=torch.float64)[None, :]
    d = torch.cos(math.pi / n_mels * (n + 0.5) * k)
    if norm == "ortho":
        d = d * math.sqrt(2.0 / n_mels)
        d[:, 0] = d[:, 0] / math.sqrt(2.0)
    else:
        d = d * 2.0
    return d.to(dtype=dtype or torch.get_default_dtype(), device=device)


def lifter_weights(
    n_mfcc: int,
    lifter: float,
    *,
    dtype: Optional[torch.dtype] = None,
    device: Optional[Union[str, torch.device]] = None,
) -> Tensor:
    """Sinusoidal cepstral liftering weights ``1 + L/2 sin(pi k / L)``, ``[n_mfcc]``."""
    if lifter is None or lifter < 0:
        raise _bad("lifter", ">= 0", lifter)
    k = torch.arange(int(n_mfcc), dtype=torch.float64)
    if lifter == 0:
        w = torch.ones_like(k)
    else:
        w = 1.0 + 0.5 * lifter * torch.sin(math.pi * k / lifter)
    return w.to(dtype=dtype or torch.get_default_dtype(), device=device)


# --------------------------------------------------------------------------- features


def _mel_from_power(power_spec: Tensor, fb: Tensor) -> Tensor:
    # [..., n_freqs, T] -> [..., T, n_mels]
    return torch.matmul(power_spec.transpose(-1, -2), fb.to(power_spec.dtype))


def log_mel(
    waveform: Tensor,
    sample_rate: int,
    n_mels: int = 40,
    win_ms: float = 25.0,
    hop_ms: float = 10.0,
    n_fft: Optional[int] = None,
    f_min: float = 20.0,
    f_max: Optional[float] = None,
    log_offset: float = 1e-6,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "reflect",
    power: float = 2.0,
    mel_scale: str = "htk",
    mel_norm: Optional[str] = None,
) -> Tensor:
    """Log mel spectrogram ``log(mel + log_offset)``: ``[..., N]`` -> ``[..., T, n_mels]``."""
    x = _as_float(waveform)
    win_length, hop_length, n_fft = frame_params(sample_rate, win_ms, hop_ms, n_fft)
    if f_max is None:
        f_max = sample_rate / 2.0
    if log_offset is None or log_offset <= 0:
        raise _bad("log_offset", "> 0", log_offset)
    fb = mel_filterbank(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate, norm=mel_norm,
                        mel_scale=mel_scale, dtype=x.dtype, device=x.device)
    spec = stft_power(x, n_fft, hop_length, win_length, window=window, center=center,
                      pad_mode=pad_mode, power=power)
    return torch.log(_mel_from_power(spec, fb) + log_offset)


def mfcc(
    waveform: Tensor,
    sample_rate: int,
    n_mfcc: int = 13,
    n_mels: int = 40,
    win_ms: float = 25.0,
    hop_ms: float = 10.0,
    n_fft: Optional[int] = None,
    f_min: float = 20.0,
    f_max: Optional[float] = None,
    log_offset: float = 1e-6,
    dct_norm: Optional[str] = "ortho",
    lifter: float = 0.0,
    **log_mel_kwargs,
) -> Tensor:
    """MFCCs: DCT-II of :func:`log_mel` over the mel axis, ``[..., N]`` -> ``[..., T, n_mfcc]``.

    ``lifter > 0`` applies sinusoidal liftering. Extra keyword arguments (``window``,
    ``center``, ``pad_mode``, ``power``, ``mel_scale``, ``mel_norm``) go to :func:`log_mel`.
    """
    if n_mels is None or int(n_mels) < 1:
        raise _bad("n_mels", ">= 1", n_mels)
    if n_mfcc is None or not 1 <= int(n_mfcc) <= int(n_mels):
        raise _bad("n_mfcc", f"in [1, n_mels={n_mels}]", n_mfcc)
    lm = log_mel(waveform, sample_rate, n_mels=n_mels, win_ms=win_ms, hop_ms=hop_ms, n_fft=n_fft,
                 f_min=f_min, f_max=f_max, log_offset=log_offset, **log_mel_kwargs)
    d = dct_matrix(n_mfcc, n_mels, dct_norm, dtype=lm.dtype, device=lm.device)
    if lifter:
        d = d * lifter_weights(n_mfcc, lifter, dtype=lm.dtype, device=lm.device)
    return torch.matmul(lm, d)


def deltas(features: Tensor, win_length: int = 5) -> Tensor:
    """Regression deltas along time (axis ``-2``) of ``[..., T, F]`` features.

    ``d[t] = sum_{n=1..K} n (c[t+n] - c[t-n]) / (2 sum_{n=1..K} n^2)`` with
    ``K = (win_length - 1) // 2``; frames beyond either end repeat the edge frame.
    """
    if win_length is None or int(win_length) < 3:
        raise _bad("win_length", ">= 3", win_length)
    if features.dim() < 2:
        raise ValueError(f"features must have shape [..., T, F], got {tuple(features.shape)}")
    x = _as_float(features)
    k = (int(win_length) - 1) // 2
    t = x.shape[-2]
    first = x[..., :1, :].expand(*x.shape[:-2], k, x.shape[-1])
    last = x[..., -1:, :].expand(*x.shape[:-2], k, x.shape[-1])
    xp = torch.cat([first, x, last], dim=-2)
    out = torch.zeros_like(x)
    for n in range(1, k + 1):
        out = out + n * (xp[..., k + n:k + n + t, :] - xp[..., k - n:k - n + t, :])
    denom = 2.0 * sum(n * n for n in range(1, k + 1))
    return out / denom


def add_deltas(features: Tensor, order: int = 1, win_length: int = 5) -> Tensor:
    """Concatenate ``order`` (0, 1 or 2) orders of deltas along the feature axis."""
    if order not in (0, 1, 2):
        raise _bad("deltas", "0, 1 or 2", order)
    parts = [features]
    cur = features
    for _ in range(order):
        cur = deltas(cur, win_length)
        parts.append(cur)
    return torch.cat(parts, dim=-1) if order else features


def normalize_utterance(
    features: Tensor,
    eps: float = 1e-5,
    lengths: Optional[Tensor] = None,
    mask: Optional[Tensor] = None,
) -> Tensor:
    """Per-utterance, per-channel mean/variance normalisation over time.

    ``features``: ``[..., T, F]``. Returns ``(x - mean) / sqrt(var + eps)`` with the
    (biased) statistics taken over the time axis. ``lengths`` (shape ``[...]``, number
    of valid frames per utterance, valid frames first) and/or ``mask`` (bool ``[..., T]``,
    True for valid frames anywhere in the sequence) restrict the statistics to the valid
    frames; the other frames are set to zero in the output.
    """
    if features.dim() < 2:
        raise ValueError(f"features must have shape [..., T, F], got {tuple(features.shape)}")
    if eps is None or eps < 0:
        raise _bad("eps", ">= 0", eps)
    x = _as_float(features)
    if lengths is None and mask is None:
        mean = x.mean(dim=-2, keepdim=True)
        var = (x - mean).square().mean(dim=-2, keepdim=True)
        return (x - mean) / torch.sqrt(var + eps)
    t = x.shape[-2]
    valid = torch.ones(x.shape[:-1], dtype=torch.bool, device=x.device)
    if lengths is not None:
        lengths = torch.as_tensor(lengths, device=x.device)
        if tuple(lengths.shape) != tuple(x.shape[:-2]):
            raise ValueError(
                f"lengths must have shape {tuple(x.shape[:-2])} (the leading dims of features), "
                f"got {tuple(lengths.shape)}"
            )
        valid = valid & (torch.arange(t, device=x.device) < lengths[..., None])
    if mask is not None:
        mask = torch.as_tensor(mask, device=x.device)
        if tuple(mask.shape) != tuple(x.shape[:-1]):
            raise ValueError(
                f"mask must have shape {tuple(x.shape[:-1])} (features without the last dim), "
                f"got {tuple(mask.shape)}"
            )
        valid = valid & mask.bool()
    m = valid.to(x.dtype)[..., None]
    count = m.sum(dim=-2, keepdim=True).clamp(min=1.0)
    mean = (x * m).sum(dim=-2, keepdim=True) / count
    centred = (x - mean) * m
    var = centred.square().sum(dim=-2, keepdim=True) / count
    return centred / torch.sqrt(var + eps)


# --------------------------------------------------------------------------- PCEN


def pcen_smoothing(time_constant: float, frame_rate: float) -> float:
    """Smoothing coefficient ``s`` of :func:`pcen` for a time constant in seconds at
    ``frame_rate`` frames per second: ``s = (sqrt(1 + 4 T^2) - 1) / (2 T^2)``,
    ``T = time_constant * frame_rate`` (the convention of librosa's ``pcen``)."""
    if not time_constant > 0 or not frame_rate > 0:
        raise _bad("time_constant and frame_rate", "> 0", (time_constant, frame_rate))
    t = float(time_constant) * float(frame_rate)
    return (math.sqrt(1.0 + 4.0 * t * t) - 1.0) / (2.0 * t * t)


_PCEN_CHUNK = 64


def check_pcen_args(s: float, alpha: float, delta: float, r: float, eps: float) -> None:
    """ValueError naming the first parameter of :func:`pcen` out of its range."""
    if not 0.0 < s <= 1.0:
        raise _bad("s", "in (0, 1]", s)
    if not 0.0 <= alpha <= 1.0:
        raise _bad("alpha", "in [0, 1]", alpha)
    if not delta >= 0.0:
        raise _bad("delta", ">= 0", delta)
    if not 0.0 < r <= 1.0:
        raise _bad("r", "in (0, 1]", r)
    if not eps > 0.0:
        raise _bad("eps", "> 0", eps)


def pcen(
    energy: Tensor,
    s: float = 0.025,
    alpha: float = 0.98,
    delta: float = 2.0,
    r: float = 0.5,
    eps: float = 1e-6,
    initial: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor]:
    """Per-channel energy normalisation (Wang et al. 2017) of non-negative filterbank
    energies ``energy`` ``[..., T, F]`` (e.g. mel power).

    A first-order low-pass ``M_t = (1 - s) M_{t-1} + s E_t`` tracks each channel's level
    and ``PCEN_t = (E_t / (eps + M_t)^alpha + delta)^r - delta^r`` divides it out (automatic
    gain control) before root compression. The smoother is causal, so a stream computed
    frame by frame equals the offline result. ``initial`` (``[..., F]``) is ``M_{-1}``;
    by default ``M_{-1} = E_0`` (the smoother starts at the first frame's level, as
    librosa's does). Returns ``(pcen [..., T, F], M_{T-1} [..., F])``, the second to carry
    the state into the next block of a stream.
    """
    if energy.dim() < 2:
        raise ValueError(f"energy must have shape [..., T, F], got {tuple(energy.shape)}")
    check_pcen_args(s, alpha, delta, r, eps)
    e = _as_float(energy)
    t = e.shape[-2]
    m_prev = e[..., 0, :] if initial is None else torch.as_tensor(initial, dtype=e.dtype, device=e.device)
    if t == 0:
        return e.clone(), m_prev.clone()
    # The recursion in closed form over blocks of frames: within a block,
    # M_t = a^(t+1) M_prev + s sum_{k<=t} a^(t-k) E_k (a = 1 - s), one matmul per block.
    a = 1.0 - s
    n = min(t, _PCEN_CHUNK)
    idx = torch.arange(n, device=e.device, dtype=e.dtype)
    lag = idx[:, None] - idx[None, :]
    lower = torch.where(lag >= 0, s * torch.pow(torch.as_tensor(a, dtype=e.dtype), lag.clamp(min=0)),
                        torch.zeros((), dtype=e.dtype, device=e.device))
    carry = torch.pow(torch.as_tensor(a, dtype=e.dtype), idx + 1)[:, None]  # [n, 1]
    blocks = []
    for t0 in range(0, t, n):
        blk = e[..., t0:t0 + n, :]
        k = blk.shape[-2]
        m = torch.matmul(lower[:k, :k], blk) + carry[:k] * m_prev.unsqueeze(-2)
        blocks.append(m)
        m_prev = m[..., -1, :]
    smooth = torch.cat(blocks, dim=-2) if len(blocks) > 1 else blocks[0]
    out = (e / (eps + smooth).pow(alpha) + delta).pow(r) - delta ** r
    return out, m_prev


# --------------------------------------------------------------------------- resampling


def _sinc_kernels(orig: int, new: int, lowpass_filter_width: int, rolloff: float,
                  dtype: torch.dtype, device: torch.device) -> Tuple[Tensor, int]:
    """Polyphase Hann-windowed sinc kernels ``[new, 1, 2 * width + orig]`` and ``width``.

    Output phase ``r`` sits at input position ``r * orig / new`` (in input samples).
    The low-pass cutoff is ``rolloff * min(orig, new) / 2`` (in units where the input
    rate is ``orig``); the window spans ``lowpass_filter_width`` zero crossings either side.
    """
    base = min(orig, new) * rolloff  # twice the cutoff, same units as orig
    width = int(math.ceil(lowpass_filter_width * orig / base))
    taps = torch.arange(2 * width + orig, dtype=torch.float64)  # tap s <-> input offset s - width
    phase = torch.arange(new, dtype=torch.float64)[:, None] * orig / new
    d = phase - (taps[None, :] - width)  # distance (input samples) from output point to tap
    arg = d * (base / orig)  # in units of zero crossings
    arg = arg.clamp(-lowpass_filter_width, lowpass_filter_width)
    win = torch.cos(arg * (math.pi / (2.0 * lowpass_filter_width))).square()
    x = math.pi * arg
    safe = torch.where(arg == 0, torch.ones_like(x), x)
    sinc = torch.where(arg == 0, torch.ones_like(x), torch.sin(safe) / safe)
    k = sinc * win * (base / orig)
    return k.to(dtype=dtype, device=device)[:, None, :], width


def resample(
    waveform: Tensor,
    orig_sr: int,
    new_sr: int,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
) -> Tensor:
    """Band-limited (Hann-windowed sinc) polyphase resampling along the last axis.

    ``[..., N]`` -> ``[..., ceil(N * new_sr / orig_sr)]``. Rates are reduced by their gcd
    first, so e.g. 48 kHz -> 16 kHz uses a 3:1 filter bank.
    """
    if orig_sr is None or int(orig_sr) <= 0 or int(orig_sr) != orig_sr:
        raise _bad("orig_sr", "a positive integer", orig_sr)
    if new_sr is None or int(new_sr) <= 0 or int(new_sr) != new_sr:
        raise _bad("new_sr", "a positive integer", new_sr)
    if lowpass_filter_width is None or int(lowpass_filter_width) < 1:
        raise _bad("lowpass_filter_width", ">= 1", lowpass_filter_width)
    if rolloff is None or not 0.0 < rolloff <= 1.0:
        raise _bad("rolloff", "in (0, 1]", rolloff)
    x = _as_float(waveform)
    orig_sr, new_sr = int(orig_sr), int(new_sr)
    if orig_sr == new_sr:
        return x.clone()
    g = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // g, new_sr // g
    kernels, width = _sinc_kernels(orig, new, int(lowpass_filter_width), float(rolloff),
                                   x.dtype, x.device)
    lead = x.shape[:-1]
    n = x.shape[-1]
    flat = x.reshape(-1, 1, n)
    flat = F.pad(flat, (width, width + orig))
    y = F.conv1d(flat, kernels, stride=orig)  # [B, new, frames]
    y = y.transpose(1, 2).reshape(flat.shape[0], -1)
    target = -(-new * n // orig)  # ceil(new * n / orig)
    return y[:, :target].reshape(lead + (target,))
