"""Reading audio files into tensors, with errors that name the offending file.

``load_audio`` never resamples: a file whose sample rate differs from the expected
one is an error, because silently resampling would hide a broken dataset.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import soundfile as sf
import torch

__all__ = [
    "AudioError",
    "AUDIO_EXTENSIONS",
    "audio_header",
    "check_audio",
    "load_audio",
    "fix_length",
]

log = logging.getLogger("spikekws.data")

PathLike = Union[str, "os.PathLike[str]"]

#: File name suffixes (lower case) recognised as audio by the folder-based loaders.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")

# Sample formats that can hold NaN or infinity; integer PCM cannot.
_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE", "VORBIS", "OPUS"}


class AudioError(ValueError):
    """An audio file exists but cannot be used (corrupt, empty, wrong format...).

    ``path`` is the file and ``reason`` the problem without the path.
    """

    def __init__(self, path: PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"audio file not found: {path}")
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file")


def _open(path: Path) -> sf.SoundFile:
    try:
        return sf.SoundFile(str(path))
    except (sf.SoundFileError, RuntimeError, TypeError) as exc:
        reason = getattr(exc, "error_string", None) or str(exc)
        raise AudioError(path, f"cannot read audio ({reason})") from exc


def _check_header(
    path: Path,
    f: sf.SoundFile,
    expected_sample_rate: Optional[int],
    allow_multichannel: bool,
) -> None:
    if f.frames == 0:
        raise AudioError(path, "empty audio (0 samples)")
    if expected_sample_rate is not None and f.samplerate != int(expected_sample_rate):
        raise AudioError(
            path, f"sample rate {f.samplerate} Hz, expected {int(expected_sample_rate)} Hz"
        )
    if f.channels > 1 and not allow_multichannel:
        raise AudioError(path, f"{f.channels} channels, expected mono")


#: Samples (frames x channels) decoded per read; bounds memory whatever the header claims.
_BLOCK_SAMPLES = 1 << 20


def _read(path: Path, f: sf.SoundFile) -> np.ndarray:
    # Read in blocks until the decoder runs dry: ``f.read()`` would allocate the frame count
    # of the header up front, and a damaged header can claim billions of frames.
    block = max(1, _BLOCK_SAMPLES // max(f.channels, 1))
    blocks = []
    try:
        while True:
            chunk = f.read(block, dtype="float32", always_2d=True)
            if chunk.shape[0]:
                blocks.append(chunk)
            if chunk.shape[0] < block:
                break
        data = (np.concatenate(blocks) if len(blocks) > 1 else blocks[0] if blocks
                else np.zeros((0, max(f.channels, 1)), dtype=np.float32))
    except (sf.SoundFileError, RuntimeError) as exc:
        reason = getattr(exc, "error_string", None) or str(exc)
        raise AudioError(path, f"cannot decode audio ({reason})") from exc
    if data.shape[0] == 0:
        raise AudioError(path, "empty audio (0 samples)")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioError(path, f"{bad} non-finite sample(s) (NaN or infinity)")
    return data


def audio_header(path: PathLike) -> Any:
    """``soundfile.info`` with this module's errors (FileNotFoundError / AudioError)."""
    p = Path(path)
    _check_exists(p)
    try:
        return sf.info(str(p))
    except (sf.SoundFileError, RuntimeError, TypeError) as exc:
        reason = getattr(exc, "error_string", None) or str(exc)
        raise AudioError(p, f"cannot read audio ({reason})") from exc


def check_audio(
    path: PathLike,
    expected_sample_rate: Optional[int] = None,
    allow_multichannel: bool = True,
    full: bool = False,
) -> None:
    """Raise the error ``load_audio`` would raise for ``path``, as cheaply as possible.

    Reads only the header unless ``full`` is true or the file stores floating-point
    samples (the only case where NaN/infinity can occur); integer PCM is fully
    checked by its header.
    """
    p = Path(path)
    _check_exists(p)
    with _open(p) as f:
        _check_header(p, f, expected_sample_rate, allow_multichannel)
        if full or f.subtype in _FLOAT_SUBTYPES:
            _read(p, f)


