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
mean and (biased) variance of the ``window`` most recent frames (fewer at the start of
the stream), ``(x - mean) / sqrt(var + eps)``, where the window reaches ``lookahead``
frames past the frame being normalised: frame ``t`` leaves the front-end when frame
``t + lookahead`` has arrived (``lookahead * hop`` more latency). With ``window`` = the
frames of a training clip (``clip_seconds / hop + 1``, 101 for 1 s at 10 ms) and
``lookahead = window // 2`` a word is normalised with the statistics of a clip centred
on it, as in training; ``lookahead = 0`` is purely causal (onsets are then normalised
with the preceding background only). At the end of a stream exactly one clip long, the
held-back frames leave with the whole clip's statistics, i.e. equal the offline ones.
Deltas need future frames and are not supported online.

**PCEN** (``normalize="pcen"``) is causal: its level tracker is carried from frame to frame
(starting, as offline, at the first frame's level), so the online frames equal the offline
ones with no look-ahead.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn



class OnlineFrontend:
    """push(samples [N]) -> frames [n, F] (n >= 0) of a LogMel/MFCC module ``frontend``.

    Also keeps ``last_energy`` of the emitted frames (log of the mean mel power, for voice
    activity detection).
    """

    def __init__(self, frontend: nn.Module, window: Optional[int] = 101, lookahead: int = 0) -> None:
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
        if int(lookahead) != lookahead or not 0 <= lookahead < max(self.window_frames, 1):
            raise ValueError(f"lookahead must be an integer in [0, window), got {lookahead!r}")
        self.lookahead = int(lookahead) if self.normalize else 0
        self.sample_rate = int(frontend.sample_rate)
        w = frontend.window.float()
        if w.numel() < self.n_fft:  # a win_length window sits centred in n_fft samples
            left = (self.n_fft - w.numel()) // 2
            w = torch.nn.functional.pad(w, (left, self.n_fft - w.numel() - left))
        self._window = w
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
        self._pcen_state = None  # PCEN level tracker M_{t-1} [F]
        self._waiting: list = []  # static frames held back for the look-ahead
        self.frames_emitted = 0
        self._energies: list = []  # energies of frames not yet emitted
        self.last_energy = torch.zeros(0)

    # ------------------------------------------------------------------ internals
    def _static(self, segment: torch.Tensor) -> torch.Tensor:
        fe = self.fe
        frames = segment.unfold(0, self.n_fft, self.hop) * self._window  # [n, n_fft]
        mag = torch.fft.rfft(frames).abs()  # the STFT of the offline transform, frame by frame
        spec = mag.square() if fe.power == 2.0 else mag.pow(fe.power)
        mel = torch.matmul(spec, fe.mel_fb)
        lm = torch.log(mel + fe.log_offset)
        self._energy = torch.logsumexp(lm, -1) - math.log(lm.shape[-1])  # log mean mel power
        if fe.normalize == "pcen":
            lm, self._pcen_state = fe.compress_pcen(mel, self._pcen_state)
        if hasattr(fe, "dct"):
            return torch.matmul(lm, fe.dct)
        return lm

    def _stats(self):
        n = len(self._history)
        mean = self._sum / n
        var = (self._sumsq / n - mean * mean).clamp(min=0.0)
        return mean, torch.sqrt(var + self.fe.eps)

    def _norm(self, frames: torch.Tensor, final: bool = False) -> torch.Tensor:
        if not self.normalize:
            return frames
        out = []
        for f in frames:  # running sums over a ring of the last `window` frames (float64)
            f64 = f.double()
            self._history.append(f64)
            self._waiting.append(f64)
            self._sum = f64.clone() if self._sum is None else self._sum + f64
            self._sumsq = f64 * f64 if self._sumsq is None else self._sumsq + f64 * f64
            if len(self._history) > self.window_frames:
                old = self._history.pop(0)
                self._sum -= old
                self._sumsq -= old * old
            if len(self._waiting) > self.lookahead:
                mean, std = self._stats()
                out.append(((self._waiting.pop(0) - mean) / std).float())
        if final and self._waiting:
            mean, std = self._stats()
            out += [((w - mean) / std).float() for w in self._waiting]
            self._waiting = []
        return torch.stack(out) if out else torch.zeros(0, self.fe.num_features)

    def _emit(self, final: bool = False) -> torch.Tensor:
        n = 0 if self._buf.numel() < self.n_fft else 1 + (self._buf.numel() - self.n_fft) // self.hop
        if n == 0:
            return self._out(self._norm(torch.zeros(0, self.fe.num_features), final))
        seg = self._buf[: self.n_fft + (n - 1) * self.hop]
        frames = self._static(seg)
        self._energies += self._energy.tolist()
        self._buf = self._buf[n * self.hop:]
        return self._out(self._norm(frames, final))

    def _out(self, frames: torch.Tensor) -> torch.Tensor:
        """Pair the frames going out with their energies (``last_energy``)."""
        n = frames.shape[0]
        self.last_energy = torch.tensor(self._energies[:n])
        self._energies = self._energies[n:]
        self.frames_emitted += n
        return frames

    # ------------------------------------------------------------------ API
    @torch.no_grad()
    def push(self, samples: torch.Tensor) -> torch.Tensor:
        """samples: [N] float waveform -> newly completed frames [n, F]."""
        x = torch.as_tensor(samples, dtype=torch.float32).reshape(-1)
        if not self._started:
            self._pending = torch.cat([self._pending, x])
            p = self.n_fft // 2
            if self._pending.numel() <= p:
                return self._out(torch.zeros(0, self.fe.num_features))
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
        if not self._started or not self.fe.center:  # nothing to pad
            return self._out(self._norm(torch.zeros(0, self.fe.num_features), final=True))
        p = self.n_fft // 2
        # the offline signal ends where the buffer ends; frames still due start at < end - p
        tail = self._buf[-p - 1:-1].flip(0) if self.fe.pad_mode == "reflect" else torch.zeros(p)
        self._buf = torch.cat([self._buf, tail])
        return self._emit(final=True)


__all__ = ["OnlineFrontend"]
