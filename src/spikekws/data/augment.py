"""Training-time augmentation of waveforms, features and spike events.

A dataset option ``augment`` (e.g. ``data.options.augment`` in a config) is a dict given
to :func:`build_augment`; datasets apply it to their "train" split only::

    augment:
      seed: 0                 # every draw derives from (seed, epoch, item index)
      noise_snr: [5, 20]      # add noise at an SNR drawn uniformly from [5, 20] dB
      noise: white            # white | pink | brown | a file/folder of audio | a list of files
      noise_prob: 0.8         # fraction of clips that get noise (default 1)
      shift_ms: 100           # circular-free time shift by up to +-100 ms (zero fill)
      gain_db: 6              # gain drawn from [-6, 6] dB (or a [low, high] pair)
      speed: [0.9, 1.1]       # speed perturbation (resampling; factors rounded to 1 %)
      vtlp: [0.9, 1.1]        # vocal tract length perturbation: frequency axis scaled by a
                              # factor from this range, duration and timing unchanged
      tempo: [0.8, 1.25]      # speaking rate: played this many times faster, pitch and
                              # formants unchanged (phase vocoder)
      time_mask: 10           # SpecAugment: up to 10 steps per time mask ...
      time_masks: 2           # ... and this many masks (default 2)
      freq_mask: 8            # up to 8 channels per frequency mask
      freq_masks: 2
      time_jitter_ms: 2       # spikes: Gaussian jitter of every event time (std, ms)
      channel_jitter: 1       # spikes: every event moves by up to +-1 channel
      channel_shift: 5        # spikes: the whole sample moves by up to +-5 channels
      event_drop: 0.1         # spikes: each event is dropped with this probability

Waveform keys apply to audio datasets, spike keys (and the masks, on the binned
``[T, C]`` tensor) to spike datasets; a key that cannot apply to a dataset's kind is a
ValueError. Feature masks on audio datasets need the features, which the dataset never
sees: use :class:`SpecAugment` on the feature batch instead.

Functional forms (``add_noise``, ``time_shift``, ``apply_gain``, ``speed_perturb``,
``mask_time_freq``, ``augment_events``) take their random draws as arguments or from a
``numpy.random.Generator``, so they are pure and easy to test.
"""
from __future__ import annotations

import difflib
import math
import numbers
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "AUGMENT_KEYS",
    "NOISE_COLOURS",
    "Augment",
    "SpecAugment",
    "add_noise",
    "apply_gain",
    "augment_events",
    "build_augment",
    "coloured_noise",
    "item_generator",
    "mask_time_freq",
    "speed_perturb",
    "time_shift",
    "time_stretch",
    "vtlp_warp",
    "warp_frequencies",
]

#: Generated noise types accepted by the ``noise`` key.
NOISE_COLOURS: Tuple[str, ...] = ("white", "pink", "brown")

_WAVE_KEYS = ("noise_snr", "noise", "noise_prob", "shift_ms", "gain_db", "speed", "vtlp", "tempo")
_FEATURE_KEYS = ("time_mask", "time_masks", "freq_mask", "freq_masks")
_EVENT_KEYS = ("time_jitter_ms", "channel_jitter", "channel_shift", "event_drop")
#: Every key :func:`build_augment` accepts.
AUGMENT_KEYS: Tuple[str, ...] = ("seed",) + _WAVE_KEYS + _FEATURE_KEYS + _EVENT_KEYS

Range = Tuple[float, float]


# --------------------------------------------------------------------------- functional
def item_generator(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one item in one epoch (independent of workers and order)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch) & 0xFFFFFFFF, int(index)])


def coloured_noise(num_samples: int, colour: str, rng: np.random.Generator) -> Tensor:
    """Unit-variance noise ``[num_samples]`` (float32): white, pink (1/f) or brown (1/f^2)."""
    if colour not in NOISE_COLOURS:
        raise ValueError(f"noise colour must be one of {', '.join(NOISE_COLOURS)}, got {colour!r}")
    white = rng.standard_normal(num_samples)
    if colour == "white" or num_samples < 2:
        out = white
    else:
        spec = np.fft.rfft(white)
        freqs = np.arange(spec.shape[0], dtype=np.float64)
        freqs[0] = 1.0
        spec /= np.sqrt(freqs) if colour == "pink" else freqs
        spec[0] = 0.0
        out = np.fft.irfft(spec, n=num_samples)
    std = float(out.std())
    if std > 0:
        out = out / std
    return torch.from_numpy(out.astype(np.float32))


