"""Russian speech commands (``rusc``): a labelled corpus in one of three layouts.

There is no single official distribution format, so the loader accepts the three common
ones, tried in this order:

1. CSV manifest ``root/manifest.csv`` (name set by the ``manifest`` option) with a header
   row naming the columns ``path``, ``label``, ``split`` (any order, extra columns
   ignored); ``path`` is relative to ``root`` (or absolute), ``split`` is ``train``,
   ``valid`` (``val``/``validation`` accepted) or ``test``::

       path,label,split
       clips/da_0001.wav,да,train

2. One folder per class with split sub-folders: ``root/<class>/{train,valid,test}/*.wav``.
3. One folder per split with class sub-folders: ``root/{train,valid,test}/<class>/*.wav``.

Audio may be WAV, FLAC or OGG. Labels are the sorted class names (UTF-8, e.g. Cyrillic
words), or the ``labels`` option (a list) to fix their order. A layout error (missing
column, unknown split value, empty class folder, class sub-folder without any split
folder) is a ValueError naming the file or folder.

Options: ``sample_rate`` (16000, enforced), ``clip_seconds`` (1.0), ``manifest``
("manifest.csv"), ``labels`` (None).
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .base import DatasetInfo
from .datasets import (
    DatasetLoader,
    Items,
    audio_files,
    name_list,
    positive_int,
    positive_number,
    register_dataset,
    visible_subdirs,
)

log = logging.getLogger("spikekws.data")

SPLIT_ALIASES = {"train": "train", "valid": "valid", "val": "valid", "validation": "valid",
                 "dev": "valid", "test": "test"}
REQUIRED_COLUMNS = ("path", "label", "split")

Entry = Tuple[Path, str, str]  # (file, class name, split)


@register_dataset("rusc")
class RuSCLoader(DatasetLoader):
    """Russian speech commands; see the module docstring for the layouts."""

    defaults: Dict[str, Any] = {
        "sample_rate": 16000,
        "clip_seconds": 1.0,
        "manifest": "manifest.csv",
        "labels": None,
    }
    allow_multichannel = True

    # -- scanning ----------------------------------------------------------------------
    def _entries(self, root: Path, opts: Dict[str, Any]) -> List[Entry]:
        manifest = root / str(opts["manifest"])
        if manifest.is_file():
            return self._from_manifest(root, manifest)
        subdirs = visible_subdirs(root)
        if not subdirs:
            raise ValueError(f"rusc dataset at {root}: no {manifest.name} and no sub-folders "
                             f"(see spikekws.data.rusc for the accepted layouts)")
        if all(d.name.lower() in SPLIT_ALIASES for d in subdirs):
            return self._split_first(subdirs)
        return self._class_first(subdirs)

    def _from_manifest(self, root: Path, manifest: Path) -> List[Entry]:
        try:
            with open(manifest, encoding="utf-8-sig", newline="") as fh:
                reader = csv.DictReader(fh)
                header = [h.strip().lower() for h in (reader.fieldnames or [])]
                missing = [c for c in REQUIRED_COLUMNS if c not in header]
                if missing:
                    raise ValueError(f"{manifest}: missing column(s) {', '.join(missing)} in the "
                                     f"header (need {', '.join(REQUIRED_COLUMNS)})")
                reader.fieldnames = header
                entries: List[Entry] = []
                for lineno, row in enumerate(reader, 2):
                    rel = (row.get("path") or "").strip()
                    label = (row.get("label") or "").strip()
                    split_raw = (row.get("split") or "").strip()
                    if not rel and not label and not split_raw:
                        continue
                    if not rel or not label:
                        raise ValueError(f"{manifest}, line {lineno}: empty path or label")
                    split = SPLIT_ALIASES.get(split_raw.lower())
                    if split is None:
                        raise ValueError(f"{manifest}, line {lineno}: unknown split {split_raw!r} "
                                         f"(use train, valid or test)")
                    path = Path(rel)
                    entries.append((path if path.is_absolute() else root / path, label, split))
        except UnicodeDecodeError as exc:
            raise ValueError(f"{manifest}: not UTF-8 text ({exc})") from None
        except csv.Error as exc:
            raise ValueError(f"{manifest}: malformed CSV ({exc})") from None
        if not entries:
            raise ValueError(f"{manifest}: no rows")
        return entries

    @staticmethod
    def _split_first(split_dirs: List[Path]) -> List[Entry]:
        entries: List[Entry] = []
        seen: Dict[str, Path] = {}
        for d in split_dirs:
            split = SPLIT_ALIASES[d.name.lower()]
            if split in seen:
                raise ValueError(f"rusc dataset: both {seen[split]} and {d} hold the {split} split")
            seen[split] = d
            classes = visible_subdirs(d)
            if not classes:
                raise ValueError(f"rusc dataset: no class folders in {d}")
            for c in classes:
                files = audio_files(c, recursive=True)
                if not files:
                    raise ValueError(f"rusc dataset: class folder {c} has no audio files")
                entries.extend((f, c.name, split) for f in files)
        return entries

    @staticmethod
    def _class_first(class_dirs: List[Path]) -> List[Entry]:
        entries: List[Entry] = []
        for c in class_dirs:
            split_dirs = [d for d in visible_subdirs(c) if d.name.lower() in SPLIT_ALIASES]
            if not split_dirs:
                raise ValueError(f"rusc dataset: class folder {c} has no train/, valid/ or test/ "
                                 f"sub-folder (see spikekws.data.rusc for the accepted layouts)")
            loose = audio_files(c)
            if loose:
                log.warning("rusc: %d audio file(s) directly in %s ignored (not in a split "
                            "folder)", len(loose), c)
            total = 0
            for d in split_dirs:
                files = audio_files(d, recursive=True)
                total += len(files)
                entries.extend((f, c.name, SPLIT_ALIASES[d.name.lower()]) for f in files)
            if not total:
                raise ValueError(f"rusc dataset: class folder {c} has no audio files")
        return entries

    # -- hooks -------------------------------------------------------------------------
    def _labels(self, entries: List[Entry], opts: Dict[str, Any]) -> Tuple[str, ...]:
        found = sorted({label for _, label, _ in entries})
        if opts["labels"] is None:
            return tuple(found)
        labels = name_list(opts["labels"], "labels")
        unknown = sorted(set(found) - set(labels))
        if unknown:
            raise ValueError(f"rusc dataset: classes {unknown} are not in the labels option "
                             f"{list(labels)}")
        return labels

    def _info(self, root: Path, opts: Dict[str, Any]) -> DatasetInfo:
        rate = positive_int(opts["sample_rate"], "sample_rate", self.name)
        clip = positive_number(opts["clip_seconds"], "clip_seconds", self.name)
        entries = self._entries(root, opts)
        labels = self._labels(entries, opts)
        has_valid = any(split == "valid" for _, _, split in entries)
        return DatasetInfo(self.name, labels, rate, has_valid, clip)

    def _items(self, root: Path, split: str, info: DatasetInfo, opts: Dict[str, Any]) -> Items:
        index = {name: i for i, name in enumerate(info.labels)}
        entries = [(p, index[c]) for p, c, s in self._entries(root, opts) if s == split]
        if opts["on_error"] == "raise":
            missing: Optional[Path] = next((p for p, _ in entries if not p.exists()), None)
            if missing is not None:
                n = sum(1 for p, _ in entries if not p.exists())
                raise FileNotFoundError(f"rusc dataset: {n} file(s) of the {split} split do not "
                                        f"exist, e.g. {missing}")
        return entries
