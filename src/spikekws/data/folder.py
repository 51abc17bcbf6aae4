"""``folder``: any folder of labelled sounds.

Two layouts are recognised:

* ``root/<class>/**/*.wav|flac|ogg`` (files anywhere inside a class folder). Each
  file's split is drawn from a hash of ``seed`` and its path relative to ``root``
  (or of a group key, see ``group_regex``): the same file always lands in the same
  split, and adding files never moves existing ones. About ``test_fraction`` of the
  files go to "test", ``valid_fraction`` to "valid", the rest to "train".
* ``root/train/<class>/...`` with ``root/valid/`` (or ``val/`` / ``validation/``)
  and/or ``root/test/``: used when every visible sub-folder of ``root`` is one of these
  names and ``train/`` is among them. The folders give the splits; without a valid
  folder, "valid" is hashed out of the train folder (``valid_fraction``); without a
  test folder, "test" is empty.

Labels are the sorted class folder names (across all split folders). Folders starting
with ``_`` or ``.`` are ignored. A class folder without audio files is a ValueError.

Options:
    sample_rate (None): enforced on every file; None -> read from the first file.
    clip_seconds (1.0): clip length (centre-crop / zero-pad).
    valid_fraction (0.1), test_fraction (0.1): hashed split sizes (see above).
    seed (0): changes the hashed assignment.
    group_regex (None): a regular expression searched in each file name; the first
        group (or the whole match) is hashed instead of the path, so that all files of
        one group (e.g. a speaker: ``r"^(.+?)_nohash_"``) land in the same split. Files
        that do not match are hashed by path.

Multichannel files are averaged to mono. ``has_valid`` is True only when ``root`` has
a validation folder.
"""
from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .audio import AudioError, audio_header
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

SPLIT_FOLDERS = {"train": ("train",), "valid": ("valid", "val", "validation"), "test": ("test",)}
_ALL_SPLIT_NAMES = {n for names in SPLIT_FOLDERS.values() for n in names}


