"""Spike-event datasets in the HDF5 layout of the Heidelberg spiking data sets (SHD/SSC).

File layout (one file per split; what :func:`write_spike_h5` writes and
:class:`SpikeFile` reads)::

    spikes/times    [N] variable-length float arrays, event times in seconds
    spikes/units    [N] variable-length uint16 arrays, channel of each event
    labels          [N] uint16 class index
    extra/keys      [C] class names (bytes), optional
    extra/speaker   [N] uint16 speaker id, optional

Files written by ``spikekws spikify`` also carry root attributes ``spikekws_dt``
(seconds per time step of the encoder), ``spikekws_max_time``, ``spikekws_num_channels``
and ``spikekws_encoder`` (JSON); loaders use them as defaults.

:class:`SpikeDataset` bins one split into dense tensors: ``dataset[i] ->
(x [num_steps, channels] float32, label)`` where ``x[k, c]`` counts the events of the
channels ``c * pool .. c * pool + pool - 1`` with ``k * dt <= t < (k + 1) * dt``
(``binary=True`` clips counts to 1). Events at or after ``num_steps * dt`` are dropped.
"""
from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from .base import DatasetInfo, check_on_error, check_split

__all__ = [
    "REQUIRED_DATASETS",
    "SpikeDataset",
    "SpikeFile",
    "bin_events",
    "check_events",
    "read_spike_h5",
    "require_h5py",
    "write_spike_h5",
]

log = logging.getLogger("spikekws.data")

PathLike = Union[str, "os.PathLike[str]"]

#: HDF5 datasets every spike file must contain.
REQUIRED_DATASETS: Tuple[str, ...] = ("spikes/times", "spikes/units", "labels")
#: Root attributes written by ``spikekws spikify``.
ATTR_DT, ATTR_MAX_TIME, ATTR_CHANNELS, ATTR_ENCODER = (
    "spikekws_dt", "spikekws_max_time", "spikekws_num_channels", "spikekws_encoder")


def require_h5py() -> Any:
    """Import h5py, or raise ImportError with the install command."""
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is a dependency
        raise ImportError("spike datasets need h5py: pip install h5py") from exc
    return h5py


