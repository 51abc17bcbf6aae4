"""Dataset metadata and the generic audio classification dataset."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import Dataset

from .audio import AudioError, check_audio, fix_length, load_audio, trim_silence


#: Values of :attr:`DatasetInfo.kind`.
DATASET_KINDS: Tuple[str, ...] = ("audio", "spikes")


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and trainer need to know about a dataset (never hard-code these).

    ``kind`` says what an item holds: ``"audio"``: ``(wave [clip_samples], label)``;
    ``"spikes"``: ``(x [num_steps, num_channels], label)``, binned event counts that
    need no feature front-end. For spike datasets ``sample_rate`` is the number of time
    bins per second (rounded) and ``clip_seconds`` the binned duration.
    """

    name: str
    labels: Tuple[str, ...]
    sample_rate: int
    has_valid: bool
    clip_seconds: float
    kind: str = "audio"
    num_channels: int = 0
    num_steps: int = 0

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def clip_samples(self) -> int:
        """Samples per clip (audio), or time bins per item (spikes)."""
        if self.kind == "spikes":
            return int(self.num_steps)
        return int(round(self.clip_seconds * self.sample_rate))


#: The split names every dataset accepts, in canonical order.
SPLITS: Tuple[str, ...] = ("train", "valid", "test")
#: Accepted values of the ``on_error`` option.
ON_ERROR_MODES: Tuple[str, ...] = ("raise", "skip")

log = logging.getLogger("spikekws.data")


def check_split(split: str) -> str:
    """Return ``split`` if it is one of :data:`SPLITS`, else raise ValueError."""
    if split not in SPLITS:
        allowed = ", ".join(repr(s) for s in SPLITS)
        raise ValueError(f"unknown split {split!r}; allowed values: {allowed}")
    return split


def check_on_error(on_error: str) -> str:
    if on_error not in ON_ERROR_MODES:
        allowed = ", ".join(repr(s) for s in ON_ERROR_MODES)
        raise ValueError(f"on_error must be one of {allowed}, got {on_error!r}")
    return on_error


