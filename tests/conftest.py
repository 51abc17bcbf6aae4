"""Shared test fixtures: small generated audio files and the optional real data."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Dict, Iterable, Optional, Sequence

import numpy as np
import pytest
import soundfile as sf

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO_ROOT / ".." / "shared" / "data").resolve()


def write_wav(
    path: Path,
    seconds: float = 0.25,
    sr: int = 16000,
    freq: float = 440.0,
    channels: int = 1,
    subtype: Optional[str] = "PCM_16",
    amplitude: float = 0.5,
) -> Path:
    """Write a sine tone (format from the suffix: .wav, .flac, .ogg); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * sr))
    t = np.arange(n, dtype=np.float64) / sr
    tone = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    data = tone if channels == 1 else np.stack([tone] * channels, axis=1)
    if path.suffix.lower() == ".ogg":
        subtype = "VORBIS"
    elif path.suffix.lower() == ".flac" and subtype not in ("PCM_16", "PCM_24", "PCM_S8"):
        subtype = "PCM_16"
    sf.write(str(path), data, sr, subtype=subtype)
    return path


@pytest.fixture(scope="session")
def make_wav() -> Callable[..., Path]:
    """``make_wav(path, seconds=0.25, sr=16000, freq=440.0, channels=1, subtype="PCM_16",
    amplitude=0.5)`` writes a sine tone and returns its path."""
    return write_wav


def write_gsc_tree(
    root: Path,
    *,
    words: Sequence[str] = ("no", "up", "yes"),
    speakers: Sequence[str] = ("aa11", "bb22", "cc33", "dd44", "ee55"),
    valid_speakers: Iterable[str] = ("dd44",),
    test_speakers: Iterable[str] = ("ee55",),
    sr: int = 16000,
    seconds: float = 0.25,
    manifest: Optional[Dict[str, object]] = None,
    background: bool = True,
) -> Path:
    """A tiny Google-Speech-Commands-layout dataset: one file per (word, speaker)."""
    root = Path(root)
    valid_lines, test_lines = [], []
    valid_speakers, test_speakers = set(valid_speakers), set(test_speakers)
    for wi, word in enumerate(words):
        for si, spk in enumerate(speakers):
            rel = f"{word}/{spk}_nohash_0.wav"
            write_wav(root / rel, seconds=seconds, sr=sr, freq=200.0 + 100 * wi + 10 * si)
            if spk in valid_speakers:
                valid_lines.append(rel)
            elif spk in test_speakers:
                test_lines.append(rel)
    if background:
        write_wav(root / "_background_noise_" / "noise.wav", seconds=seconds, sr=sr)
    (root / "validation_list.txt").write_text("".join(line + "\n" for line in valid_lines))
    (root / "testing_list.txt").write_text("".join(line + "\n" for line in test_lines))
    if manifest is not None:
        (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture(scope="session")
def make_gsc_tree() -> Callable[..., Path]:
    """``make_gsc_tree(root, words=..., speakers=..., sr=16000, seconds=0.25,
    manifest=None)`` writes a tiny GSC-layout dataset and returns ``root``."""
    return write_gsc_tree


@pytest.fixture
def fsdd_root() -> Path:
    """The real Free Spoken Digit Dataset subset in ../shared/data/fsdd (skip if absent)."""
    root = SHARED_DATA / "fsdd"
    if not root.is_dir():
        pytest.skip(f"real FSDD recordings not found at {root}")
    return root
