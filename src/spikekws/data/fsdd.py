"""Free Spoken Digit Dataset (FSDD): ``{digit}_{speaker}_{index}.wav`` at 8 kHz.

The files are read from ``root/recordings`` if that folder exists, else from ``root``.
Labels are ``"0"`` .. ``"9"`` (label index = digit).

Options:
    clip_seconds (1.0): clip length; recordings are centre-cropped / zero-padded.
    split_mode ("official"):
        ``"official"``: index 0-4 -> test, every other index -> train, except the
        ``valid_indices`` (default 5-9), which form "valid". The validation files are
        therefore taken out of the official training files, never out of the test files
        (``valid_indices`` overlapping 0-4 is an error); pass ``valid_indices=()`` to
        train on all official training files (then "valid" is empty).
        ``"speaker"``: the ``test_speakers`` (default ``("theo",)``) are held out as
        test. Validation is either whole ``valid_speakers`` or, when none are given,
        the training speakers' recordings whose index is in ``valid_indices`` (default
        0-4, i.e. the files the official split would test on); every other file of the
        training speakers is train. Speakers are names, a list or a comma-separated
        string; an unknown name raises ValueError listing the speakers found.
    valid_indices (None): ints, ``range``, or a string like ``"5-9"`` / ``"5,6,7"``.
    train_speakers (None): with ``split_mode="speaker"``, only these speakers' recordings
        form train (and validation, when no ``valid_speakers`` are given); the speakers that
        are neither test, valid nor train are left out. None: every other speaker. For
        learning curves over the number of training speakers.
    test_speakers, valid_speakers, train_speakers: only for ``split_mode="speaker"``.

``has_valid`` is False: FSDD has no official validation split, the one above is carved
out of the training data.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Set

from .base import DatasetInfo
from .datasets import (
    DatasetLoader,
    Items,
    audio_files,
    index_set,
    name_list,
    positive_number,
    register_dataset,
)

log = logging.getLogger("spikekws.data")

FSDD_SAMPLE_RATE = 8000
FSDD_LABELS = tuple(str(d) for d in range(10))
OFFICIAL_TEST_INDICES = frozenset(range(0, 5))
OFFICIAL_VALID_INDICES = frozenset(range(5, 10))
SPEAKER_VALID_INDICES = frozenset(range(0, 5))
SPLIT_MODES = ("official", "speaker")

_NAME = re.compile(r"^(\d)_(.+)_(\d+)\.wav$", re.IGNORECASE)


class Recording(NamedTuple):
    path: Path
    digit: int
    speaker: str
    index: int


def fsdd_folder(root: Path) -> Path:
    rec = root / "recordings"
    return rec if rec.is_dir() else root


def scan_recordings(root: Path) -> List[Recording]:
    """All ``{digit}_{speaker}_{index}.wav`` files under ``root`` (or ``root/recordings``)."""
    folder = fsdd_folder(root)
    found: List[Recording] = []
    ignored = 0
    for path in audio_files(folder, extensions=(".wav",)):
        m = _NAME.match(path.name)
        if m is None:
            ignored += 1
            continue
        found.append(Recording(path, int(m.group(1)), m.group(2), int(m.group(3))))
    if ignored:
        log.warning(
            "fsdd: ignored %d .wav file(s) in %s not named {digit}_{speaker}_{index}.wav",
            ignored, folder,
        )
    if not found:
        raise ValueError(
            f"fsdd dataset: no {{digit}}_{{speaker}}_{{index}}.wav files in {folder}"
        )
    return found


@register_dataset("fsdd")
class FSDDLoader(DatasetLoader):
    """Free Spoken Digit Dataset; see the module docstring for the options."""

    defaults: Dict[str, Any] = {
        "clip_seconds": 1.0,
        "split_mode": "official",
        "valid_indices": None,
        "test_speakers": None,
        "valid_speakers": None,
        "train_speakers": None,
    }
    allow_multichannel = False

    def _info(self, root: Path, opts: Dict[str, Any]) -> DatasetInfo:
        clip = positive_number(opts["clip_seconds"], "clip_seconds", self.name)
        if opts["split_mode"] not in SPLIT_MODES:
            raise ValueError(
                f"fsdd: split_mode must be one of {', '.join(map(repr, SPLIT_MODES))}, "
                f"got {opts['split_mode']!r}"
            )
        return DatasetInfo(self.name, FSDD_LABELS, FSDD_SAMPLE_RATE, False, clip)

    def _items(self, root: Path, split: str, info: DatasetInfo, opts: Dict[str, Any]) -> Items:
        recordings = scan_recordings(root)
        if opts["split_mode"] == "official":
            assign = self._official(opts)
        else:
            assign = self._by_speaker(recordings, opts)
        return [(r.path, r.digit) for r in recordings if assign(r) == split]

    @staticmethod
    def _official(opts: Dict[str, Any]):
        for name in ("test_speakers", "valid_speakers", "train_speakers"):
            if opts[name] is not None:
                raise ValueError(f"fsdd: {name} is only used with split_mode='speaker'")
        if opts["valid_indices"] is None:
            valid: Set[int] = set(OFFICIAL_VALID_INDICES)
        else:
            valid = index_set(opts["valid_indices"], "valid_indices")
        clash = sorted(valid & OFFICIAL_TEST_INDICES)
        if clash:
            raise ValueError(
                f"fsdd: valid_indices {clash} belong to the official test set (indices 0-4); "
                "validation files must come from the training indices"
            )

        def assign(r: Recording) -> str:
            if r.index in OFFICIAL_TEST_INDICES:
                return "test"
            return "valid" if r.index in valid else "train"

        return assign

    @staticmethod
    def _by_speaker(recordings: List[Recording], opts: Dict[str, Any]):
        speakers = sorted({r.speaker for r in recordings})
        test = set(name_list(opts["test_speakers"], "test_speakers") or ("theo",))
        valid_sp = set(name_list(opts["valid_speakers"], "valid_speakers"))
        train_sp = (set(name_list(opts["train_speakers"], "train_speakers"))
                    if opts["train_speakers"] is not None else None)
        unknown = sorted((test | valid_sp | (train_sp or set())) - set(speakers))
        if unknown:
            raise ValueError(
                f"fsdd: unknown speaker(s) {', '.join(unknown)}; "
                f"speakers found: {', '.join(speakers)}"
            )
        both = sorted(test & valid_sp)
        if both:
            raise ValueError(f"fsdd: speaker(s) {', '.join(both)} are both test and valid speakers")
        if train_sp is not None:
            clash = sorted(train_sp & (test | valid_sp))
            if clash:
                raise ValueError(f"fsdd: speaker(s) {', '.join(clash)} are train speakers and "
                                 "also test or valid speakers")
        if not (train_sp if train_sp is not None else set(speakers) - test - valid_sp):
            raise ValueError(
                f"fsdd: no training speakers left (found: {', '.join(speakers)}; "
                f"test: {', '.join(sorted(test))}; valid: {', '.join(sorted(valid_sp)) or '-'})"
            )
        if valid_sp and opts["valid_indices"] is not None:
            raise ValueError("fsdd: give either valid_speakers or valid_indices, not both")
        if opts["valid_indices"] is None:
            valid_idx: Set[int] = set() if valid_sp else set(SPEAKER_VALID_INDICES)
        else:
            valid_idx = index_set(opts["valid_indices"], "valid_indices")

        def assign(r: Recording) -> str:
            if r.speaker in test:
                return "test"
            if r.speaker in valid_sp:
                return "valid"
            if train_sp is not None and r.speaker not in train_sp:
                return "unused"
            return "valid" if r.index in valid_idx else "train"

        return assign