class AudioDataset(Dataset):
    """A list of ``(audio file, label index)`` pairs for one split of a dataset.

    ``dataset[i]`` loads the file with :func:`~spikekws.data.audio.load_audio`
    (enforcing ``info.sample_rate``) and returns ``(wave, label)`` where ``wave`` is a
    float32 tensor of exactly ``info.clip_samples`` samples (DC offset removed, then
    zero-padded or cropped, see :func:`~spikekws.data.audio.fix_length`) and ``label``
    an ``int``.

    Args:
        items: the files and their label indices (into ``info.labels``).
        info: the dataset's metadata.
        split: "train", "valid" or "test".
        on_error: "raise" (default): an unusable file raises when it is loaded.
            "skip": every file is checked once, up front, by :meth:`validate`; the bad
            ones are dropped, counted in a warning on the ``spikekws.data`` logger and
            kept in :attr:`skipped` as ``(path, reason)`` pairs. If no file survives,
            ValueError is raised.
        allow_multichannel: average multichannel files to mono (else they are errors).
        length_mode: "center" or "start", how clips are cropped/padded.
        augment: an :class:`~spikekws.data.augment.Augment` (see
            :func:`~spikekws.data.augment.build_augment`) applied to the waveforms of the
            "train" split only; ignored for "valid"/"test". Each item gets its own
            generator seeded from ``(augment.seed, epoch, index)`` (:meth:`set_epoch`), so
            results do not depend on worker processes or reading order.
        trim_db: if set, leading and trailing audio quieter than the loudest 25 ms frame
            by more than this many dB is cut before cropping/padding
            (:func:`~spikekws.data.audio.trim_silence`), in every split.
    """

    def __init__(
        self,
        items: Sequence[Tuple[Path, int]],
        info: DatasetInfo,
        split: str,
        on_error: str = "raise",
        allow_multichannel: bool = True,
        length_mode: str = "center",
        augment: Optional[Any] = None,
        trim_db: Optional[float] = None,
    ) -> None:
        self.info = info
        self.trim_db = None if trim_db is None else float(trim_db)
        self.split = check_split(split)
        self.on_error = check_on_error(on_error)
        self.allow_multichannel = bool(allow_multichannel)
        if length_mode not in ("center", "start"):
            raise ValueError(f"length_mode must be 'center' or 'start', got {length_mode!r}")
        self.length_mode = length_mode
        if augment is not None:
            augment.check_kind("audio")
        self.augment = augment if self.split == "train" else None
        self.epoch = 0
        self.items: List[Tuple[Path, int]] = []
        for path, label in items:
            label = int(label)
            if not 0 <= label < info.num_classes:
                raise ValueError(
                    f"label {label} of {path} is out of range for {info.num_classes} classes"
                )
            self.items.append((Path(path), label))
        self.skipped: List[Tuple[Path, str]] = []
        if self.on_error == "skip":
            self.drop_invalid()

    def validate(self, full: bool = False) -> List[Tuple[Path, str]]:
        """Check every file without changing the dataset; return ``(path, reason)`` pairs.

        Reads headers only (plus the samples of floating-point files, which alone can
        hold NaN/infinity) unless ``full`` is true, which decodes every file.
        """
        problems: List[Tuple[Path, str]] = []
        for path, _ in self.items:
            try:
                check_audio(
                    path,
                    expected_sample_rate=self.info.sample_rate,
                    allow_multichannel=self.allow_multichannel,
                    full=full,
                )
            except AudioError as exc:
                problems.append((path, exc.reason))
            except OSError as exc:  # missing file, permissions...
                problems.append((path, str(exc)))
        return problems

    def drop_invalid(self, full: bool = False) -> int:
        """Remove the files :meth:`validate` rejects; return how many were removed."""
        problems = self.validate(full=full)
        if not problems:
            return 0
        total = len(self.items)
        bad = {p for p, _ in problems}
        self.items = [(p, y) for p, y in self.items if p not in bad]
        self.skipped.extend(problems)
        first_path, first_reason = problems[0]
        if not self.items:
            raise ValueError(
                f"{self.info.name} {self.split} split: all {total} audio files are unusable "
                f"(first: {first_path}: {first_reason})"
            )
        log.warning(
            "%s %s split: skipped %d of %d audio file(s) that cannot be used "
            "(first: %s: %s)",
            self.info.name, self.split, len(problems), total, first_path, first_reason,
        )
        return len(problems)

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch`` (no effect without augmentation)."""
        self.epoch = int(epoch)

    def _finish(self, wave: torch.Tensor, index: int) -> torch.Tensor:
        """Remove the DC offset, crop/pad ``wave`` to the clip length, augment (train split).

        The mean is subtracted before padding: a recording's DC offset is a property of
        the microphone, not of the word, and left in place it turns the edges of the zero
        padding into broadband clicks.
        """
        if wave.numel():
            wave = wave - wave.mean()
        if self.trim_db is not None and wave.dim() == 1:
            wave = trim_silence(wave, self.info.sample_rate, self.trim_db)
        if self.augment is None:
            return fix_length(wave, self.info.clip_samples, self.length_mode)
        rng = self.augment.generator(self.epoch, index)
        return self.augment.wave(
            wave, self.info.sample_rate, self.info.clip_samples, rng, self.length_mode
        )

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, int]:
        path, label = self.items[index]
        wave = load_audio(
            path,
            expected_sample_rate=self.info.sample_rate,
            allow_multichannel=self.allow_multichannel,
        )
        return self._finish(wave, index), label

    def labels_tensor(self) -> torch.Tensor:
        """All labels as a LongTensor ``[len(self)]`` (no audio is read)."""
        return torch.tensor([y for _, y in self.items], dtype=torch.long)

    def class_counts(self) -> torch.Tensor:
        """Number of items per class, LongTensor ``[info.num_classes]``."""
        return torch.bincount(self.labels_tensor(), minlength=self.info.num_classes)

    @property
    def paths(self) -> List[Path]:
        return [p for p, _ in self.items]

    def __repr__(self) -> str:
        return (
            f"AudioDataset({self.info.name!r}, split={self.split!r}, items={len(self)}, "
            f"classes={self.info.num_classes}, sample_rate={self.info.sample_rate})"
        )
