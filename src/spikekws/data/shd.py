"""Spiking Heidelberg Digits (``shd``) and Spiking Speech Commands (``ssc``).

The Zenke lab files (https://zenkelab.org/datasets/, ``spikekws download shd --to DIR``)
are HDF5 files in the layout described in :mod:`spikekws.data.spikes`, with 700 input
channels (a cochlea model):

* ``shd``: ``shd_train.h5`` and ``shd_test.h5``; 20 classes (English digits "zero".."nine"
  = labels 0-9, German "null".."neun" = 10-19). There is no official validation file:
  "valid" is carved out of the TRAINING file, never out of the test file, either as a
  deterministic hashed ``valid_fraction`` of the training samples (default 10 %, seeded
  by ``seed``) or as all training samples of the ``valid_speakers`` (speaker ids from
  ``extra/speaker``). The remaining training samples form "train".
* ``ssc``: ``ssc_train.h5``, ``ssc_valid.h5``, ``ssc_test.h5``; 35 classes.

Either loader also reads a folder written by ``spikekws spikify`` (``train.h5``,
``valid.h5``, ``test.h5``); the ``files`` option names the files explicitly.

Class names come from ``extra/keys`` of the training file when present.

Options:
    dt (None -> the file's ``spikekws_dt`` attribute, else 0.01): bin width in seconds.
    max_time (None -> ``spikekws_max_time``, else 1.4 s for shd, 1.0 s for ssc): binned
        duration; events at or after it are dropped. (sparch bins both to 1.4 s in 100
        steps; SHD digits last up to about 1.4 s, SSC commands come from 1 s clips.)
    pool (1): sum groups of this many adjacent channels (700 -> 140 with ``pool=5``).
    binary (False): clip counts per bin to 1.
    num_channels (None -> ``spikekws_num_channels``, else 700): channels in the files.
    files (None): ``None`` finds ``<name>_<split>.h5`` or ``<split>.h5`` in the root; a
        string is a prefix (``"shd"`` -> ``shd_train.h5``; ``""`` -> ``train.h5``); a
        dict maps split names to file paths relative to the root (``valid`` optional).
    valid_fraction (0.1), seed (0): the hashed validation carve-out used when there is no
        validation file; ``valid_speakers`` (None; ints, a list or a string like "0,3" /
        "2-3") replaces it by whole training speakers.
    on_error, augment: see :class:`~spikekws.data.spikes.SpikeDataset` and
        :mod:`spikekws.data.augment` (event jitter/drop and masks).

Items: ``(x [T, C] float32, label)`` with ``T = ceil(max_time / dt)`` and
``C = ceil(num_channels / pool)``; ``DatasetInfo.kind == "spikes"``.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from .base import SPLITS, DatasetInfo
from .datasets import (
    DatasetLoader,
    index_set,
    positive_int,
    positive_number,
    register_dataset,
)
from .folder import hash_fraction
from .spikes import (
    ATTR_CHANNELS,
    ATTR_DT,
    ATTR_MAX_TIME,
    SpikeDataset,
    SpikeFile,
    num_steps_for,
)

log = logging.getLogger("spikekws.data")

SHD_LABELS: Tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun",
)
NUM_CHANNELS = 700
DEFAULT_DT = 0.01
#: Largest binned sample (steps x channels) accepted: 2**24 float32 values = 64 MiB
#: (SHD in 1 ms bins: 1400 x 700, about 1e6).
MAX_CELLS = 2**24


class SpikeLoader(DatasetLoader):
    """Registry entry for SHD-layout HDF5 datasets; see the module docstring."""

    defaults: Dict[str, Any] = {
        "dt": None,
        "max_time": None,
        "pool": 1,
        "binary": False,
        "num_channels": None,
        "files": None,
        "valid_fraction": 0.1,
        "seed": 0,
        "valid_speakers": None,
    }
    #: Class names used when a file has no ``extra/keys``.
    default_labels: Optional[Tuple[str, ...]] = None
    default_max_time: float = 1.0

    @property
    def create_hint(self) -> Optional[str]:  # type: ignore[override]
        return f"spikekws download {self.name} --to {{root}}"

    # -- files -------------------------------------------------------------------------
    def split_files(self, root: Path, opts: Dict[str, Any]) -> Dict[str, Path]:
        """``{split: path}`` of the files present ("valid" may be absent)."""
        files = opts["files"]
        if isinstance(files, Mapping):
            unknown = sorted(set(files) - set(SPLITS))
            if unknown:
                raise ValueError(f"{self.name}: files has unknown split(s) {unknown}; "
                                 f"use {', '.join(SPLITS)}")
            found = {s: root / str(p) for s, p in files.items()}
            for split in ("train", "test"):
                if split not in found:
                    raise ValueError(f"{self.name}: files must name a {split!r} file")
        else:
            if files is None:
                prefixes = [f"{self.name}_", ""]
            elif isinstance(files, str):
                prefixes = [f"{files}_" if files else ""]
            else:
                raise TypeError(f"{self.name}: files must be None, a prefix string or a dict "
                                f"{{split: file}}, got {files!r}")
            for prefix in prefixes:
                if (root / f"{prefix}train.h5").is_file():
                    break
            else:
                names = " or ".join(f"{p}train.h5" for p in prefixes)
                raise FileNotFoundError(
                    f"{self.name} dataset: no {names} in {root}; download the files with: "
                    f"spikekws download {self.name} --to {root}")
            found = {s: root / f"{prefix}{s}.h5" for s in SPLITS
                     if (root / f"{prefix}{s}.h5").is_file()}
        for split, path in found.items():
            if not path.is_file():
                raise FileNotFoundError(f"{self.name} dataset: {split} file not found: {path}")
        if "test" not in found:
            raise FileNotFoundError(f"{self.name} dataset: no test file next to {found['train']}")
        return found

    # -- metadata ----------------------------------------------------------------------
    def _geometry(self, train: SpikeFile, opts: Dict[str, Any]) -> Tuple[float, float, int, int]:
        attrs = train.attrs
        dt = opts["dt"] if opts["dt"] is not None else attrs.get(ATTR_DT, DEFAULT_DT)
        dt = positive_number(dt, "dt", self.name)
        if dt < 1e-9:  # also keeps the sampling rate 1/dt finite
            raise ValueError(f"dataset {self.name!r}: dt must be at least 1e-9 s, got {dt:g}")
        max_time = opts["max_time"]
        if max_time is None:
            max_time = attrs.get(ATTR_MAX_TIME, self.default_max_time)
        max_time = positive_number(max_time, "max_time", self.name)
        channels = opts["num_channels"]
        if channels is None:
            channels = attrs.get(ATTR_CHANNELS, NUM_CHANNELS)
        channels = positive_int(channels, "num_channels", self.name)
        pool = positive_int(opts["pool"], "pool", self.name)
        if pool > channels:
            raise ValueError(f"dataset {self.name!r}: pool ({pool}) exceeds num_channels ({channels})")
        # A damaged attribute or a typo (dt=1e-9) would otherwise allocate gigabytes per sample.
        cells = (max_time / dt) * -(-channels // pool)
        if not math.isfinite(cells) or cells > MAX_CELLS:
            raise ValueError(f"dataset {self.name!r}: max_time={max_time:g} s in steps of "
                             f"dt={dt:g} s over {-(-channels // pool)} channels makes "
                             f"{cells:.3g} values per sample (at most {MAX_CELLS:.3g}); check "
                             f"dt, max_time, num_channels and pool")
        return dt, max_time, channels, pool

    def _labels(self, train: SpikeFile) -> Tuple[str, ...]:
        if train.keys:
            return train.keys
        if self.default_labels is not None:
            return self.default_labels
        n = int(train.labels.max()) + 1 if len(train) else 0
        if n == 0:
            raise ValueError(f"{train.path}: no samples and no extra/keys; cannot tell the classes")
        log.warning("%s has no extra/keys; naming the %d classes by number", train.path, n)
        return tuple(str(i) for i in range(n))

    def _info(self, root: Path, opts: Dict[str, Any]) -> DatasetInfo:
        files = self.split_files(root, opts)
        train = SpikeFile(files["train"])
        dt, max_time, channels, pool = self._geometry(train, opts)
        steps = num_steps_for(max_time, dt)
        labels = self._labels(train)
        return DatasetInfo(
            self.name, labels, int(round(1.0 / dt)), "valid" in files, steps * dt,
            kind="spikes", num_channels=-(-channels // pool), num_steps=steps,
        )

    # -- splits ------------------------------------------------------------------------
    def _carve_valid(self, train: SpikeFile, opts: Dict[str, Any]) -> np.ndarray:
        """Boolean mask over the training file: True -> "valid"."""
        speakers = opts["valid_speakers"]
        if speakers is not None:
            if train.speakers is None:
                raise ValueError(f"{train.path} has no extra/speaker dataset; "
                                 f"valid_speakers cannot be used (use valid_fraction)")
            wanted = index_set(speakers, "valid_speakers")
            present = set(np.unique(train.speakers).tolist())
            missing = sorted(wanted - present)
            if missing:
                raise ValueError(f"{self.name}: valid_speakers {missing} not in {train.path} "
                                 f"(speakers: {sorted(present)})")
            return np.isin(train.speakers, sorted(wanted))
        fraction = opts["valid_fraction"]
        try:
            ok = not isinstance(fraction, bool) and 0.0 <= float(fraction) < 1.0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"dataset {self.name!r}: valid_fraction must be in [0, 1), got {fraction!r}")
        seed = opts["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"dataset {self.name!r}: seed must be an int, got {seed!r}")
        return np.array([hash_fraction(str(i), seed) < float(fraction) for i in range(len(train))],
                        dtype=bool)

    def rows(self, files: Dict[str, Path], split: str, opts: Dict[str, Any]) -> Tuple[SpikeFile, List[int]]:
        """The file and the row indices that make up ``split``."""
        if split == "test" or (split == "valid" and "valid" in files):
            f = SpikeFile(files[split])
            return f, list(range(len(f)))
        train = SpikeFile(files["train"])
        if "valid" in files:
            return train, list(range(len(train)))
        valid = self._carve_valid(train, opts)
        mask = valid if split == "valid" else ~valid
        return train, np.flatnonzero(mask).tolist()

    def load(self, root: Any, split: str, **options: Any) -> SpikeDataset:  # type: ignore[override]
        from .base import check_split

        check_split(split)
        opts = self.resolve_options(options)
        if opts["trim_db"] is not None:
            raise ValueError(f"dataset {self.name!r}: trim_db applies to audio, not to spike data")
        path = self.check_root(root)
        info = self._info(path, opts)
        files = self.split_files(path, opts)
        train = SpikeFile(files["train"])
        dt, _, channels, pool = self._geometry(train, opts)
        f, rows = self.rows(files, split, opts)
        return SpikeDataset(f, rows, info, split, dt=dt, pool=pool, binary=bool(opts["binary"]),
                            raw_channels=channels, on_error=opts["on_error"],
                            augment=opts["augment"])


@register_dataset("shd")
class SHDLoader(SpikeLoader):
    """Spiking Heidelberg Digits (20 classes, 700 channels)."""

    default_labels = SHD_LABELS
    default_max_time = 1.4


@register_dataset("ssc")
class SSCLoader(SpikeLoader):
    """Spiking Speech Commands (35 classes, 700 channels)."""

    default_labels = None
    default_max_time = 1.0
