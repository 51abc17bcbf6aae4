"""Keyword spotting over a continuous audio stream with a trained run.

    kws = KeywordStreamer.from_run("runs/demo")
    for chunk in audio_chunks:               # any sizes; 160 samples = one 10 ms hop
        for det in kws.push(chunk):
            print(det.word, det.time_s, det.score)
    kws.finish()                             # flush the last frames
    kws.stats()                              # latency per frame, real-time factor
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

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

    Timing: every completed frame's processing time (features + model step + detector)
    is recorded; :meth:`stats` gives the median/p95 latency per frame and the real-time
    factor (processing time / audio duration).
    """

    def __init__(self, frontend: nn.Module, model: nn.Module, labels: Sequence[str],
                 sample_rate: int, clip_seconds: float = 1.0, **detector_options: Any) -> None:
        self.sample_rate = int(sample_rate)
        hop_s = frontend.hop_length / frontend.sample_rate
        window = int(round(clip_seconds / hop_s)) + 1
        self.frontend = OnlineFrontend(frontend, window)
        self.model = StreamingSNN(model)
        self.labels = list(labels)
        if len(self.labels) != model.num_classes:
            raise ValueError(f"labels has {len(self.labels)} entries but the model has "
                             f"{model.num_classes} classes")
        self.detector = Detector(self.labels, frame_s=self.frontend.frame_seconds, **detector_options)
        self.reset()

    @classmethod
    def from_run(cls, run_dir: PathLike, checkpoint: str = "best", **detector_options: Any
                 ) -> "KeywordStreamer":
        from ..train.runner import build_frontend, load_run
        cfg, info, model, _ = load_run(run_dir, checkpoint)
        if info.get("kind", "audio") != "audio":
            raise ValueError(f"run {run_dir} was trained on {info.get('kind')} data; streaming "
                             "needs an audio front-end")
        frontend = build_frontend(cfg, int(info["sample_rate"]))
        return cls(frontend, model, info["labels"], int(info["sample_rate"]),
                   float(info.get("clip_seconds") or 1.0), **detector_options)

    def reset(self) -> None:
        self.frontend.reset()
        self.model.reset()
        self.detector.reset()
        self.frame_times: List[float] = []
        self.samples_seen = 0
        self.posteriors: List[torch.Tensor] = []
        self.keep_posteriors = False

    def _frames(self, frames: torch.Tensor, energy: torch.Tensor, t0: float, t_front: float
                ) -> List[Detection]:
        out: List[Detection] = []
        n = frames.shape[0]
        share = t_front / n if n else 0.0
        for i in range(n):
            t = time.perf_counter()
            v = self.model.step(frames[i:i + 1])[0]
            p = torch.softmax(v, -1)
            d = self.detector.update(p, float(energy[i]))
            self.frame_times.append(time.perf_counter() - t + share)
            if self.keep_posteriors:
                self.posteriors.append(p)
            if d is not None:
                out.append(d)
        return out

    def push(self, samples: Union[np.ndarray, torch.Tensor]) -> List[Detection]:
        """Feed audio samples (float in [-1, 1], the run's sample rate) -> detections."""
        x = torch.as_tensor(np.asarray(samples, dtype=np.float32)).reshape(-1)
        self.samples_seen += x.numel()
        t = time.perf_counter()
        frames = self.frontend.push(x)
        return self._frames(frames, self.frontend.last_energy, t, time.perf_counter() - t)

    def finish(self) -> List[Detection]:
        t = time.perf_counter()
        frames = self.frontend.flush()
        return self._frames(frames, self.frontend.last_energy, t, time.perf_counter() - t)

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
        """Latency per frame (ms: median, p95, mean), real-time factor, frames, audio s."""
        ft = np.asarray(self.frame_times) * 1e3
        audio_s = self.samples_seen / self.sample_rate
        if ft.size == 0:
            return {"frames": 0, "audio_s": audio_s}
        hop_ms = self.frontend.frame_seconds * 1e3
        return {"frames": int(ft.size), "audio_s": audio_s,
                "latency_ms_median": float(np.median(ft)), "latency_ms_p95": float(np.percentile(ft, 95)),
                "latency_ms_mean": float(ft.mean()), "hop_ms": hop_ms,
                "rtf": float(ft.sum() / 1e3 / max(audio_s, 1e-9))}


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
