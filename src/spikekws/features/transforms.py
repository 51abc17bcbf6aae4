"""Feature extraction modules (log-mel, MFCC) and the feature registry.

Modules precompute their window, mel filterbank and DCT basis as non-persistent buffers:
``.to(device)`` moves them, but they never enter a ``state_dict`` (they are fully
determined by the constructor arguments). ``forward`` maps a waveform ``[B, N]`` (or
``[N]``) to features ``[B, T, F]`` (or ``[T, F]``), time before features.
"""
from __future__ import annotations

import inspect
import numbers
from typing import Any, Dict, Optional

import torch
from torch import Tensor, nn

from ..registry import Registry
from . import functional as AF

__all__ = ["FEATURES", "LogMel", "MFCC", "build_features", "feature_kwargs", "NORMALIZE_MODES", "PCEN_DEFAULTS"]

FEATURES: Registry = Registry("feature")

NORMALIZE_MODES = ("utterance", "pcen", "none")

#: Parameters of ``normalize="pcen"`` (librosa's defaults): level tracker time constant in
#: seconds, gain exponent, bias and root of the compression, floor of the level.
PCEN_DEFAULTS = {"time_constant": 0.4, "alpha": 0.98, "delta": 2.0, "r": 0.5, "eps": 1e-6}


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _bad(name: str, allowed: str, value: Any) -> ValueError:
    return ValueError(f"{name} must be {allowed}, got {value!r}")