def load_audio(
    path: PathLike,
    expected_sample_rate: Optional[int] = None,
    allow_multichannel: bool = True,
) -> torch.Tensor:
    """Read an audio file as a mono float32 tensor of shape ``[N]`` with values in [-1, 1].

    Args:
        path: the file (any format libsndfile reads: WAV, FLAC, OGG...).
        expected_sample_rate: if given, a file with another rate raises ``AudioError``
            ("sample rate X Hz, expected Y Hz"); nothing is resampled.
        allow_multichannel: average the channels of a multichannel file to mono
            (default); if false, such a file raises ``AudioError``.

    Raises:
        FileNotFoundError: the file does not exist.
        AudioError: the file is unreadable or corrupt, has no samples, has the wrong
            sample rate, too many channels, or contains NaN/infinite samples.
        Every message names the file.
    """
    p = Path(path)
    _check_exists(p)
    with _open(p) as f:
        _check_header(p, f, expected_sample_rate, allow_multichannel)
        data = _read(p, f)
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    # Integer PCM decodes into [-1, 1) already; floating-point files may overshoot.
    np.clip(mono, -1.0, 1.0, out=mono)
    return torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))


def trim_silence(wave: torch.Tensor, sample_rate: int, top_db: float = 40.0,
                 frame_ms: float = 25.0, hop_ms: float = 10.0) -> torch.Tensor:
    """Cut the leading and trailing stretches of ``wave [N]`` that are quieter than the
    loudest frame by more than ``top_db`` dB.

    Frame RMS over ``frame_ms`` windows every ``hop_ms``; the kept span runs from the start
    of the first frame within ``top_db`` of the loudest to the end of the last one (the
    rule of ``librosa.effects.trim``). Silence inside the signal is kept. A signal without
    energy, or shorter than a frame, is returned unchanged.
    """
    if wave.dim() != 1:
        raise ValueError(f"trim_silence expects a 1-D waveform, got shape {tuple(wave.shape)}")
    if not top_db > 0:
        raise ValueError(f"trim_db must be > 0, got {top_db!r}")
    frame = max(1, int(round(frame_ms * 1e-3 * sample_rate)))
    hop = max(1, int(round(hop_ms * 1e-3 * sample_rate)))
    n = wave.shape[0]
    if n < frame:
        return wave
    frames = wave.double().unfold(0, frame, hop)  # [F, frame]
    rms = frames.pow(2).mean(1).sqrt()
    peak = rms.max()
    if not peak > 0:
        return wave
    loud = torch.nonzero(rms >= peak * 10.0 ** (-float(top_db) / 20.0)).flatten()
    start = int(loud[0]) * hop
    last = int(loud[-1])  # the samples after the last whole frame go with it
    end = n if last == rms.shape[0] - 1 else min(n, last * hop + frame)
    return wave[start:end]


def fix_length(wave: torch.Tensor, num_samples: int, mode: str = "center") -> torch.Tensor:
    """Zero-pad or crop the last dimension of ``wave`` to exactly ``num_samples``.

    ``mode="center"`` keeps the middle of a long signal and pads a short one equally on
    both sides (the odd sample goes to the end); ``mode="start"`` keeps the beginning
    and pads at the end. Returns ``wave`` itself when it already has the right length.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)):
        raise TypeError(f"num_samples must be an int, got {type(num_samples).__name__}")
    if num_samples <= 0:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    if mode not in ("center", "start"):
        raise ValueError(f"mode must be 'center' or 'start', got {mode!r}")
    if wave.dim() == 0:
        raise ValueError("fix_length needs a tensor with at least one dimension")
    n = wave.shape[-1]
    if n == num_samples:
        return wave
    if n > num_samples:
        start = (n - num_samples) // 2 if mode == "center" else 0
        return wave[..., start : start + num_samples]
    missing = num_samples - n
    left = missing // 2 if mode == "center" else 0
    return torch.nn.functional.pad(wave, (left, missing - left))