# --------------------------------------------------------------------------- binning
def bin_events(
    times: np.ndarray,
    units: np.ndarray,
    num_steps: int,
    dt: float,
    num_channels: int,
    pool: int = 1,
    binary: bool = False,
) -> torch.Tensor:
    """Dense ``[num_steps, ceil(num_channels / pool)]`` float32 event counts.

    Event ``(t, u)`` lands in step ``floor(t / dt)`` and column ``u // pool``; events at
    ``t >= num_steps * dt`` are dropped. ``units`` must lie in ``[0, num_channels)``.
    """
    cols = -(-int(num_channels) // int(pool))
    t = np.asarray(times, dtype=np.float64)
    u = np.asarray(units, dtype=np.int64)
    # compare before the integer cast: a far-future time overflows int64 and would wrap
    # into a valid bin instead of being dropped
    step_f = np.floor(t / dt)
    keep = step_f < num_steps
    if not keep.all():
        step_f, u = step_f[keep], u[keep]
    step = step_f.astype(np.int64)
    flat = step * cols + u // int(pool)
    counts = np.bincount(flat, minlength=num_steps * cols).astype(np.float32)
    x = torch.from_numpy(counts.reshape(num_steps, cols))
    return x.clamp_(max=1.0) if binary else x


def check_events(times: np.ndarray, units: np.ndarray, num_channels: int) -> Optional[str]:
    """Why the events of one sample are unusable, or None if they are fine."""
    if times.ndim != 1 or units.ndim != 1:
        return f"events must be 1-D arrays, got shapes {times.shape} and {units.shape}"
    if times.shape[0] != units.shape[0]:
        return (f"spikes/times has {times.shape[0]} events but spikes/units has "
                f"{units.shape[0]}")
    if times.size == 0:
        return None
    if not np.issubdtype(times.dtype, np.floating) and not np.issubdtype(times.dtype, np.integer):
        return f"spikes/times has non-numeric dtype {times.dtype}"
    if not np.isfinite(times).all():
        return f"{int((~np.isfinite(times)).sum())} non-finite event time(s)"
    if (times < 0).any():
        return f"{int((times < 0).sum())} negative event time(s) (min {float(times.min()):g} s)"
    if not np.issubdtype(units.dtype, np.integer):
        return f"spikes/units has non-integer dtype {units.dtype}"
    if (units < 0).any() or (units >= num_channels).any():
        bad = int(units.max()) if (units >= num_channels).any() else int(units.min())
        return f"unit {bad} is out of range for {num_channels} channels"
    return None


# --------------------------------------------------------------------------- file access
class SpikeFile:
    """Read access to one SHD-layout HDF5 file; the handle is opened lazily per process.

    The constructor checks the structure (readable HDF5, the datasets of
    :data:`REQUIRED_DATASETS`, equal lengths) and raises ValueError naming the file and
    the problem; :meth:`events` reads one sample.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"spike file not found: {self.path}")
        self._handle: Any = None
        self._pid = os.getpid()
        with self._open() as f:
            try:
                self._read_structure(f)
            except (OSError, TypeError, KeyError, RuntimeError) as exc:  # h5py on damaged files
                raise ValueError(f"{self.path}: malformed spike file ({type(exc).__name__}: "
                                 f"{exc})") from None

    def _read_structure(self, f: Any) -> None:
        h5py = require_h5py()
        for name in REQUIRED_DATASETS:
            if name not in f:
                raise ValueError(
                    f"{self.path}: missing dataset {name!r} (an SHD/SSC-format file holds "
                    f"{', '.join(REQUIRED_DATASETS)})")
            obj = f[name]
            if not isinstance(obj, h5py.Dataset) or obj.ndim < 1:
                raise ValueError(f"{self.path}: {name!r} must be a dataset with one entry "
                                 f"per sample, got {obj!r}")
        n_times, n_units = len(f["spikes/times"]), len(f["spikes/units"])
        labels = np.asarray(f["labels"][()])
        if labels.ndim != 1:
            raise ValueError(f"{self.path}: labels must be 1-D, got shape {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{self.path}: labels must be integers, got dtype {labels.dtype}")
        if not n_times == n_units == labels.shape[0]:
            raise ValueError(
                f"{self.path}: spikes/times has {n_times} samples, spikes/units {n_units} "
                f"and labels {labels.shape[0]}; they must be equal")
        self.labels = labels.astype(np.int64)
        self.keys: Optional[Tuple[str, ...]] = None
        if "extra/keys" in f:
            keys = np.asarray(f["extra/keys"][()])
            if keys.ndim != 1:
                raise ValueError(f"{self.path}: extra/keys must be a 1-D list of class "
                                 f"names, got shape {keys.shape}")
            try:
                self.keys = tuple(_to_str(k) for k in keys)
            except UnicodeDecodeError as exc:
                raise ValueError(f"{self.path}: extra/keys is not UTF-8 text ({exc})") from None
        self.speakers: Optional[np.ndarray] = None
        if "extra/speaker" in f:
            speakers = np.asarray(f["extra/speaker"][()])
            if speakers.shape == labels.shape:
                self.speakers = speakers.astype(np.int64)
            else:
                log.warning("%s: extra/speaker has shape %s for %d samples; ignored",
                            self.path, speakers.shape, labels.shape[0])
        try:
            self.attrs: Dict[str, Any] = {k: _plain(v) for k, v in f.attrs.items()}
        except UnicodeDecodeError as exc:
            raise ValueError(f"{self.path}: a root attribute is not UTF-8 text ({exc})") from None

    def _open(self) -> Any:
        h5py = require_h5py()
        try:
            return h5py.File(self.path, "r")
        except OSError as exc:
            raise ValueError(f"{self.path}: not a readable HDF5 file ({exc})") from None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def events(self, row: int) -> Tuple[np.ndarray, np.ndarray]:
        """``(times, units)`` of sample ``row`` as stored (no checks)."""
        if self._handle is None or self._pid != os.getpid():
            # a handle inherited through fork (DataLoader workers) must not be shared
            self._handle = self._open()
            self._pid = os.getpid()
        f = self._handle
        try:
            return np.asarray(f["spikes/times"][row]), np.asarray(f["spikes/units"][row])
        except (OSError, TypeError, KeyError, RuntimeError) as exc:  # damaged file
            raise ValueError(f"{self.path}: cannot read the events of sample {row} "
                             f"({type(exc).__name__}: {exc})") from None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state["_handle"] = None  # h5py handles do not survive pickling / fork
        return state

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"SpikeFile({str(self.path)!r}, samples={len(self)})"


def _to_str(v: Any) -> str:
    return v.decode("utf-8") if isinstance(v, (bytes, np.bytes_)) else str(v)


def _plain(v: Any) -> Any:
    if isinstance(v, (bytes, np.bytes_)):
        return v.decode("utf-8")
    if isinstance(v, np.generic):
        return v.item()
    return v


def read_spike_h5(path: PathLike) -> Dict[str, Any]:
    """The whole file as plain arrays: ``times``/``units`` (lists), ``labels``, ``keys``,
    ``speakers`` and ``attrs`` (for tests and small files)."""
    sf = SpikeFile(path)
    times, units = zip(*(sf.events(i) for i in range(len(sf)))) if len(sf) else ((), ())
    sf.close()
    return {"times": list(times), "units": list(units), "labels": sf.labels, "keys": sf.keys,
            "speakers": sf.speakers, "attrs": sf.attrs}


def write_spike_h5(
    path: PathLike,
    times: Sequence[np.ndarray],
    units: Sequence[np.ndarray],
    labels: Sequence[int],
    keys: Optional[Sequence[str]] = None,
    speakers: Optional[Sequence[int]] = None,
    attrs: Optional[Mapping[str, Any]] = None,
    times_dtype: Any = np.float32,
) -> Path:
    """Write an SHD-layout file atomically (temporary file + rename); returns ``path``.

    ``times[i]``/``units[i]`` are the events of sample ``i`` (seconds / channel ids,
    stored as variable-length ``times_dtype`` / uint16), ``labels`` are stored as uint16,
    ``keys`` (class names) as ``extra/keys`` bytes, ``speakers`` as ``extra/speaker``.
    """
    h5py = require_h5py()
    path = Path(path)
    n = len(labels)
    if len(times) != n or len(units) != n:
        raise ValueError(f"times ({len(times)}), units ({len(units)}) and labels ({n}) "
                         f"must have the same length")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            tds = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.dtype(times_dtype)))
            uds = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.dtype(np.uint16)))
            for i in range(n):
                u = np.asarray(units[i])
                if u.size and (u.min() < 0 or u.max() > np.iinfo(np.uint16).max):
                    raise ValueError(f"sample {i}: units must fit in uint16, got {u.min()}..{u.max()}")
                tds[i] = np.asarray(times[i], dtype=times_dtype)
                uds[i] = u.astype(np.uint16)
            f.create_dataset("labels", data=np.asarray(labels, dtype=np.uint16))
            if keys is not None:
                f.create_dataset("extra/keys", data=np.array([k.encode("utf-8") for k in keys]))
            if speakers is not None:
                f.create_dataset("extra/speaker", data=np.asarray(speakers, dtype=np.uint16))
            for k, v in (attrs or {}).items():
                f.attrs[k] = json.dumps(v) if isinstance(v, (dict, list)) else v
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


# --------------------------------------------------------------------------- dataset
class SpikeDataset(Dataset):
    """Rows of a :class:`SpikeFile` binned to ``(x [num_steps, info.num_channels], label)``.

    Args:
        file: the split's file.
        rows: which samples of ``file`` form this split (e.g. a validation subset of the
            training file).
        info: the dataset's metadata (``kind="spikes"``).
        split: "train", "valid" or "test".
        dt: bin width in seconds; ``info.num_steps`` bins are produced.
        pool: sum groups of ``pool`` adjacent channels (700 -> 140 with ``pool=5``).
        binary: clip counts to 1.
        raw_channels: channels in the file (events must have ``unit < raw_channels``).
        on_error: "raise": a label out of range raises at once, a malformed sample
            (times/units of different lengths, negative or non-finite times, units out of
            range) raises ValueError naming file and sample when it is read. "skip": all
            samples are checked up front; bad ones are dropped, counted in a warning and
            listed in :attr:`skipped` as ``(row, reason)``.
        augment: an :class:`~spikekws.data.augment.Augment` with event and/or mask keys,
            applied to the "train" split only.
    """

    def __init__(
        self,
        file: SpikeFile,
        rows: Sequence[int],
        info: DatasetInfo,
        split: str,
        dt: float,
        pool: int = 1,
        binary: bool = False,
        raw_channels: int = 700,
        on_error: str = "raise",
        augment: Optional[Any] = None,
    ) -> None:
        self.file = file
        self.info = info
        self.split = check_split(split)
        self.on_error = check_on_error(on_error)
        self.dt = float(dt)
        self.pool = int(pool)
        self.binary = bool(binary)
        self.raw_channels = int(raw_channels)
        if augment is not None:
            augment.check_kind("spikes")
        self.augment = augment if self.split == "train" else None
        self.epoch = 0
        self.skipped: List[Tuple[int, str]] = []
        rows = [int(r) for r in rows]
        labels = file.labels[rows] if rows else np.zeros(0, dtype=np.int64)
        bad = (labels < 0) | (labels >= info.num_classes)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            msg = (f"{file.path}: {int(bad.sum())} label(s) out of range for "
                   f"{info.num_classes} classes (sample {rows[first]} has label {int(labels[first])})")
            if self.on_error == "raise":
                raise ValueError(msg)
            self.skipped.extend((rows[i], f"label {int(labels[i])} out of range")
                                for i in np.flatnonzero(bad))
            rows = [r for r, b in zip(rows, bad) if not b]
            labels = labels[~bad]
        self.rows = rows
        self.labels = labels
        if self.on_error == "skip":
            self.drop_invalid()
        if self.skipped:
            self._warn_skipped(len(self.skipped) + len(self.rows))

    # -- checking ----------------------------------------------------------------------
    def validate(self) -> List[Tuple[int, str]]:
        """Read every sample; return ``(row, reason)`` for the unusable ones."""
        problems = []
        for row in self.rows:
            times, units = self.file.events(row)
            reason = check_events(times, units, self.raw_channels)
            if reason is not None:
                problems.append((row, reason))
        return problems

    def drop_invalid(self) -> int:
        """Remove the samples :meth:`validate` rejects; return how many were removed."""
        problems = self.validate()
        if problems:
            bad = {r for r, _ in problems}
            keep = [i for i, r in enumerate(self.rows) if r not in bad]
            self.rows = [self.rows[i] for i in keep]
            self.labels = self.labels[keep]
            self.skipped.extend(problems)
        if not self.rows and self.skipped:
            row, reason = self.skipped[0]
            raise ValueError(f"{self.file.path}: all samples of the {self.split} split are "
                             f"unusable (first: sample {row}: {reason})")
        return len(problems)

    def _warn_skipped(self, total: int) -> None:
        row, reason = self.skipped[0]
        log.warning("%s %s split: skipped %d of %d sample(s) of %s that cannot be used "
                    "(first: sample %d: %s)", self.info.name, self.split, len(self.skipped),
                    total, self.file.path, row, reason)

    # -- access ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch`` (no effect without augmentation)."""
        self.epoch = int(epoch)

    def events(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        """Checked ``(times float64 [E], units int64 [E])`` of item ``index``."""
        row = self.rows[index]
        times, units = self.file.events(row)
        reason = check_events(times, units, self.raw_channels)
        if reason is not None:
            raise ValueError(f"{self.file.path}: sample {row}: {reason}")
        return times.astype(np.float64), units.astype(np.int64)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, int]:
        times, units = self.events(index)
        rng = None
        if self.augment is not None:
            rng = self.augment.generator(self.epoch, index)
            times, units = self.augment.events(times, units, self.raw_channels, rng)
        x = bin_events(times, units, self.info.num_steps, self.dt, self.raw_channels,
                       self.pool, self.binary)
        if rng is not None:
            x = self.augment.features(x, rng)
        return x, int(self.labels[index])

    def labels_tensor(self) -> torch.Tensor:
        """All labels as a LongTensor ``[len(self)]`` (no events are read)."""
        return torch.as_tensor(self.labels, dtype=torch.long)

    def class_counts(self) -> torch.Tensor:
        return torch.bincount(self.labels_tensor(), minlength=self.info.num_classes)

    def __repr__(self) -> str:
        return (f"SpikeDataset({self.info.name!r}, split={self.split!r}, items={len(self)}, "
                f"steps={self.info.num_steps}, channels={self.info.num_channels}, "
                f"file={str(self.file.path)!r})")


def num_steps_for(max_time: float, dt: float) -> int:
    """Bins of width ``dt`` needed to cover ``[0, max_time)``."""
    return max(1, int(math.ceil(max_time / dt - 1e-9)))
