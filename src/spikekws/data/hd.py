"""Heidelberg Digits (``hd``): the audio recordings behind SHD.

Layout of ``hd_audio.tar.gz`` (https://zenkelab.org/datasets/; ``spikekws download hd
--to DIR``)::

    root/audio/lang-english_speaker-03_trial-4_digit-0.flac
    root/audio/lang-german_speaker-11_trial-27_digit-7.flac
    root/train_filenames.txt      one file name (relative to audio/) per line
    root/test_filenames.txt

``root`` may also be a folder holding exactly one such dataset folder (e.g. the
``hd_audio`` folder an archive extracted into). 20 classes, in SHD's order: English
"zero".."nine" (label = digit) then German "null".."neun" (label = 10 + digit). The
file name gives language and digit; a listed name that does not follow the pattern is
a ValueError naming the list file and line.

Options:
    sample_rate (None): enforced on every file; None -> read from the first listed file
        (the recordings are 48 kHz).
    clip_seconds (1.4): clip length (centre-crop / zero-pad); the digits last up to ~1.4 s.
    valid_fraction (0.1), seed (0): "valid" is a deterministic hashed fraction of the
        files in ``train_filenames.txt`` (never of the test files); ``valid_speakers``
        (None; e.g. ``"0,3"``) uses whole training speakers instead.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional

from .audio import AudioError, audio_header
from .base import DatasetInfo
from .datasets import (
    DatasetLoader,
    Items,
    index_set,
    positive_int,
    positive_number,
    register_dataset,
)
from .folder import hash_fraction
from .shd import SHD_LABELS

log = logging.getLogger("spikekws.data")

HD_LABELS = SHD_LABELS
TRAIN_LIST = "train_filenames.txt"
TEST_LIST = "test_filenames.txt"
LANGUAGES = ("english", "german")

_NAME = re.compile(
    r"^lang-(english|german)_speaker-(\d+)_trial-(\d+)_digit-(\d)\.(flac|wav)$", re.IGNORECASE
)


class HDFile(NamedTuple):
    path: Path
    language: str
    speaker: int
    trial: int
    digit: int

    @property
    def label(self) -> int:
        return self.digit + 10 * LANGUAGES.index(self.language)


def parse_hd_name(name: str) -> Optional[HDFile]:
    """``HDFile`` (with ``path=Path(name)``) for a conforming file name, else None."""
    m = _NAME.match(Path(name).name)
    if m is None:
        return None
    return HDFile(Path(name), m.group(1).lower(), int(m.group(2)), int(m.group(3)), int(m.group(4)))


def hd_root(root: Path) -> Path:
    """``root`` itself, or its single sub-folder, that holds ``audio/`` and the lists."""
    if (root / "audio").is_dir() or (root / TRAIN_LIST).is_file():
        return root
    candidates = [d for d in sorted(root.iterdir()) if d.is_dir() and (d / "audio").is_dir()]
    if len(candidates) == 1:
        return candidates[0]
    raise FileNotFoundError(
        f"hd dataset: no audio/ folder and {TRAIN_LIST} in {root}; download the recordings "
        f"with: spikekws download hd --to {root}")


def read_hd_list(list_path: Path, audio_dir: Path) -> List[HDFile]:
    """The files named in ``train_filenames.txt`` / ``test_filenames.txt``."""
    if not list_path.is_file():
        raise FileNotFoundError(f"hd dataset: split list not found: {list_path}")
    out: List[HDFile] = []
    with open(list_path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            name = line.strip()
            if not name or name.startswith("#"):
                continue
            rec = parse_hd_name(name)
            if rec is None:
                raise ValueError(
                    f"{list_path}, line {lineno}: {name!r} is not an HD file name "
                    f"(expected lang-<english|german>_speaker-NN_trial-K_digit-D.flac)")
            out.append(rec._replace(path=audio_dir / name))
    if not out:
        raise ValueError(f"hd dataset: {list_path} lists no files")
    return out


@register_dataset("hd")
class HDLoader(DatasetLoader):
    """Heidelberg Digits audio (20 classes); see the module docstring."""

    defaults: Dict[str, Any] = {
        "sample_rate": None,
        "clip_seconds": 1.4,
        "valid_fraction": 0.1,
        "seed": 0,
        "valid_speakers": None,
    }
    allow_multichannel = True
    create_hint = "spikekws download hd --to {root}"

    def _lists(self, root: Path):
        base = hd_root(root)
        audio = base / "audio"
        return read_hd_list(base / TRAIN_LIST, audio), read_hd_list(base / TEST_LIST, audio)

    def _info(self, root: Path, opts: Dict[str, Any]) -> DatasetInfo:
        clip = positive_number(opts["clip_seconds"], "clip_seconds", self.name)
        train, test = self._lists(root)
        if opts["sample_rate"] is not None:
            rate = positive_int(opts["sample_rate"], "sample_rate", self.name)
        else:
            rate = self._infer_rate(train + test)
        return DatasetInfo(self.name, HD_LABELS, rate, False, clip)

    def _infer_rate(self, files: List[HDFile]) -> int:
        first_error: Optional[Exception] = None
        for rec in files:
            try:
                return int(audio_header(rec.path).samplerate)
            except (AudioError, OSError) as exc:
                first_error = first_error or exc
        raise ValueError(f"hd dataset: no listed file is readable (first error: {first_error}); "
                         f"pass the sample_rate option")

    def _items(self, root: Path, split: str, info: DatasetInfo, opts: Dict[str, Any]) -> Items:
        train, test = self._lists(root)
        names_test = {r.path.name for r in test}
        clash = sorted(r.path.name for r in train if r.path.name in names_test)
        if clash:
            raise ValueError(f"hd dataset: {len(clash)} file(s) are in both {TRAIN_LIST} and "
                             f"{TEST_LIST}, e.g. {clash[0]}")
        if split == "test":
            chosen = test
        else:
            is_valid = self._valid_rule(train, opts)
            chosen = [r for r in train if is_valid(r) == (split == "valid")]
        if opts["on_error"] == "raise":
            missing = [r.path for r in chosen if not r.path.exists()]
            if missing:
                raise FileNotFoundError(f"hd dataset: {len(missing)} listed file(s) of the {split} "
                                        f"split do not exist, e.g. {missing[0]}")
        return [(r.path, r.label) for r in chosen]

    def _valid_rule(self, train: List[HDFile], opts: Dict[str, Any]):
        if opts["valid_speakers"] is not None:
            speakers = index_set(opts["valid_speakers"], "valid_speakers")
            present = {r.speaker for r in train}
            unknown = sorted(speakers - present)
            if unknown:
                raise ValueError(f"hd dataset: valid_speakers {unknown} have no training files "
                                 f"(training speakers: {sorted(present)})")
            return lambda r: r.speaker in speakers
        fraction = opts["valid_fraction"]
        try:
            ok = not isinstance(fraction, bool) and 0.0 <= float(fraction) < 1.0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"hd dataset: valid_fraction must be in [0, 1), got {fraction!r}")
        seed = opts["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"hd dataset: seed must be an int, got {seed!r}")
        return lambda r: hash_fraction(r.path.name, seed) < float(fraction)
