"""Google Speech Commands layout: ``gsc`` (the real v2 corpus) and ``synth``.

Layout::

    root/<word>/<speaker>_nohash_<k>.wav    one folder per class (label = folder name)
    root/validation_list.txt                 "<word>/<file>.wav" per line -> "valid"
    root/testing_list.txt                    "<word>/<file>.wav" per line -> "test"
    root/_background_noise_/                 ignored, like every folder starting with "_"

Every file listed in neither list is in "train". Labels are the sorted class folder
names. ``gsc`` is 16 kHz with 1 s clips (the 35-word v2 task). ``synth`` is the same
layout as written by ``spikekws synth``; its sample rate and clip length come from
``root/manifest.json`` (keys ``sample_rate`` / ``clip_seconds``, at the top level or
inside the ``args`` object the generator writes) and default to 16000 Hz / 1.0 s for a
folder without a manifest that has both list files.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

from .base import DatasetInfo
from .datasets import (
    DatasetLoader,
    Items,
    audio_files,
    positive_int,
    positive_number,
    register_dataset,
    visible_subdirs,
)

log = logging.getLogger("spikekws.data")

VALID_LIST = "validation_list.txt"
TEST_LIST = "testing_list.txt"
MANIFEST = "manifest.json"


def read_split_list(path: Path) -> Set[str]:
    """The relative paths ("word/file.wav", forward slashes) listed in a split file."""
    if not path.is_file():
        raise FileNotFoundError(f"split list not found: {path}")
    entries = set()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            entry = line.strip().replace("\\", "/")
            if entry and not entry.startswith("#"):
                entries.add(entry[2:] if entry.startswith("./") else entry)
    return entries


@register_dataset("gsc")
class GSCLoader(DatasetLoader):
    """Google Speech Commands v2 (35 words, 16 kHz, 1 s clips)."""

    defaults: Dict[str, Any] = {}
    allow_multichannel = False
    sample_rate = 16000
    clip_seconds = 1.0

    def _rate_and_clip(self, root: Path) -> Tuple[int, float]:
        return self.sample_rate, self.clip_seconds

    def _class_folders(self, root: Path) -> List[Path]:
        folders = visible_subdirs(root)
        if not folders:
            raise ValueError(
                f"{self.name} dataset at {root} has no class folders (expected root/<word>/*.wav)"
            )
        for folder in folders:
            if not audio_files(folder, extensions=(".wav",)):
                raise ValueError(f"{self.name} dataset: class folder {folder} has no .wav files")
        return folders

    def _info(self, root: Path, opts: Dict[str, Any]) -> DatasetInfo:
        sample_rate, clip_seconds = self._rate_and_clip(root)
        labels = tuple(f.name for f in self._class_folders(root))
        return DatasetInfo(self.name, labels, sample_rate, True, clip_seconds)

    def _items(self, root: Path, split: str, info: DatasetInfo, opts: Dict[str, Any]) -> Items:
        valid = read_split_list(root / VALID_LIST)
        test = read_split_list(root / TEST_LIST)
        both = valid & test
        if both:
            raise ValueError(
                f"{self.name} dataset at {root}: {len(both)} file(s) are in both {VALID_LIST} "
                f"and {TEST_LIST}, e.g. {sorted(both)[0]}"
            )
        items: Items = []
        seen = set()
        for label, word in enumerate(info.labels):
            for path in audio_files(root / word, extensions=(".wav",)):
                rel = f"{word}/{path.name}"
                seen.add(rel)
                where = "test" if rel in test else "valid" if rel in valid else "train"
                if where == split:
                    items.append((path, label))
        missing = sorted((valid | test) - seen)
        if missing:
            log.warning(
                "%s dataset at %s: %d file(s) named in %s/%s do not exist, e.g. %s",
                self.name, root, len(missing), VALID_LIST, TEST_LIST, missing[0],
            )
        return items


@register_dataset("synth")
class SynthLoader(GSCLoader):
    """Synthetic speech commands written by ``spikekws synth`` (GSC layout + manifest)."""

    create_hint = "spikekws synth --out {root}"

    def _rate_and_clip(self, root: Path) -> Tuple[int, float]:
        manifest = root / MANIFEST
        if not manifest.is_file():
            if (root / VALID_LIST).is_file() and (root / TEST_LIST).is_file():
                return GSCLoader.sample_rate, GSCLoader.clip_seconds
            raise ValueError(
                f"{root} does not look like a finished synth dataset (no {MANIFEST}, no "
                f"{VALID_LIST}/{TEST_LIST}; an interrupted generation?); create or resume "
                f"it with: spikekws synth --out {root}"
            )
        try:
            with open(manifest, encoding="utf-8") as fh:
                meta = json.load(fh)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read {manifest}: {exc}") from exc
        if not isinstance(meta, dict):
            raise ValueError(f"{manifest} must hold a JSON object, got {type(meta).__name__}")
        # The generator stores its arguments under "args"; top-level keys are accepted too.
        args = meta.get("args") if isinstance(meta.get("args"), dict) else {}
        values = {}
        defaults = {"sample_rate": GSCLoader.sample_rate, "clip_seconds": GSCLoader.clip_seconds}
        for key, default in defaults.items():
            if key in meta:
                values[key] = meta[key]
            elif key in args:
                values[key] = args[key]
            else:
                log.warning("%s has no %r; assuming %s", manifest, key, default)
                values[key] = default
        sample_rate = positive_int(values["sample_rate"], f"sample_rate in {manifest}", self.name)
        clip_seconds = positive_number(
            values["clip_seconds"], f"clip_seconds in {manifest}", self.name
        )
        return sample_rate, clip_seconds

    def _items(self, root: Path, split: str, info: DatasetInfo, opts: Dict[str, Any]) -> Items:
        for name in (VALID_LIST, TEST_LIST):
            if not (root / name).is_file():
                raise FileNotFoundError(
                    f"split list not found: {root / name}; recreate the dataset with: "
                    f"spikekws synth --out {root}"
                )
        return super()._items(root, split, info, opts)