def add_noise(wave: Tensor, noise: Tensor, snr_db: float) -> Tensor:
    """``wave + a * noise`` with ``a`` chosen so that the power ratio is ``snr_db``.

    ``noise`` must have the shape of ``wave``. The power of ``wave`` is its mean square
    over the whole clip; a silent clip (power 0) is returned unchanged.
    """
    if noise.shape != wave.shape:
        raise ValueError(f"noise shape {tuple(noise.shape)} differs from wave shape {tuple(wave.shape)}")
    p_sig = float(wave.double().pow(2).mean())
    p_noise = float(noise.double().pow(2).mean())
    if p_sig <= 0.0 or p_noise <= 0.0:
        return wave.clone()
    scale = math.sqrt(p_sig / (p_noise * 10.0 ** (float(snr_db) / 10.0)))
    return wave + scale * noise.to(wave.dtype)


def time_shift(wave: Tensor, shift: int) -> Tensor:
    """Move ``wave`` (last axis) by ``shift`` samples (positive: later), zero-filling."""
    shift = int(shift)
    n = wave.shape[-1]
    if shift == 0:
        return wave.clone()
    out = torch.zeros_like(wave)
    if abs(shift) >= n:
        return out
    if shift > 0:
        out[..., shift:] = wave[..., : n - shift]
    else:
        out[..., : n + shift] = wave[..., -shift:]
    return out


def apply_gain(wave: Tensor, gain_db: float, clip: bool = True) -> Tensor:
    """``wave * 10 ** (gain_db / 20)``, clipped to [-1, 1] when ``clip``."""
    out = wave * (10.0 ** (float(gain_db) / 20.0))
    return out.clamp_(-1.0, 1.0) if clip else out


def speed_perturb(wave: Tensor, factor: float) -> Tensor:
    """Play ``wave`` ``factor`` times faster (pitch follows), by band-limited resampling.

    The factor is rounded to a multiple of 0.01 (so the polyphase filter stays small);
    the output has ``ceil(N / factor)`` samples.
    """
    from ..features.functional import resample

    k = int(round(float(factor) * 100))
    if k <= 0:
        raise ValueError(f"speed factor must be > 0, got {factor!r}")
    if k == 100:
        return wave.clone()
    return resample(wave, k, 100)


def warp_frequencies(freqs: Tensor, alpha: float, nyquist: float, boundary: float = 0.8) -> Tensor:
    """The piecewise-linear frequency warp of vocal tract length perturbation (Jaitly &
    Hinton 2013): ``f -> alpha * f`` up to ``f0 = boundary * nyquist * min(alpha, 1) / alpha``,
    then the straight line from ``(f0, alpha * f0)`` to ``(nyquist, nyquist)``, so that the
    band edges stay in place. Monotonic for every ``alpha > 0``."""
    alpha = float(alpha)
    if not alpha > 0:
        raise ValueError(f"vtlp factor must be > 0, got {alpha!r}")
    f0 = boundary * nyquist * min(alpha, 1.0) / alpha
    upper = alpha * f0 + (nyquist - alpha * f0) * (freqs - f0) / (nyquist - f0)
    return torch.where(freqs <= f0, alpha * freqs, upper)


def _stft_setup(wave: Tensor, sample_rate: int, window_ms: float):
    """(x [B, N] float64, its STFT [B, bins, frames], n_fft, hop, window) for the phase
    vocoders below: Hann window of about ``window_ms`` (a power of two), hop a quarter."""
    n_fft = 1 << max(3, int(round(math.log2(window_ms * 1e-3 * sample_rate))))
    x = wave.reshape(-1, wave.shape[-1]).double()
    hop, window = n_fft // 4, torch.hann_window(n_fft, dtype=torch.float64)
    spec = torch.stft(x, n_fft, hop, window=window, center=True, pad_mode="constant",
                      return_complex=True)
    return x, spec, n_fft, hop, window


def _resynthesise(mag: Tensor, phase: Tensor, n_fft: int, hop: int, window: Tensor,
                  length: int, like: Tensor) -> Tensor:
    """Overlap-add of the spectra ``mag * exp(i phase)`` to ``length`` samples, in the
    dtype and leading shape of the waveform ``like``."""
    out = torch.istft(torch.polar(mag, phase), n_fft, hop, window=window, center=True,
                      length=length)
    return out.to(like.dtype).reshape(*like.shape[:-1], length)


