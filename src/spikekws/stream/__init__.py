"""Real-time keyword spotting over audio streams: online front-end, stateful SNN,
detector (see :mod:`.runner` for the pipeline and :mod:`.frontend` for normalisation)."""
from __future__ import annotations

from .detector import Detection, Detector
from .frontend import OnlineFrontend
from .model import StreamingSNN
from .runner import KeywordStreamer, read_wave, stream_file

__all__ = ["Detection", "Detector", "OnlineFrontend", "StreamingSNN", "KeywordStreamer",
           "read_wave", "stream_file"]