class _LogMelBase(nn.Module):
    """Shared framing / mel / normalisation / delta logic."""

    def __init__(
        self,
        sample_rate: int,
        n_mels: int,
        win_ms: float,
        hop_ms: float,
        n_fft: Optional[int],
        f_min: float,
        f_max: Optional[float],
        log_offset: float,
        normalize: Optional[str],
        deltas: int,
        delta_win: int,
        window: str,
        center: bool,
        pad_mode: str,
        power: float,
        mel_scale: str,
        mel_norm: Optional[str],
        eps: float,
        pcen: Optional[Dict[str, float]] = None,
    ) -> None:
        super().__init__()
        if not _is_int(sample_rate) or sample_rate <= 0:
            raise _bad("sample_rate", "a positive integer (Hz)", sample_rate)
        if not _is_int(n_mels) or n_mels <= 0:
            raise _bad("n_mels", "a positive integer (>= 1)", n_mels)
        if not _is_real(win_ms) or win_ms <= 0:
            raise _bad("win_ms", "> 0 (milliseconds)", win_ms)
        if not _is_real(hop_ms) or hop_ms <= 0:
            raise _bad("hop_ms", "> 0 (milliseconds)", hop_ms)
        if hop_ms > win_ms:
            raise _bad("hop_ms", f"in (0, win_ms={win_ms}] (hop must not exceed the window)", hop_ms)
        if n_fft is not None and (not _is_int(n_fft) or n_fft <= 0):
            raise _bad("n_fft", "None or a positive integer", n_fft)
        nyquist = sample_rate / 2.0
        if not _is_real(f_min) or not 0.0 <= f_min < nyquist:
            raise _bad("f_min", f"in [0, {nyquist:g}) Hz (sample_rate / 2)", f_min)
        if f_max is None:
            f_max = nyquist
        if not _is_real(f_max) or not f_min < f_max <= nyquist:
            raise _bad("f_max", f"in ({f_min:g}, {nyquist:g}] Hz (f_min < f_max <= sample_rate / 2)", f_max)
        if not _is_real(log_offset) or log_offset <= 0:
            raise _bad("log_offset", "> 0", log_offset)
        if normalize is None or normalize is False:
            normalize = "none"
        if not isinstance(normalize, str) or normalize.lower() not in NORMALIZE_MODES:
            raise _bad("normalize", "one of 'utterance', 'pcen', 'none'", normalize)
        if not _is_int(deltas) or deltas not in (0, 1, 2):
            raise _bad("deltas", "0, 1 or 2", deltas)
        if not _is_int(delta_win) or delta_win < 3:
            raise _bad("delta_win", "an integer >= 3", delta_win)
        if not isinstance(window, str) or window.lower() not in AF.WINDOWS:
            raise _bad("window", "one of " + ", ".join(repr(w) for w in AF.WINDOWS), window)
        if not isinstance(pad_mode, str) or pad_mode.lower() not in AF.PAD_MODES:
            raise _bad("pad_mode", "one of " + ", ".join(repr(p) for p in AF.PAD_MODES), pad_mode)
        if not _is_real(power) or power <= 0:
            raise _bad("power", "> 0 (1: magnitude, 2: power)", power)
        if not isinstance(mel_scale, str) or mel_scale.lower() not in AF.MEL_SCALES:
            raise _bad("mel_scale", "one of " + ", ".join(repr(m) for m in AF.MEL_SCALES), mel_scale)
        if mel_norm is not None and mel_norm != "slaney":
            raise _bad("mel_norm", "None or 'slaney'", mel_norm)
        if not _is_real(eps) or eps < 0:
            raise _bad("eps", ">= 0", eps)
        pcen_opts = dict(PCEN_DEFAULTS)
        if pcen is not None:
            if not isinstance(pcen, dict):
                raise _bad("pcen", "a dict with keys " + ", ".join(PCEN_DEFAULTS), pcen)
            unknown = sorted(set(pcen) - set(PCEN_DEFAULTS))
            if unknown:
                raise _bad("pcen", "a dict with keys among " + ", ".join(PCEN_DEFAULTS),
                           f"unknown key(s) {', '.join(unknown)}")
            for k, v in pcen.items():
                if not _is_real(v):
                    raise _bad(f"pcen.{k}", "a number", v)
            pcen_opts.update({k: float(v) for k, v in pcen.items()})

        win_length, hop_length, n_fft_ = AF.frame_params(sample_rate, win_ms, hop_ms, n_fft)
        self.sample_rate = int(sample_rate)
        self.n_mels = int(n_mels)
        self.win_ms = float(win_ms)
        self.hop_ms = float(hop_ms)
        self.win_length = win_length
        self.hop_length = hop_length
        self.n_fft = n_fft_
        self.f_min = float(f_min)
        self.f_max = float(f_max)
        self.log_offset = float(log_offset)
        self.normalize = normalize.lower()
        self.deltas = int(deltas)
        self.delta_win = int(delta_win)
        self.window_kind = window.lower()
        self.center = bool(center)
        self.pad_mode = pad_mode.lower()
        self.power = float(power)
        self.mel_scale = mel_scale.lower()
        self.mel_norm = mel_norm
        self.eps = float(eps)
        self.pcen = pcen_opts
        # smoothing coefficient of the PCEN level tracker, from its time constant
        self.pcen_s = AF.pcen_smoothing(pcen_opts["time_constant"], sample_rate / hop_length)
        AF.check_pcen_args(self.pcen_s, pcen_opts["alpha"], pcen_opts["delta"], pcen_opts["r"],
                           pcen_opts["eps"])

        self._hi_cache: Dict[Any, Tensor] = {}
        self.register_buffer(
            "window", AF.make_window(self.window_kind, win_length, n_fft_, dtype=torch.float32),
            persistent=False)
        self.register_buffer(
            "mel_fb",
            AF.mel_filterbank(n_fft_ // 2 + 1, self.f_min, self.f_max, self.n_mels, self.sample_rate,
                              norm=mel_norm, mel_scale=self.mel_scale, dtype=torch.float32),
            persistent=False)

    # ------------------------------------------------------------------ geometry

    @property
    def num_static_features(self) -> int:
        raise NotImplementedError

    @property
    def num_features(self) -> int:
        """Feature dimension F of the output (static features times 1 + deltas)."""
        return self.num_static_features * (1 + self.deltas)

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.hop_length

    def num_frames(self, num_samples: int) -> int:
        """Number of output frames T for a waveform of ``num_samples`` samples."""
        return AF.num_frames(num_samples, self.n_fft, self.hop_length, self.center)

    def frame_lengths(self, lengths: Tensor) -> Tensor:
        """Valid frame counts for valid sample counts ``lengths`` (integer tensor)."""
        lengths = torch.as_tensor(lengths)
        if self.center:
            return 1 + torch.div(lengths, self.hop_length, rounding_mode="floor")
        return torch.clamp(
            1 + torch.div(lengths - self.n_fft, self.hop_length, rounding_mode="floor"), min=0)

    # ------------------------------------------------------------------ compute

    def _log_mel(self, waveform: Tensor) -> Tensor:
        if not isinstance(waveform, Tensor):
            raise TypeError(f"waveform must be a torch.Tensor, got {type(waveform).__name__}")
        if waveform.dim() < 1:
            raise ValueError("waveform must have shape [N] or [B, N], got a scalar")
        x = waveform if waveform.is_floating_point() else waveform.to(torch.get_default_dtype())
        window, mel_fb = self._const("window", x), self._const("mel_fb", x)
        spec = AF.stft_power(x, self.n_fft, self.hop_length, self.win_length, window=window,
                             center=self.center, pad_mode=self.pad_mode, power=self.power)
        mel = torch.matmul(spec.transpose(-1, -2), mel_fb)
        if self.normalize == "pcen":
            return self.compress_pcen(mel)[0]
        return torch.log(mel + self.log_offset)

    def compress_pcen(self, mel: Tensor, initial: Optional[Tensor] = None):
        """PCEN of mel energies ``[..., T, n_mels]`` with this module's parameters ->
        (features, smoother state); see :func:`spikekws.features.functional.pcen`."""
        p = self.pcen
        return AF.pcen(mel, s=self.pcen_s, alpha=p["alpha"], delta=p["delta"], r=p["r"],
                       eps=p["eps"], initial=initial)

    def _make_const(self, name: str, dtype: torch.dtype, device: torch.device) -> Tensor:
        if name == "window":
            return AF.make_window(self.window_kind, self.win_length, self.n_fft, dtype=dtype, device=device)
        if name == "mel_fb":
            return AF.mel_filterbank(self.n_fft // 2 + 1, self.f_min, self.f_max, self.n_mels,
                                     self.sample_rate, norm=self.mel_norm, mel_scale=self.mel_scale,
                                     dtype=dtype, device=device)
        raise KeyError(name)

    def _const(self, name: str, x: Tensor) -> Tensor:
        """Buffer ``name`` in the dtype of ``x``.

        Buffers hold float32-accurate values; for inputs of higher precision (float64) the
        constant is rebuilt at full precision once per (dtype, device) and cached, so that
        float64 inputs get float64-accurate features.
        """
        buf: Tensor = getattr(self, name)
        if torch.finfo(x.dtype).bits <= 32:
            return buf.to(device=x.device, dtype=x.dtype)
        key = (name, x.dtype, x.device)
        cached = self._hi_cache.get(key)
        if cached is None:
            cached = self._make_const(name, x.dtype, x.device)
            self._hi_cache[key] = cached
        return cached

    def _static(self, waveform: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, waveform: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """``[B, N]`` -> ``[B, T, F]`` (``[N]`` -> ``[T, F]``).

        ``lengths`` (optional, ``[B]`` valid sample counts of a zero-padded batch) keeps
        padding out of the utterance normalisation statistics; padded frames come out as 0.
        Frames of digital silence (all samples zero, e.g. centre padding) are likewise left
        out of the statistics and come out as 0.
        """
        feats = self._static(waveform)
        if self.deltas:
            feats = AF.add_deltas(feats, self.deltas, self.delta_win)
        if self.normalize == "utterance":
            frame_len = None
            if lengths is not None:
                frame_len = self.frame_lengths(torch.as_tensor(lengths, device=feats.device))
                frame_len = frame_len.clamp(max=feats.shape[-2])
            active = self.active_frames(waveform)
            feats = AF.normalize_utterance(feats, eps=self.eps, lengths=frame_len, mask=active)
        return feats

    def active_frames(self, waveform: Tensor) -> Tensor:
        """``[B, N]`` -> bool ``[B, T]``: frames that hold at least one non-zero sample.

        Digital silence (zero padding of a short clip) carries no information about the
        speaker or the channel; leaving it out of the utterance statistics keeps them
        independent of how much padding a clip got.
        """
        x = waveform.abs()
        if self.center:
            half = self.n_fft // 2
            x = torch.nn.functional.pad(x.reshape(-1, x.shape[-1]), (half, half)).reshape(
                *x.shape[:-1], x.shape[-1] + 2 * half)
        return x.unfold(-1, self.n_fft, self.hop_length).amax(dim=-1) > 0

    def extra_repr(self) -> str:
        return (f"sample_rate={self.sample_rate}, n_mels={self.n_mels}, win_length={self.win_length}, "
                f"hop_length={self.hop_length}, n_fft={self.n_fft}, f_min={self.f_min:g}, "
                f"f_max={self.f_max:g}, normalize={self.normalize!r}, deltas={self.deltas}, "
                f"num_features={self.num_features}")


@FEATURES.register("logmel")
class LogMel(_LogMelBase):
    """Log mel spectrogram ``log(mel + log_offset)``, optionally with deltas and
    per-utterance normalisation. Output ``[B, T, n_mels * (1 + deltas)]``.

    ``normalize``: ``"utterance"`` (mean/variance per channel over each clip), ``"none"``,
    or ``"pcen"``: per-channel energy normalisation in place of the log (causal automatic
    gain control, so it streams frame-exactly; parameters in ``pcen``, defaults
    :data:`PCEN_DEFAULTS`)."""

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 40,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        n_fft: Optional[int] = None,
        f_min: float = 20.0,
        f_max: Optional[float] = None,
        log_offset: float = 1e-6,
        normalize: Optional[str] = "utterance",
        deltas: int = 0,
        delta_win: int = 5,
        window: str = "hann",
        center: bool = True,
        pad_mode: str = "reflect",
        power: float = 2.0,
        mel_scale: str = "htk",
        mel_norm: Optional[str] = None,
        eps: float = 1e-5,
        pcen: Optional[Dict[str, float]] = None,
    ) -> None:
        super().__init__(sample_rate, n_mels, win_ms, hop_ms, n_fft, f_min, f_max, log_offset,
                         normalize, deltas, delta_win, window, center, pad_mode, power, mel_scale,
                         mel_norm, eps, pcen)

    @property
    def num_static_features(self) -> int:
        return self.n_mels

    def _static(self, waveform: Tensor) -> Tensor:
        return self._log_mel(waveform)


