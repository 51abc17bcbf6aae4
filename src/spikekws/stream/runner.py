"""Keyword spotting over a continuous audio stream with a trained run.

    kws = KeywordStreamer.from_run("runs/demo")
    for chunk in audio_chunks:               # any sizes; 160 samples = one 10 ms hop
        for det in kws.push(chunk):
            print(det.word, det.time_s, det.score)
    kws.finish()                             # flush the last frames
    kws.stats()                              # latency per frame, real-time factor

Runs trained with ``features.options.normalize=none`` stream frame-exactly (the online
features equal the offline ones); per-utterance normalisation can only be approximated
online (:mod:`.frontend`), which costs accuracy on streams whose level varies.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from .detector import Detection, Detector
from .frontend import OnlineFrontend
from .model import StreamingSNN

log = logging.getLogger("spikekws")
PathLike = Union[str, Path]


class KeywordStreamer:
    """Front-end -> stateful SNN -> detector, one 10 ms hop at a time.

    State: neuron states persist from frame to frame. Models trained on isolated clips
    always start from rest, and a state carried through minutes of audio drifts far from
    anything seen in training; so, with ``reset_on_onset`` (default), the state is reset
    when the detector's voice-activity gate opens and re-warmed on the ``preroll`` frames
    (default 30 = 0.3 s of background) that preceded the onset, as a training clip's
    leading background warms it. ``reset_on_onset=False`` keeps one state for the whole
    stream.

    Latency: a frame reaches the model ``n_fft/2`` samples plus ``lookahead`` hops after
    its centre (see :class:`OnlineFrontend`; default lookahead: half a training clip);
    detection times are given on the audio time line (the frame that decided).
    Timing: every completed frame's processing time (features + model step + detector)
    is recorded; :meth:`stats` gives the median/p95 latency per frame and the real-time
    factor (processing time / audio duration).
    """

    def __init__(self, frontend: nn.Module, model: nn.Module, labels: Sequence[str],
                 sample_rate: int, clip_seconds: float = 1.0, lookahead: Optional[int] = None,
                 reset_on_onset: bool = True, preroll: int = 30, **detector_options: Any) -> None:
        self.sample_rate = int(sample_rate)
        if int(preroll) != preroll or preroll < 0:
            raise ValueError(f"preroll must be a number of frames >= 0, got {preroll!r}")
        self.reset_on_onset = bool(reset_on_onset)
        self.preroll = int(preroll)
        hop_s = frontend.hop_length / frontend.sample_rate
        window = int(round(clip_seconds / hop_s)) + 1
        self.frontend = OnlineFrontend(frontend, window, window // 2 if lookahead is None else lookahead)
        self.model = StreamingSNN(model)
        self.labels = list(labels)
        if len(self.labels) != model.num_classes:
            raise ValueError(f"labels has {len(self.labels)} entries but the model has "
                             f"{model.num_classes} classes")
        self.detector = Detector(self.labels, frame_s=self.frontend.frame_seconds, **detector_options)
        self.reset()

    @classmethod
    def from_run(cls, run_dir: PathLike, checkpoint: str = "best", lookahead: Optional[int] = None,
                 reset_on_onset: bool = True, preroll: int = 30,
                 **detector_options: Any) -> "KeywordStreamer":
        from ..train.runner import build_frontend, load_run
        cfg, info, model, _ = load_run(run_dir, checkpoint)
        if info.get("kind", "audio") != "audio":
            raise ValueError(f"run {run_dir} was trained on {info.get('kind')} data; streaming "
                             "needs an audio front-end")
        frontend = build_frontend(cfg, int(info["sample_rate"]))
        return cls(frontend, model, info["labels"], int(info["sample_rate"]),
                   float(info.get("clip_seconds") or 1.0), lookahead, reset_on_onset, preroll,
                   **detector_options)

    def reset(self) -> None:
        self.frontend.reset()
        self.model.reset()
        self.detector.reset()
        self.frame_times: List[float] = []
        self.frame_cpu_times: List[float] = []  # CPU time of this thread (robust to a busy machine)
        self._front_cpu = 0.0
        self.samples_seen = 0
        self.posteriors: List[torch.Tensor] = []
        self.keep_posteriors = False
        self._preroll: Deque[torch.Tensor] = deque(maxlen=max(self.preroll, 1))
        self.onsets = 0

    def _frames(self, frames: torch.Tensor, energy: torch.Tensor, t_front: float) -> List[Detection]:
        out: List[Detection] = []
        n = frames.shape[0]
        share = t_front / n if n else 0.0
        share_cpu = self._front_cpu / n if n else 0.0
        for i in range(n):
            t = time.perf_counter()
            c = time.thread_time()
            x = frames[i:i + 1]
            if self.detector.observe(float(energy[i])) and self.reset_on_onset:
                self.model.reset()  # fresh state, warmed up on the background before the word
                for past in self._preroll:
                    self.model.step(past)
                self.onsets += 1
            v = self.model.step(x)[0]
            if self.preroll:
                self._preroll.append(x)
            p = torch.softmax(v, -1)
            d = self.detector.update(p)
            self.frame_times.append(time.perf_counter() - t + share)
            self.frame_cpu_times.append(time.thread_time() - c + share_cpu)
            if self.keep_posteriors:
                self.posteriors.append(p)
            if d is not None:
                out.append(d)
        return out

    def push(self, samples: Union[np.ndarray, torch.Tensor]) -> List[Detection]:
        """Feed audio samples (float in [-1, 1], the run's sample rate) -> detections."""
        x = torch.as_tensor(np.asarray(samples, dtype=np.float32)).reshape(-1)
        self.samples_seen += x.numel()
        t, c = time.perf_counter(), time.thread_time()
        frames = self.frontend.push(x)
        self._front_cpu = time.thread_time() - c
        return self._frames(frames, self.frontend.last_energy, time.perf_counter() - t)

    def finish(self) -> List[Detection]:
        t, c = time.perf_counter(), time.thread_time()
        frames = self.frontend.flush()
        self._front_cpu = time.thread_time() - c
        return self._frames(frames, self.frontend.last_energy, time.perf_counter() - t)

    def process(self, audio: Union[np.ndarray, torch.Tensor], chunk: Optional[int] = None
                ) -> List[Detection]:
        """A whole signal fed in ``chunk``-sample pieces (default: one hop), then flushed."""
        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        step = int(chunk or self.frontend.hop)
        out: List[Detection] = []
        for i in range(0, x.size, step):
            out += self.push(x[i:i + step])
        return out + self.finish()

    def stats(self) -> Dict[str, float]:
        """Latency per frame (ms: median, p95, mean), real-time factor (total processing
        time / audio time; ``rtf_median``: median frame time / hop, robust to a busy
        machine), the same from this thread's CPU time (``cpu_latency_ms_*``, ``rtf_cpu``:
        what the frames cost when the process is not preempted), algorithmic latency
        (ms), frames, audio seconds."""
        ft = np.asarray(self.frame_times) * 1e3
        cpu = np.asarray(self.frame_cpu_times) * 1e3
        audio_s = self.samples_seen / self.sample_rate
        if ft.size == 0:
            return {"frames": 0, "audio_s": audio_s}
        hop_ms = self.frontend.frame_seconds * 1e3
        algorithmic = (self.frontend.n_fft // 2 / self.sample_rate * 1e3
                       + self.frontend.lookahead * hop_ms)
        return {"frames": int(ft.size), "audio_s": audio_s, "algorithmic_latency_ms": algorithmic,
                "latency_ms_median": float(np.median(ft)), "latency_ms_p95": float(np.percentile(ft, 95)),
                "latency_ms_mean": float(ft.mean()), "hop_ms": hop_ms,
                "rtf": float(ft.sum() / 1e3 / max(audio_s, 1e-9)),
                "rtf_median": float(np.median(ft) / hop_ms),
                "cpu_latency_ms_median": float(np.median(cpu)), "cpu_latency_ms_p95": float(np.percentile(cpu, 95)),
                "rtf_cpu": float(cpu.sum() / 1e3 / max(audio_s, 1e-9))}


def stream_file(run_dir: PathLike, path: PathLike, checkpoint: str = "best",
                **detector_options: Any):
    """Run a trained run over an audio file -> (detections, stats)."""
    kws = KeywordStreamer.from_run(run_dir, checkpoint, **detector_options)
    wave = read_wave(path, kws.sample_rate)
    dets = kws.process(wave)
    return dets, kws.stats()


def stream_microphone(kws: KeywordStreamer, on_detection: Callable[[Detection], None],
                      seconds: Optional[float] = None) -> None:
    """Feed the default microphone to ``kws`` (one hop per block) until Ctrl-C or
    ``seconds``; calls ``on_detection`` for each detection. Needs ``sounddevice``."""
    import queue

    try:
        import sounddevice as sd
    except (ImportError, OSError):
        raise ImportError("--mic needs the sounddevice package: pip install sounddevice") from None
    blocks: "queue.Queue[np.ndarray]" = queue.Queue()
    hop = kws.frontend.hop
    with sd.InputStream(samplerate=kws.sample_rate, channels=1, dtype="float32", blocksize=hop,
                        callback=lambda data, *_: blocks.put(data[:, 0].copy())):
        try:
            while seconds is None or kws.samples_seen < seconds * kws.sample_rate:
                for d in kws.push(blocks.get()):
                    on_detection(d)
        except KeyboardInterrupt:
            pass
    for d in kws.finish():
        on_detection(d)


def read_wave(path: PathLike, sample_rate: int) -> np.ndarray:
    """Mono float32 samples of ``path`` at ``sample_rate`` (FileNotFoundError, AudioError)."""
    from ..data.audio import load_audio
    return load_audio(path, expected_sample_rate=sample_rate).numpy()


__all__ = ["KeywordStreamer", "stream_file", "stream_microphone", "read_wave"]
