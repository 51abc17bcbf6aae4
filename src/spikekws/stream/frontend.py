"""Online front-end: the run's log-mel/MFCC computed hop by hop, frame-exactly.

Offline, :class:`~spikekws.features.transforms.LogMel` frames a whole clip with
``center=True``: frame ``t`` covers samples ``[t*hop - n_fft/2, t*hop + n_fft/2)`` of the
signal reflect-padded by ``n_fft/2`` at both ends. Online, the start of the stream is
padded the same way, so frame ``t`` is emitted as soon as sample ``t*hop + n_fft/2``
has arrived (algorithmic latency ``n_fft/2`` samples, 16 ms for n_fft = 512 at 16 kHz)
and equals the offline frame ``t`` up to float rounding; :meth:`OnlineFrontend.flush`
pads the end as the offline transform does and emits the last frames.

**Normalisation.** Per-utterance normalisation (``normalize="utterance"``) needs the
whole clip. Online we use a sliding window instead: each frame is normalised with the
mean and (biased) variance of the last ``window`` frames, itself included (fewer at the
start of the stream), ``(x - mean) / sqrt(var + eps)``. With ``window`` = the frames of
a training clip (default: ``clip_seconds / hop`` + 1, 101 for 1 s at 10 ms), a word at
the end of the window sees the statistics of a training clip that ends with it; the
last frame of a stream exactly one clip long equals the offline normalised frame.
Deltas need future frames and are not supported online.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from ..features import functional as AF


class OnlineFrontend:
    """push(samples [N]) -> frames [n, F] (n >= 0) of a LogMel/MFCC module ``frontend``.

    Also keeps ``last_energy`` of the emitted frames (log of the mean mel power, for voice
    activity detection).
    """

    def __init__(self, frontend: nn.Module, window: Optional[int] = 101) -> None:
        for attr in ("n_fft", "hop_length", "win_length", "mel_fb", "window"):
            if not hasattr(frontend, attr):
                raise TypeError(f"frontend must be a LogMel or MFCC module, got {type(frontend).__name__}")
        if getattr(frontend, "deltas", 0):
            raise ValueError("streaming does not support delta features (they need future frames); "
                             "train with features.options.deltas=0")
        if frontend.pad_mode not in ("reflect", "constant"):
            raise ValueError(f"streaming supports pad_mode 'reflect' or 'constant', got {frontend.pad_mode!r}")
        self.fe = frontend
        self.n_fft = int(frontend.n_fft)
        self.hop = int(frontend.hop_length)
        self.normalize = frontend.normalize == "utterance"
        if self.normalize and (window is None or int(window) < 1):
            raise ValueError(f"window must be a positive number of frames, got {window!r}")
        self.window_frames = int(window) if window else 0
        self.sample_rate = int(frontend.sample_rate)
        self.reset()

    @property
    def frame_seconds(self) -> float:
        return self.hop / self.sample_rate

    def reset(self) -> None:
        self._buf = torch.zeros(0)
        self._started = not self.fe.center
        self._pending = torch.zeros(0)  # raw samples before the left pad can be built
        self._history: list = []  # last `window` static frames for the sliding normalisation
        self._sum = self._sumsq = None
        self.frames_emitted = 0

    # ------------------------------------------------------------------ internals
    def _static(self, segment: torch.Tensor) -> torch.Tensor:
        fe = self.fe
        spec = AF.stft_power(segment, self.n_fft, self.hop, fe.win_length, window=fe.window,
                             center=False, power=fe.power)  # [n_fft/2+1, n]
        lm = torch.log(torch.matmul(spec.transpose(-1, -2), fe.mel_fb) + fe.log_offset)
        self._energy = torch.logsumexp(lm, -1) - math.log(lm.shape[-1])  # log mean mel power
        if hasattr(fe, "dct"):
            return torch.matmul(lm, fe.dct)
        return lm

    def _norm(self, frames: torch.Tensor) -> torch.Tensor:
        if not self.normalize:
            return frames
        out = []
        for f in frames:  # running sums over a ring of the last `window` frames (float64)
            f64 = f.double()
            self._history.append(f64)
            self._sum = f64.clone() if self._sum is None else self._sum + f64
            self._sumsq = f64 * f64 if self._sumsq is None else self._sumsq + f64 * f64
            if len(self._history) > self.window_frames:
                old = self._history.pop(0)
                self._sum -= old
                self._sumsq -= old * old
            n = len(self._history)
            mean = self._sum / n
            var = (self._sumsq / n - mean * mean).clamp(min=0.0)
            out.append(((f64 - mean) / torch.sqrt(var + self.fe.eps)).to(f.dtype))
        return torch.stack(out)

    def _emit(self) -> torch.Tensor:
        n = 0 if self._buf.numel() < self.n_fft else 1 + (self._buf.numel() - self.n_fft) // self.hop
        if n == 0:
            self.last_energy = torch.zeros(0)
            return torch.zeros(0, self.fe.num_features)
        seg = self._buf[: self.n_fft + (n - 1) * self.hop]
        frames = self._static(seg)
        self.last_energy = self._energy
        self._buf = self._buf[n * self.hop:]
        self.frames_emitted += n
        return self._norm(frames)

    # ------------------------------------------------------------------ API
    @torch.no_grad()
    def push(self, samples: torch.Tensor) -> torch.Tensor:
        """samples: [N] float waveform -> newly completed frames [n, F]."""
        x = torch.as_tensor(samples, dtype=torch.float32).reshape(-1)
        if not self._started:
            self._pending = torch.cat([self._pending, x])
            p = self.n_fft // 2
            if self._pending.numel() <= p:
                self.last_energy = torch.zeros(0)
                return torch.zeros(0, self.fe.num_features)
            x = self._pending
            pad = x[1:p + 1].flip(0) if self.fe.pad_mode == "reflect" else torch.zeros(p)
            x = torch.cat([pad, x])
            self._pending = torch.zeros(0)
            self._started = True
        self._buf = torch.cat([self._buf, x])
        return self._emit()

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        """End of stream: pad the end like the offline transform and emit the last frames."""
        if not self._started:  # very short stream: nothing sensible to frame
            return torch.zeros(0, self.fe.num_features)
        if not self.fe.center:
            return torch.zeros(0, self.fe.num_features)
        p = self.n_fft // 2
        # the offline signal ends where the buffer ends; frames still due start at < end - p
        tail = self._buf[-p - 1:-1].flip(0) if self.fe.pad_mode == "reflect" else torch.zeros(p)
        self._buf = torch.cat([self._buf, tail])
        return self._emit()


__all__ = ["OnlineFrontend"]