def hash_fraction(key: str, seed: int) -> float:
    """A deterministic number in [0, 1) for ``key`` (stable across runs and machines)."""
    digest = hashlib.sha256(f"{seed}\0{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_folders(root: Path) -> Optional[Dict[str, Path]]:
    """``{"train": path, ...}`` if ``root`` uses the split-folder layout, else None."""
    subdirs = visible_subdirs(root)
    names = {d.name for d in subdirs}
    if "train" not in names or not names <= _ALL_SPLIT_NAMES:
        return None
    found: Dict[str, Path] = {}
    for split, aliases in SPLIT_FOLDERS.items():
        present = [a for a in aliases if a in names]
        if len(present) > 1:
            raise ValueError(
                f"folder dataset at {root}: both {' and '.join(present)} folders exist; keep one"
            )
        if present:
            found[split] = root / present[0]
    return found


def scan_classes(base: Path) -> Dict[str, List[Path]]:
    """``{class name: [audio files]}`` for the class folders of ``base``."""
    classes = visible_subdirs(base)
    if not classes:
        raise ValueError(
            f"folder dataset: no class folders in {base} (expected {base}/<class>/*.wav)"
        )
    out: Dict[str, List[Path]] = {}
    for folder in classes:
        files = audio_files(folder, recursive=True)
        if not files:
            raise ValueError(
                f"folder dataset: class folder {folder} has no audio files "
                f"({', '.join('*' + e for e in ('.wav', '.flac', '.ogg'))})"
            )
        out[folder.name] = files
    return out


@register_dataset("folder")
class FolderLoader(DatasetLoader):
    """Labelled sounds in class folders; see the module docstring for layout and options."""

    defaults: Dict[str, Any] = {
        "sample_rate": None,
        "clip_seconds": 1.0,
        "valid_fraction": 0.1,
        "test_fraction": 0.1,
        "seed": 0,
        "group_regex": None,
    }
    allow_multichannel = True

    # -- scanning ----------------------------------------------------------------------
    def _scan(
        self, root: Path
    ) -> Tuple[Optional[Dict[str, Path]], Dict[str, Dict[str, List[Path]]]]:
        """(split folders or None, {pool name: {class: files}}); pool "all" for hashing."""
        folders = split_folders(root)
        if folders is None:
            return None, {"all": scan_classes(root)}
        return folders, {split: scan_classes(path) for split, path in folders.items()}

    def _check_opts(self, opts: Dict[str, Any]) -> Tuple[float, float, int, Optional[re.Pattern]]:
        fractions = []
        for name in ("valid_fraction", "test_fraction"):
            value = opts[name]
            try:
                ok = not isinstance(value, bool) and 0.0 <= float(value) < 1.0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"folder dataset: {name} must be in [0, 1), got {value!r}")
            fractions.append(float(value))
        if fractions[0] + fractions[1] >= 1.0:
            raise ValueError(
                f"folder dataset: valid_fraction + test_fraction must be < 1, got "
                f"{fractions[0]} + {fractions[1]}"
            )
        seed = opts["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"folder dataset: seed must be an int, got {seed!r}")
        pattern = None
        if opts["group_regex"] is not None:
            try:
                pattern = re.compile(opts["group_regex"])
            except (re.error, TypeError) as exc:
                raise ValueError(f"folder dataset: bad group_regex {opts['group_regex']!r}: {exc}")
        return fractions[0], fractions[1], seed, pattern

    def _infer_rate(self, root: Path, pools: Dict[str, Dict[str, List[Path]]]) -> int:
        first_error: Optional[Exception] = None
        for classes in pools.values():
            for files in classes.values():
                for path in files:
                    try:
                        rate = int(audio_header(path).samplerate)
                    except (AudioError, OSError) as exc:
                        first_error = first_error or exc
                        continue
                    log.info("folder dataset at %s: sample rate %d Hz (from %s)", root, rate, path)
                    return rate
        raise ValueError(
            f"folder dataset at {root}: cannot infer the sample rate, no file is readable "
            f"(first error: {first_error}); pass the sample_rate option"
        )

    # -- hooks -------------------------------------------------------------------------
    def _info(self, root: Path, opts: Dict[str, Any]) -> DatasetInfo:
        self._check_opts(opts)
        clip = positive_number(opts["clip_seconds"], "clip_seconds", self.name)
        folders, pools = self._scan(root)
        labels = tuple(sorted({c for classes in pools.values() for c in classes}))
        if opts["sample_rate"] is None:
            rate = self._infer_rate(root, pools)
        else:
            rate = positive_int(opts["sample_rate"], "sample_rate", self.name)
        has_valid = folders is not None and "valid" in folders
        return DatasetInfo(self.name, labels, rate, has_valid, clip)

    def _items(self, root: Path, split: str, info: DatasetInfo, opts: Dict[str, Any]) -> Items:
        valid_fraction, test_fraction, seed, pattern = self._check_opts(opts)
        folders, pools = self._scan(root)
        index = {name: i for i, name in enumerate(info.labels)}

        def hashed(base: Path, path: Path) -> float:
            key = None
            if pattern is not None:
                m = pattern.search(path.name)
                if m is not None:
                    key = m.group(1) if m.groups() else m.group(0)
            if key is None:
                key = path.relative_to(base).as_posix()
            return hash_fraction(key, seed)

        items: Items = []
        if folders is None:
            for cls, files in pools["all"].items():
                for path in files:
                    u = hashed(root, path)
                    where = "test" if u < test_fraction else (
                        "valid" if u < test_fraction + valid_fraction else "train")
                    if where == split:
                        items.append((path, index[cls]))
            return items
        if split in pools:
            for cls, files in pools[split].items():
                items.extend((path, index[cls]) for path in files)
            if split == "train" and "valid" not in pools:
                items = [(p, y) for p, y in items if hashed(folders["train"], p) >= valid_fraction]
            return items
        if split == "valid":  # no valid folder: carve from train
            for cls, files in pools["train"].items():
                items.extend(
                    (p, index[cls]) for p in files if hashed(folders["train"], p) < valid_fraction
                )
        return items