@FEATURES.register("mfcc")
class MFCC(_LogMelBase):
    """MFCCs (orthonormal DCT-II of the log mel spectrogram), optionally liftered, with
    deltas and per-utterance normalisation. Output ``[B, T, n_mfcc * (1 + deltas)]``.
    With ``normalize="pcen"`` the DCT is taken of the PCEN mel spectrogram instead of the
    log (see :class:`LogMel`)."""

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mfcc: int = 13,
        n_mels: int = 40,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        n_fft: Optional[int] = None,
        f_min: float = 20.0,
        f_max: Optional[float] = None,
        log_offset: float = 1e-6,
        normalize: Optional[str] = "utterance",
        deltas: int = 0,
        delta_win: int = 5,
        dct_norm: Optional[str] = "ortho",
        lifter: float = 0.0,
        window: str = "hann",
        center: bool = True,
        pad_mode: str = "reflect",
        power: float = 2.0,
        mel_scale: str = "htk",
        mel_norm: Optional[str] = None,
        eps: float = 1e-5,
        pcen: Optional[Dict[str, float]] = None,
    ) -> None:
        super().__init__(sample_rate, n_mels, win_ms, hop_ms, n_fft, f_min, f_max, log_offset,
                         normalize, deltas, delta_win, window, center, pad_mode, power, mel_scale,
                         mel_norm, eps, pcen)
        if not _is_int(n_mfcc) or not 1 <= n_mfcc <= n_mels:
            raise _bad("n_mfcc", f"an integer in [1, n_mels={n_mels}]", n_mfcc)
        if dct_norm is not None and dct_norm != "ortho":
            raise _bad("dct_norm", "'ortho' or None", dct_norm)
        if not _is_real(lifter) or lifter < 0:
            raise _bad("lifter", ">= 0 (0 disables liftering)", lifter)
        self.n_mfcc = int(n_mfcc)
        self.dct_norm = dct_norm
        self.lifter = float(lifter)
        self.register_buffer("dct", self._make_const("dct", torch.float64, torch.device("cpu")).float(),
                             persistent=False)

    @property
    def num_static_features(self) -> int:
        return self.n_mfcc

    def _make_const(self, name: str, dtype: torch.dtype, device: torch.device) -> Tensor:
        if name == "dct":
            dct = AF.dct_matrix(self.n_mfcc, self.n_mels, self.dct_norm, dtype=dtype, device=device)
            if self.lifter:
                dct = dct * AF.lifter_weights(self.n_mfcc, self.lifter, dtype=dtype, device=device)
            return dct
        return super()._make_const(name, dtype, device)

    def _static(self, waveform: Tensor) -> Tensor:
        lm = self._log_mel(waveform)
        return torch.matmul(lm, self._const("dct", lm))

    def extra_repr(self) -> str:
        return f"n_mfcc={self.n_mfcc}, lifter={self.lifter:g}, " + super().extra_repr()


def build_features(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered feature extractor (``"logmel"``, ``"mfcc"``) by name.

    Unknown names raise ``KeyError`` listing the available ones; unknown keyword
    arguments raise ``TypeError`` naming the argument and listing the valid ones.
    """
    cls = FEATURES.get(name)
    params = inspect.signature(cls).parameters
    valid = [p for p in params if p not in ("self", "args", "kwargs")]
    for key in kwargs:
        if key not in params:
            raise TypeError(
                f"unknown argument {key!r} for feature {name!r}; valid arguments: {', '.join(valid)}")
    return cls(**kwargs)


def feature_kwargs(module: nn.Module) -> Dict[str, Any]:
    """Constructor arguments that rebuild ``module`` (handy for saving run configs)."""
    params = inspect.signature(type(module)).parameters
    out: Dict[str, Any] = {}
    for p in params:
        attr = {"window": "window_kind"}.get(p, p)
        if hasattr(module, attr) and not isinstance(getattr(module, attr), Tensor):
            out[p] = getattr(module, attr)
    return out
