"""Google Speech Commands v2, 12-class task (``gsc12``).

Reads the same folder as ``gsc`` (see :mod:`spikekws.data.gsc`: one folder per word,
``validation_list.txt``, ``testing_list.txt``, ``_background_noise_/*.wav``) and maps it
to 12 labels::

    yes no up down left right on off stop go _unknown_ _silence_   (label 0 .. 11)

* the ten keywords keep their own label;
* every other word folder is ``_unknown_``; ``unknown_fraction`` (None: keep all) keeps a
  deterministic subset of ``round(unknown_fraction * keyword clips)`` of them per split,
  chosen by a seeded hash of the file path;
* ``_silence_`` clips are cut from the ``_background_noise_`` recordings: per split,
  ``round(silence_fraction * other clips of the split)`` 1 s windows. To keep noise out of
  more than one split, each recording is divided in time: the first 80 % feeds "train",
  the next 10 % "valid", the last 10 % "test". Window positions, the recording used
  (round robin) and a gain drawn from ``silence_gain`` come from a generator seeded with
  ``seed`` and the split, so every run gets the same clips.

Options: ``silence_fraction`` (0.1), ``unknown_fraction`` (None), ``silence_gain``
([0.0, 1.0]), ``seed`` (0). Split membership of word clips is exactly ``gsc``'s.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf
import torch

from .audio import AudioError, audio_header, fix_length
from .base import AudioDataset, DatasetInfo, check_split
from .datasets import Items, audio_files, register_dataset
from .folder import hash_fraction
from .gsc import GSCLoader

log = logging.getLogger("spikekws.data")

KEYWORDS: Tuple[str, ...] = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN, SILENCE = "_unknown_", "_silence_"
GSC12_LABELS: Tuple[str, ...] = KEYWORDS + (UNKNOWN, SILENCE)
BACKGROUND = "_background_noise_"
#: Fraction of each background recording (start, end) that feeds each split.
SILENCE_REGIONS: Dict[str, Tuple[float, float]] = {
    "train": (0.0, 0.8), "valid": (0.8, 0.9), "test": (0.9, 1.0)}
_SPLIT_CODE = {"train": 0, "valid": 1, "test": 2}


class GSC12Dataset(AudioDataset):
    """:class:`AudioDataset` of the word clips followed by the ``_silence_`` windows.

    ``dataset[i]`` for ``i >= len(items)`` reads ``info.clip_samples`` samples of a
    background recording from ``silence[i - len(items)]`` and scales them by its gain.
    """

    def __init__(self, items: Sequence[Tuple[Path, int]], silence: Sequence[Tuple[Path, int, float]],
                 info: DatasetInfo, split: str, **kwargs: Any) -> None:
        super().__init__(items, info, split, **kwargs)
        self.silence: List[Tuple[Path, int, float]] = list(silence)
        self.silence_label = info.labels.index(SILENCE)
        if self.on_error == "skip" and self.silence:
            bad = {}
            for path in sorted({p for p, _, _ in self.silence}):
                try:
                    _check_noise(path, info.sample_rate)
                except (AudioError, OSError) as exc:
                    bad[path] = str(exc)
            if bad:
                self.skipped.extend((p, r) for p, r in bad.items())
                before = len(self.silence)
                self.silence = [s for s in self.silence if s[0] not in bad]
                log.warning("gsc12 %s split: dropped %d of %d silence clip(s) from unusable "
                            "background files (first: %s)", split, before - len(self.silence),
                            before, next(iter(bad.values())))

    def __len__(self) -> int:
        return len(self.items) + len(self.silence)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, int]:
        if index < 0:
            index += len(self)
        if index < len(self.items):
            return super().__getitem__(index)
        path, start, gain = self.silence[index - len(self.items)]
        wave = read_segment(path, start, self.info.clip_samples, self.info.sample_rate) * gain
        return self._finish(wave, index), self.silence_label

    def labels_tensor(self) -> torch.Tensor:
        words = [y for _, y in self.items]
        return torch.tensor(words + [self.silence_label] * len(self.silence), dtype=torch.long)


def _check_noise(path: Path, sample_rate: int) -> int:
    """Frames of a background recording; AudioError if it is unusable."""
    info = audio_header(path)
    if int(info.samplerate) != int(sample_rate):
        raise AudioError(path, f"sample rate {info.samplerate} Hz, expected {sample_rate} Hz")
    if info.frames <= 0:
        raise AudioError(path, "empty audio (0 samples)")
    return int(info.frames)


def read_segment(path: Path, start: int, num_samples: int, sample_rate: int) -> torch.Tensor:
    """``num_samples`` mono samples of ``path`` from ``start`` (zero-padded at the end)."""
    _check_noise(path, sample_rate)
    try:
        data, _ = sf.read(str(path), start=int(start), frames=int(num_samples), dtype="float32",
                          always_2d=True)
    except (sf.SoundFileError, RuntimeError) as exc:
        raise AudioError(path, f"cannot decode audio ({exc})") from exc
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(mono).all():
        raise AudioError(path, "non-finite sample(s) (NaN or infinity)")
    wave = torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32)).clamp_(-1.0, 1.0)
    return fix_length(wave, num_samples, "start")


def _fraction(value: Any, option: str) -> Optional[float]:
    if value is None:
        return None
    try:
        ok = not isinstance(value, bool) and 0.0 <= float(value) <= 10.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"gsc12 dataset: {option} must be a number in [0, 10], got {value!r}")
    return float(value)


@register_dataset("gsc12")
class GSC12Loader(GSCLoader):
    """Google Speech Commands v2, 10 keywords + unknown + silence; see the module docstring."""

    defaults: Dict[str, Any] = {
        "silence_fraction": 0.1,
        "unknown_fraction": None,
        "silence_gain": (0.0, 1.0),
        "seed": 0,
    }
    create_hint = "spikekws download gsc --to {root}"

    def _word_info(self, root: Path) -> DatasetInfo:
        return GSCLoader._info(self, root, {})

    def _info(self, root: Path, opts: Dict[str, Any]) -> DatasetInfo:
        words = self._word_info(root)
        missing = [k for k in KEYWORDS if k not in words.labels]
        if missing:
            raise ValueError(f"gsc12 dataset at {root}: keyword folder(s) {', '.join(missing)} "
                             f"not found (is this Google Speech Commands v2?)")
        self._check_opts(opts)
        return DatasetInfo(self.name, GSC12_LABELS, words.sample_rate, True, words.clip_seconds)

    def _check_opts(self, opts: Dict[str, Any]) -> Tuple[float, Optional[float], Tuple[float, float], int]:
        silence = _fraction(opts["silence_fraction"], "silence_fraction")
        unknown = _fraction(opts["unknown_fraction"], "unknown_fraction")
        gain = opts["silence_gain"]
        try:
            lo, hi = (float(g) for g in gain)
            ok = 0.0 <= lo <= hi
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"gsc12 dataset: silence_gain must be a [low, high] pair with "
                             f"0 <= low <= high, got {gain!r}")
        seed = opts["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"gsc12 dataset: seed must be an int, got {seed!r}")
        return float(silence or 0.0), unknown, (lo, hi), seed

    def _items(self, root: Path, split: str, info: DatasetInfo, opts: Dict[str, Any]) -> Items:
        _, unknown_fraction, _, seed = self._check_opts(opts)
        words = self._word_info(root)
        index = {name: i for i, name in enumerate(GSC12_LABELS)}
        known: Items = []
        unknown: Items = []
        for path, word_label in GSCLoader._items(self, root, split, words, opts):
            word = words.labels[word_label]
            if word in index:
                known.append((path, index[word]))
            else:
                unknown.append((path, index[UNKNOWN]))
        if unknown_fraction is not None:
            keep = int(round(unknown_fraction * len(known)))
            ranked = sorted(unknown, key=lambda item: hash_fraction(
                item[0].relative_to(root).as_posix(), seed))
            unknown = sorted(ranked[:keep], key=lambda item: item[0].relative_to(root).as_posix())
        return known + unknown

    def _silence(self, root: Path, split: str, info: DatasetInfo, count: int,
                 gain: Tuple[float, float], seed: int, on_error: str) -> List[Tuple[Path, int, float]]:
        if count <= 0:
            return []
        folder = root / BACKGROUND
        files = audio_files(folder, extensions=(".wav",)) if folder.is_dir() else []
        if not files:
            raise ValueError(f"gsc12 dataset: _silence_ clips need {folder}/*.wav; "
                             f"pass silence_fraction=0 to train without them")
        usable: List[Tuple[Path, int]] = []
        for path in files:
            try:
                usable.append((path, _check_noise(path, info.sample_rate)))
            except (AudioError, OSError) as exc:
                if on_error == "raise":
                    raise
                log.warning("gsc12: background file skipped: %s", exc)
        if not usable:
            raise ValueError(f"gsc12 dataset: no usable background recording in {folder}")
        rng = np.random.default_rng([seed, _SPLIT_CODE[split]])
        lo_frac, hi_frac = SILENCE_REGIONS[split]
        n = info.clip_samples
        clips = []
        for k in range(count):
            path, frames = usable[k % len(usable)]
            lo = int(lo_frac * frames)
            hi = max(lo, int(hi_frac * frames) - n)  # window fits in the region when possible
            start = int(rng.integers(lo, hi + 1))
            clips.append((path, start, float(rng.uniform(*gain))))
        return clips

    def load(self, root: Any, split: str, **options: Any) -> GSC12Dataset:  # type: ignore[override]
        check_split(split)
        opts = self.resolve_options(options)
        path = self.check_root(root)
        info = self._info(path, opts)
        items = self._items(path, split, info, opts)
        silence_fraction, _, gain, seed = self._check_opts(opts)
        silence = self._silence(path, split, info, int(round(silence_fraction * len(items))),
                                gain, seed, opts["on_error"])
        return GSC12Dataset(items, silence, info, split, on_error=opts["on_error"],
                            allow_multichannel=self.allow_multichannel, augment=opts["augment"],
                            trim_db=opts["trim_db"])
