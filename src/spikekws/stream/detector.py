"""Keyword detector: voice-activity gate, posterior smoothing, threshold, refractory period.

Per frame (``frame_s`` seconds) it receives the class posterior ``p_t = softmax(v_t)``
(``v_t`` the readout membrane) and the frame energy ``e_t`` (log of the mean mel power, before normalisation):

1. **Gate.** The models are trained on word clips, not on silence, so their posteriors
   in silence are meaningless. A frame is *active* when ``e_t`` exceeds the noise floor
   (the ``floor_quantile`` quantile of ``e`` over the last ``floor_s`` seconds; 0 is the
   minimum, the default) by ``margin`` (natural-log units of power; 2.3 = 10 dB). A low
   quantile rather than the minimum keeps a few unusually quiet frames (a pause recorded
   quieter than the room, digital near-silence) from lowering the floor and holding the
   gate open on the ordinary background for the next ``floor_s`` seconds; but it also
   raises the floor by part of the background's frame-to-frame spread, so a background
   only just above the margin may then flicker in and out of a segment. Streams that mix
   recordings of different levels do better with 0.1, steady backgrounds with 0. Activity is held ``hangover_s`` after the last such frame,
   so the segment also covers the frames after the word where the readout membrane still
   integrates it (the offline rule averages those too). A run of active frames is a
   *segment*.
2. **Smoothing.** ``P`` = mean of ``p_t`` over the segment's last ``smooth_s`` seconds:
   the offline decision rule (``mean_t softmax(v_t)`` over a clip) applied to the word.
3. **Decision.** When a segment ends (or reaches ``max_segment_s``), if it lasted at least
   ``min_segment_s`` and ``max_c P >= threshold`` for a keyword ``c`` (labels starting
   with ``_``, e.g. ``_silence_``, are never reported), ``Detection(word, time_s, score)``
   is emitted, ``time_s`` being the stream time at the decision (end of the word plus
   the hangover). No detection follows within ``refractory_s`` seconds of another.
"""
from __future__ import annotations

from collections import deque
from typing import Deque, List, NamedTuple, Optional, Sequence

import numpy as np
import torch


class Detection(NamedTuple):
    word: str
    time_s: float
    score: float


class Detector:
    def __init__(self, labels: Sequence[str], frame_s: float = 0.01, threshold: float = 0.3,
                 smooth_s: float = 1.0, refractory_s: float = 0.5, margin: float = 2.3,
                 floor_s: float = 3.0, hangover_s: float = 0.4, min_segment_s: float = 0.1,
                 max_segment_s: float = 2.0, floor_quantile: float = 0.0) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        for name, v in (("frame_s", frame_s), ("smooth_s", smooth_s), ("floor_s", floor_s),
                        ("max_segment_s", max_segment_s)):
            if not v > 0:
                raise ValueError(f"{name} must be positive (seconds), got {v}")
        for name, v in (("refractory_s", refractory_s), ("hangover_s", hangover_s),
                        ("min_segment_s", min_segment_s)):
            if v < 0:
                raise ValueError(f"{name} must be >= 0 (seconds), got {v}")
        if not 0.0 <= floor_quantile < 1.0:
            raise ValueError(f"floor_quantile must be in [0, 1), got {floor_quantile}")
        self.floor_quantile = float(floor_quantile)
        self.labels = list(labels)
        self.keyword = torch.tensor([not str(w).startswith("_") for w in self.labels])
        self.frame_s = float(frame_s)
        self.threshold = float(threshold)
        f = lambda s: int(round(s / frame_s))  # noqa: E731
        self.smooth = max(1, f(smooth_s))
        self.refractory = f(refractory_s)
        self.margin = float(margin)
        self.floor_len = max(1, f(floor_s))
        self.hangover = f(hangover_s)
        self.min_segment = f(min_segment_s)
        self.max_segment = max(1, f(max_segment_s))
        self.reset()

    def reset(self) -> None:
        self.t = 0  # frames seen
        self._energy: Deque[float] = deque(maxlen=self.floor_len)
        self._post: Deque[torch.Tensor] = deque(maxlen=self.smooth)
        self._sum = None
        self._seg_len = 0
        self._hold = 0
        self._last = -10 ** 9

    def smoothed(self) -> Optional[torch.Tensor]:
        """Current smoothed posterior P [C] (None outside a segment)."""
        if not self._post:
            return None
        return torch.stack(tuple(self._post)).mean(0)

    def _decide(self) -> Optional[Detection]:
        p, n = self.smoothed(), self._seg_len
        self._post.clear()
        self._seg_len = 0
        if p is None or n < self.min_segment:
            return None
        p = torch.where(self.keyword, p, torch.zeros_like(p))
        score, idx = p.max(0)
        if float(score) >= self.threshold and self.t - self._last > self.refractory:
            self._last = self.t
            return Detection(self.labels[int(idx)], round(self.t * self.frame_s, 6), float(score))
        return None

    def noise_floor(self) -> float:
        """The ``floor_quantile`` quantile of the energies of the last ``floor_s`` seconds."""
        if self.floor_quantile == 0.0:
            return min(self._energy)
        e = np.fromiter(self._energy, dtype=np.float64, count=len(self._energy))
        k = int(self.floor_quantile * (e.size - 1))  # lower order statistic, no interpolation
        return float(np.partition(e, k)[k])

    def observe(self, energy: float) -> bool:
        """Gate one frame (step 1); True when it opens a new segment (speech onset)."""
        self.t += 1
        self._energy.append(float(energy))
        if float(energy) > self.noise_floor() + self.margin:
            opening = self._hold == 0 and self._seg_len == 0
            self._hold = self.hangover + 1
            return opening
        return False

    def update(self, posterior: torch.Tensor, energy: Optional[float] = None) -> Optional[Detection]:
        """One frame: posterior [C] (and its energy, unless :meth:`observe` already saw
        it) -> a Detection or None."""
        if energy is not None:
            self.observe(energy)
        if self._hold > 0:
            self._hold -= 1
            self._post.append(posterior.detach().float().reshape(-1))
            self._seg_len += 1
            if self._seg_len >= self.max_segment:
                return self._decide()
            return None
        return self._decide() if self._seg_len else None

    def run(self, posteriors: torch.Tensor, energies: torch.Tensor) -> List[Detection]:
        """Frames [T, C] and energies [T] -> detections (state carried on)."""
        out = []
        for p, e in zip(posteriors, energies):
            d = self.update(p, float(e))
            if d is not None:
                out.append(d)
        return out


__all__ = ["Detection", "Detector"]