def _phase_advance(phase: Tensor, n_fft: int, hop: int) -> Tensor:
    """Instantaneous frequency (rad/sample) of every bin between consecutive frames of
    ``phase [..., bins, frames]`` -> ``[..., bins, frames - 1]``."""
    bins = phase.shape[-2]
    omega = 2.0 * math.pi * torch.arange(bins, dtype=torch.float64) / n_fft  # bin centres
    dphi = phase[..., 1:] - phase[..., :-1] - omega[:, None] * hop
    dphi = torch.remainder(dphi + math.pi, 2.0 * math.pi) - math.pi
    return omega[:, None] + dphi / hop


def time_stretch(wave: Tensor, rate: float, sample_rate: int, window_ms: float = 32.0) -> Tensor:
    """Play ``wave [..., N]`` ``rate`` times faster without changing its pitch or formants.

    A phase vocoder: output frames (Hann window, hop a quarter of it) read the input's
    short-time magnitudes at ``rate`` times their own position, interpolated linearly
    between frames, and advance each bin's phase at the instantaneous frequency measured
    there. The output has ``round(N / rate)`` samples (a clip shorter than one hop is
    resampled linearly instead; one of fewer than 2 samples is returned as is). ``rate == 1``
    returns a copy.
    """
    rate = float(rate)
    if not rate > 0:
        raise ValueError(f"tempo factor must be > 0, got {rate!r}")
    n = wave.shape[-1]
    if rate == 1.0 or n < 2:
        return wave.clone()
    x, spec, n_fft, hop, window = _stft_setup(wave, sample_rate, window_ms)
    frames = spec.shape[-1]
    out_len = max(1, int(round(n / rate)))
    if frames < 2:  # shorter than a hop: no spectrum to track, resample the samples
        out = torch.nn.functional.interpolate(x[:, None], size=out_len, mode="linear",
                                              align_corners=True)[:, 0]
        return out.to(wave.dtype).reshape(*wave.shape[:-1], out_len)
    # enough output frames for istft to cover out_len samples (center=True: hop * (n - 1));
    # those reading past the last input frame repeat it
    n_out = -(-out_len // hop) + 1
    steps = (torch.arange(n_out, dtype=torch.float64) * rate).clamp(max=frames - 1)
    lo = steps.floor().long().clamp(max=frames - 2)
    frac = steps - lo.double()
    mag = spec.abs()
    new_mag = mag[..., lo] * (1.0 - frac) + mag[..., lo + 1] * frac
    phase = torch.angle(spec)
    inst = _phase_advance(phase, n_fft, hop)  # [B, bins, frames - 1]
    advance = inst[..., lo] * hop
    new_phase = torch.cat([phase[..., :1], phase[..., :1] + torch.cumsum(advance[..., :-1], -1)], -1)
    return _resynthesise(new_mag, new_phase, n_fft, hop, window, out_len, wave)


def vtlp_warp(wave: Tensor, alpha: float, sample_rate: int, window_ms: float = 32.0) -> Tensor:
    """Vocal tract length perturbation of a waveform ``[..., N]``.

    A phase vocoder that moves the energy at frequency ``f`` to :func:`warp_frequencies`
    ``(f)``: formants scale by ``alpha``, the band edges stay, duration and timing are
    unchanged. Short-time spectra (Hann window, hop a quarter of it) are resampled along
    frequency (magnitudes interpolated linearly between bins); each output bin's phase
    advances from frame to frame at the warped instantaneous frequency of its source bin,
    so that a warped partial keeps a consistent frequency after overlap-add.
    ``alpha == 1`` returns a copy of the input.
    """
    if float(alpha) == 1.0:
        return wave.clone()
    n = wave.shape[-1]
    if n < 2:
        return wave.clone()
    _, spec, n_fft, hop, window = _stft_setup(wave, sample_rate, window_ms)
    bins = spec.shape[-2]
    nyquist = sample_rate / 2.0
    freqs = torch.linspace(0.0, nyquist, bins, dtype=torch.float64)
    warped = warp_frequencies(freqs, alpha, nyquist)
    # source frequency of each output bin: the warp is monotonic, invert by interpolation
    src = torch.from_numpy(np.interp(freqs.numpy(), warped.numpy(), freqs.numpy()))
    pos = (src / nyquist * (bins - 1)).clamp(0, bins - 1)
    lo = pos.floor().long().clamp(max=bins - 2)
    hi = lo + 1
    frac = (pos - lo.double())[:, None]
    mag = spec.abs()
    new_mag = mag[..., lo, :] * (1.0 - frac) + mag[..., hi, :] * frac
    # instantaneous frequency (rad/sample) of every source bin and frame
    near = pos.round().long()
    phase = torch.angle(spec)
    inst = _phase_advance(phase, n_fft, hop)  # [B, bins, frames - 1]
    inst_hz = (inst * sample_rate / (2.0 * math.pi)).clamp(0.0, nyquist)
    out_hz = warp_frequencies(inst_hz[..., near, :], alpha, nyquist)
    advance = out_hz * (2.0 * math.pi / sample_rate) * hop
    start = phase[..., near, :1]
    new_phase = torch.cat([start, start + torch.cumsum(advance, dim=-1)], dim=-1)
    return _resynthesise(new_mag, new_phase, n_fft, hop, window, n, wave)


def mask_time_freq(
    x: Tensor,
    rng: np.random.Generator,
    time_mask: int = 0,
    time_masks: int = 2,
    freq_mask: int = 0,
    freq_masks: int = 2,
    value: float = 0.0,
) -> Tensor:
    """SpecAugment masks on ``x: [..., T, F]`` (one draw shared by the leading dims).

    Each of ``time_masks`` masks sets ``w ~ U{0..time_mask}`` consecutive steps to
    ``value``; likewise ``freq_masks`` masks of up to ``freq_mask`` channels.
    """
    out = x.clone()
    t, f = x.shape[-2], x.shape[-1]
    for _ in range(int(time_masks) if time_mask > 0 else 0):
        w = int(rng.integers(0, min(int(time_mask), t) + 1))
        if w:
            t0 = int(rng.integers(0, t - w + 1))
            out[..., t0 : t0 + w, :] = value
    for _ in range(int(freq_masks) if freq_mask > 0 else 0):
        w = int(rng.integers(0, min(int(freq_mask), f) + 1))
        if w:
            f0 = int(rng.integers(0, f - w + 1))
            out[..., f0 : f0 + w] = value
    return out


def augment_events(
    times: np.ndarray,
    units: np.ndarray,
    num_channels: int,
    rng: np.random.Generator,
    time_jitter: float = 0.0,
    channel_jitter: int = 0,
    channel_shift: int = 0,
    event_drop: float = 0.0,
) -> Tuple[np.ndarray, np.ndarray]:
    """Perturb spike events (``times`` in seconds, integer ``units``).

    In order: drop each event with probability ``event_drop``; move all units by one
    shift drawn from ``{-channel_shift..channel_shift}``; move each unit by its own draw
    from ``{-channel_jitter..channel_jitter}``; add Gaussian noise of std ``time_jitter``
    seconds to each time (negative times become 0). Events that leave
    ``[0, num_channels)`` are dropped. Returns new arrays (float64 times, int64 units).
    """
    t = np.asarray(times, dtype=np.float64)
    u = np.asarray(units, dtype=np.int64)
    if event_drop > 0 and t.size:
        keep = rng.random(t.size) >= event_drop
        t, u = t[keep], u[keep]
    if channel_shift > 0:
        u = u + int(rng.integers(-channel_shift, channel_shift + 1))
    if channel_jitter > 0 and u.size:
        u = u + rng.integers(-channel_jitter, channel_jitter + 1, size=u.size)
    if time_jitter > 0 and t.size:
        t = np.maximum(t + rng.normal(0.0, time_jitter, size=t.size), 0.0)
    inside = (u >= 0) & (u < num_channels)
    if not inside.all():
        t, u = t[inside], u[inside]
    return t, u


# --------------------------------------------------------------------------- modules
class SpecAugment(nn.Module):
    """Time/frequency masks on a feature batch ``[B, T, F]`` (or ``[T, F]``).

    Active only in training mode (``.eval()`` makes it the identity). Every sample gets
    its own masks, drawn from a generator seeded with ``seed`` at construction.
    """

    def __init__(self, time_mask: int = 0, time_masks: int = 2, freq_mask: int = 0,
                 freq_masks: int = 2, seed: int = 0) -> None:
        super().__init__()
        for name, v in (("time_mask", time_mask), ("time_masks", time_masks),
                        ("freq_mask", freq_mask), ("freq_masks", freq_masks)):
            _check_int(name, v, 0)
        self.time_mask, self.time_masks = int(time_mask), int(time_masks)
        self.freq_mask, self.freq_masks = int(freq_mask), int(freq_masks)
        self.rng = np.random.default_rng(int(seed))

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        if x.dim() == 2:
            return mask_time_freq(x, self.rng, self.time_mask, self.time_masks,
                                  self.freq_mask, self.freq_masks)
        return torch.stack([
            mask_time_freq(xi, self.rng, self.time_mask, self.time_masks,
                           self.freq_mask, self.freq_masks) for xi in x])

    def extra_repr(self) -> str:
        return (f"time_mask={self.time_mask}, time_masks={self.time_masks}, "
                f"freq_mask={self.freq_mask}, freq_masks={self.freq_masks}")


# --------------------------------------------------------------------------- spec
def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"augment.{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_number(name: str, value: Any, low: float, high: float = math.inf,
                  low_open: bool = False) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise ValueError(f"augment.{name} must be a number in {bracket}{low:g}, {high:g}], got {value!r}")
    return float(value)


def _check_range(name: str, value: Any, symmetric_around: Optional[float] = None,
                 low: float = -math.inf, low_open: bool = False) -> Optional[Range]:
    """``[lo, hi]`` -> (lo, hi); a number x -> (c - x, c + x) when ``symmetric_around=c``
    else (x, x); None -> None."""
    if value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        v = float(value)
        lo_hi = (symmetric_around - v, symmetric_around + v) if symmetric_around is not None else (v, v)
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        lo_hi = (value[0], value[1])
    else:
        raise ValueError(f"augment.{name} must be a number or a [low, high] pair, got {value!r}")
    lo = _check_number(name, lo_hi[0], low, low_open=low_open)
    hi = _check_number(name, lo_hi[1], low, low_open=low_open)
    if lo > hi:
        raise ValueError(f"augment.{name} needs low <= high, got {list(value)!r}")
    return (lo, hi)


NoiseSource = Union[str, Sequence[str]]


class Augment:
    """A validated augmentation spec (see the module docstring for the keys).

    Datasets call :meth:`generator` once per item and then :meth:`wave`,
    :meth:`features` or :meth:`events` with it.
    """

    def __init__(
        self,
        seed: int = 0,
        noise_snr: Any = None,
        noise: Optional[NoiseSource] = None,
        noise_prob: float = 1.0,
        shift_ms: float = 0.0,
        gain_db: Any = None,
        speed: Any = None,
        vtlp: Any = None,
        tempo: Any = None,
        time_mask: int = 0,
        time_masks: int = 2,
        freq_mask: int = 0,
        freq_masks: int = 2,
        time_jitter_ms: float = 0.0,
        channel_jitter: int = 0,
        channel_shift: int = 0,
        event_drop: float = 0.0,
    ) -> None:
        self.seed = _check_int("seed", seed, 0)
        self.noise_snr = _check_range("noise_snr", noise_snr)
        if noise is not None and self.noise_snr is None:
            raise ValueError("augment.noise is set but augment.noise_snr is not; give an SNR range in dB")
        self.noise: NoiseSource = "white" if noise is None else noise
        if isinstance(self.noise, str):
            if self.noise not in NOISE_COLOURS and not Path(self.noise).expanduser().exists():
                raise ValueError(f"augment.noise must be one of {', '.join(NOISE_COLOURS)} or an "
                                 f"existing audio file/folder, got {self.noise!r}")
        elif isinstance(self.noise, (list, tuple)):
            if not self.noise or not all(isinstance(p, str) for p in self.noise):
                raise ValueError(f"augment.noise must be a non-empty list of file paths, got {noise!r}")
        else:
            raise ValueError(f"augment.noise must be a string or a list of paths, got {noise!r}")
        self.noise_prob = _check_number("noise_prob", noise_prob, 0.0, 1.0)
        self.shift_ms = _check_number("shift_ms", shift_ms, 0.0)
        self.gain_db = _check_range("gain_db", gain_db, symmetric_around=0.0)
        self.speed = _check_range("speed", speed, symmetric_around=1.0, low=0.0, low_open=True)
        self.vtlp = _check_range("vtlp", vtlp, symmetric_around=1.0, low=0.0, low_open=True)
        self.tempo = _check_range("tempo", tempo, symmetric_around=1.0, low=0.0, low_open=True)
        self.time_mask = _check_int("time_mask", time_mask, 0)
        self.time_masks = _check_int("time_masks", time_masks, 0)
        self.freq_mask = _check_int("freq_mask", freq_mask, 0)
        self.freq_masks = _check_int("freq_masks", freq_masks, 0)
        self.time_jitter_ms = _check_number("time_jitter_ms", time_jitter_ms, 0.0)
        self.channel_jitter = _check_int("channel_jitter", channel_jitter, 0)
        self.channel_shift = _check_int("channel_shift", channel_shift, 0)
        self.event_drop = _check_number("event_drop", event_drop, 0.0, 1.0)
        self._noise_cache: Dict[int, List[Tensor]] = {}

    # -- what is active ----------------------------------------------------------------
    @property
    def has_wave(self) -> bool:
        return bool(self.noise_snr is not None or self.shift_ms > 0 or self.gain_db is not None
                    or self.speed is not None or self.vtlp is not None
                    or self.tempo is not None)

    @property
    def has_features(self) -> bool:
        return bool(self.time_mask > 0 and self.time_masks > 0
                    or self.freq_mask > 0 and self.freq_masks > 0)

    @property
    def has_events(self) -> bool:
        return bool(self.time_jitter_ms > 0 or self.channel_jitter > 0 or self.channel_shift > 0
                    or self.event_drop > 0)

    def check_kind(self, kind: str) -> None:
        """ValueError if a configured key cannot apply to a dataset of ``kind``."""
        if kind == "audio" and (self.has_features or self.has_events):
            keys = [k for k in _FEATURE_KEYS + _EVENT_KEYS if k in self.active_keys()]
            raise ValueError(
                f"augment keys {', '.join(keys)} do not apply to an audio dataset (it yields "
                f"waveforms); use spikekws.data.augment.SpecAugment on the feature batch, or "
                f"these keys with a spike dataset")
        if kind == "spikes" and self.has_wave:
            keys = [k for k in _WAVE_KEYS if k in self.active_keys()]
            raise ValueError(f"augment keys {', '.join(keys)} are waveform augmentations and do "
                             f"not apply to a spike dataset")

    def active_keys(self) -> List[str]:
        d = self.to_dict()
        defaults = Augment().to_dict()
        return [k for k in AUGMENT_KEYS if k != "seed" and d[k] != defaults[k]]

    def to_dict(self) -> Dict[str, Any]:
        return {
            "seed": self.seed,
            "noise_snr": list(self.noise_snr) if self.noise_snr else None,
            "noise": self.noise if isinstance(self.noise, str) else list(self.noise),
            "noise_prob": self.noise_prob,
            "shift_ms": self.shift_ms,
            "gain_db": list(self.gain_db) if self.gain_db else None,
            "speed": list(self.speed) if self.speed else None,
            "vtlp": list(self.vtlp) if self.vtlp else None,
            "tempo": list(self.tempo) if self.tempo else None,
            "time_mask": self.time_mask, "time_masks": self.time_masks,
            "freq_mask": self.freq_mask, "freq_masks": self.freq_masks,
            "time_jitter_ms": self.time_jitter_ms, "channel_jitter": self.channel_jitter,
            "channel_shift": self.channel_shift, "event_drop": self.event_drop,
        }

    def __repr__(self) -> str:
        active = {k: self.to_dict()[k] for k in self.active_keys()}
        return f"Augment(seed={self.seed}, {active})"

    def generator(self, epoch: int, index: int) -> np.random.Generator:
        return item_generator(self.seed, epoch, index)

    # -- noise sources -----------------------------------------------------------------
    def _noise_files(self) -> List[Path]:
        from .audio import AUDIO_EXTENSIONS

        entries = [self.noise] if isinstance(self.noise, str) else list(self.noise)
        files: List[Path] = []
        for entry in entries:
            p = Path(entry).expanduser()
            if p.is_dir():
                files.extend(sorted(f for f in p.rglob("*")
                                    if f.suffix.lower() in AUDIO_EXTENSIONS and f.is_file()))
            elif p.is_file():
                files.append(p)
            else:
                raise FileNotFoundError(f"augment.noise: {p} not found")
        if not files:
            raise ValueError(f"augment.noise: no audio files in {', '.join(entries)}")
        return files

    def _noise_bank(self, sample_rate: int) -> List[Tensor]:
        """Noise recordings at ``sample_rate`` (resampled when needed), loaded once."""
        bank = self._noise_cache.get(sample_rate)
        if bank is None:
            from ..features.functional import resample
            from .audio import audio_header, load_audio

            bank = []
            for path in self._noise_files():
                wave = load_audio(path)
                rate = int(audio_header(path).samplerate)
                if rate != sample_rate:
                    wave = resample(wave, rate, sample_rate)
                bank.append(wave.float())
            self._noise_cache[sample_rate] = bank
        return bank

    def _draw_noise(self, n: int, sample_rate: int, rng: np.random.Generator) -> Tensor:
        if isinstance(self.noise, str) and self.noise in NOISE_COLOURS:
            return coloured_noise(n, self.noise, rng)
        bank = self._noise_bank(sample_rate)
        src = bank[int(rng.integers(0, len(bank)))]
        if src.numel() < n:  # tile short recordings
            src = src.repeat(-(-n // src.numel()))
        start = int(rng.integers(0, src.numel() - n + 1))
        return src[start : start + n].clone()

    # -- application -------------------------------------------------------------------
    def wave(self, wave: Tensor, sample_rate: int, num_samples: int, rng: np.random.Generator,
             length_mode: str = "center") -> Tensor:
        """Speed -> tempo -> VTLP -> crop/pad to ``num_samples`` -> shift -> gain -> noise."""
        from .audio import fix_length

        if self.speed is not None:
            wave = speed_perturb(wave, rng.uniform(*self.speed))
        if self.tempo is not None:
            wave = time_stretch(wave, rng.uniform(*self.tempo), sample_rate)
        if self.vtlp is not None:
            wave = vtlp_warp(wave, rng.uniform(*self.vtlp), sample_rate)
        wave = fix_length(wave, num_samples, length_mode)
        if self.shift_ms > 0:
            max_shift = int(round(self.shift_ms * 1e-3 * sample_rate))
            wave = time_shift(wave, int(rng.integers(-max_shift, max_shift + 1)))
        if self.gain_db is not None:
            wave = apply_gain(wave, rng.uniform(*self.gain_db))
        if self.noise_snr is not None and rng.random() < self.noise_prob:
            noise = self._draw_noise(wave.shape[-1], sample_rate, rng)
            wave = add_noise(wave, noise, rng.uniform(*self.noise_snr)).clamp_(-1.0, 1.0)
        return wave

    def features(self, x: Tensor, rng: np.random.Generator) -> Tensor:
        """SpecAugment masks on ``x: [T, F]``."""
        if not self.has_features:
            return x
        return mask_time_freq(x, rng, self.time_mask, self.time_masks, self.freq_mask,
                              self.freq_masks)

    def events(self, times: np.ndarray, units: np.ndarray, num_channels: int,
               rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        """Event perturbations (see :func:`augment_events`)."""
        if not self.has_events:
            return times, units
        return augment_events(times, units, num_channels, rng, self.time_jitter_ms * 1e-3,
                              self.channel_jitter, self.channel_shift, self.event_drop)


def build_augment(spec: Union[None, Augment, Mapping[str, Any]]) -> Optional[Augment]:
    """An :class:`Augment` from a dict of the keys in the module docstring.

    ``None`` or an empty dict -> None (no augmentation); an ``Augment`` is returned as is.
    Unknown keys raise ValueError naming the key, the closest valid one and all valid keys.
    """
    if spec is None:
        return None
    if isinstance(spec, Augment):
        return spec
    if not isinstance(spec, Mapping):
        raise TypeError(f"augment must be a dict of augmentation settings, got {type(spec).__name__}")
    if not spec:
        return None
    for key in spec:
        if key not in AUGMENT_KEYS:
            close = difflib.get_close_matches(str(key), AUGMENT_KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown augment key {key!r}{hint} (valid keys: {', '.join(AUGMENT_KEYS)})")
    return Augment(**dict(spec))
