"""The dataset registry and the helpers shared by the built-in loaders.

Every entry of :data:`DATASETS` is an object with two methods::

    info(root, **options) -> DatasetInfo
    load(root, split, **options) -> AudioDataset

``root`` is the dataset's folder, ``split`` one of ``"train"``, ``"valid"``, ``"test"``
and ``options`` the dataset's keyword options (the same ones are accepted by both
methods, so one options dict from a config file can be passed to either). The
built-in entries are instances of :class:`DatasetLoader`, which validates the
arguments (unknown option -> TypeError, bad split -> ValueError, missing root ->
FileNotFoundError) and leaves two hooks to subclasses. A new dataset is added with::

    @register_dataset("mine")
    class MyLoader(DatasetLoader):
        defaults = {"clip_seconds": 1.0}
        def _info(self, root, opts): ...
        def _items(self, root, split, info, opts): ...   # [(path, label index)]

Built-in datasets: ``gsc``, ``synth`` (:mod:`.gsc`), ``fsdd`` (:mod:`.fsdd`) and
``folder`` (:mod:`.folder`).
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from ..registry import Registry
from .audio import AUDIO_EXTENSIONS
from .base import AudioDataset, DatasetInfo, check_on_error, check_split

__all__ = [
    "DATASETS",
    "DatasetLoader",
    "register_dataset",
    "get_dataset",
    "dataset_info",
    "build_dataset",
    "build_splits",
    "list_datasets",
]

log = logging.getLogger("spikekws.data")

PathLike = Any
Items = List[Tuple[Path, int]]

#: name -> loader object with ``info(root, **options)`` and ``load(root, split, **options)``.
DATASETS: Registry[Any] = Registry("dataset")

#: Options every :class:`DatasetLoader` accepts, with their defaults. ``augment`` is a
#: spec for :func:`~spikekws.data.augment.build_augment` (train split only); ``trim_db``
#: cuts leading/trailing audio quieter than the loudest frame by that many dB
#: (:func:`~spikekws.data.audio.trim_silence`, every split; None: off).
COMMON_OPTIONS: Mapping[str, Any] = {"on_error": "raise", "augment": None, "trim_db": None}


class DatasetLoader:
    """Base class for registry entries; see the module docstring.

    Subclasses set :attr:`defaults` (their own options and default values) and
    implement :meth:`_info` and :meth:`_items`; ``opts`` passed to them is a dict
    holding every option (defaults filled in).
    """

    #: Registry name, set by :func:`register_dataset`.
    name: str = ""
    #: The dataset's own options and their defaults (``on_error`` is added to all).
    defaults: Mapping[str, Any] = {}
    #: Whether multichannel files are averaged to mono (else they are errors).
    allow_multichannel: bool = False
    #: Shell command that creates the dataset, ``{root}`` is substituted; None if none.
    create_hint: Optional[str] = None

    # -- public API ------------------------------------------------------------------
    def option_names(self) -> List[str]:
        return sorted({**COMMON_OPTIONS, **self.defaults})

    def resolve_options(self, options: Mapping[str, Any]) -> Dict[str, Any]:
        """Defaults overlaid with ``options``; an unknown option raises TypeError."""
        known = {**COMMON_OPTIONS, **self.defaults}
        unknown = sorted(set(options) - set(known))
        if unknown:
            names = ", ".join(repr(u) for u in unknown)
            raise TypeError(
                f"dataset {self.name!r} got unknown option(s) {names}; "
                f"accepted options: {', '.join(self.option_names())}"
            )
        opts = dict(known)
        opts.update(options)
        check_on_error(opts["on_error"])
        if opts["trim_db"] is not None and (isinstance(opts["trim_db"], bool) or
                                            not isinstance(opts["trim_db"], (int, float)) or
                                            not opts["trim_db"] > 0):
            raise ValueError(f"dataset {self.name!r}: trim_db must be a number of dB > 0 "
                             f"(or null), got {opts['trim_db']!r}")
        if opts["augment"] is not None:
            from .augment import build_augment

            opts["augment"] = build_augment(opts["augment"])
        return opts

    def check_root(self, root: PathLike) -> Path:
        """``root`` as a Path; FileNotFoundError/NotADirectoryError if it is not a folder."""
        if root is None:
            raise TypeError(f"dataset {self.name!r} needs a root folder, got None")
        path = Path(root).expanduser()
        if not path.exists():
            msg = f"{self.name} dataset folder not found: {path}"
            if self.create_hint:
                msg += f"; create it with: {self.create_hint.format(root=path)}"
            raise FileNotFoundError(msg)
        if not path.is_dir():
            raise NotADirectoryError(f"{self.name} dataset root is not a folder: {path}")
        return path

    def info(self, root: PathLike, **options: Any) -> DatasetInfo:
        opts = self.resolve_options(options)
        return self._info(self.check_root(root), opts)

    def load(self, root: PathLike, split: str, **options: Any) -> AudioDataset:
        check_split(split)
        opts = self.resolve_options(options)
        path = self.check_root(root)
        info = self._info(path, opts)
        items = self._items(path, split, info, opts)
        return AudioDataset(
            items,
            info,
            split,
            on_error=opts["on_error"],
            allow_multichannel=self.allow_multichannel,
            augment=opts["augment"],
            trim_db=opts["trim_db"],
        )

    # -- hooks -----------------------------------------------------------------------
    def _info(self, root: Path, opts: Dict[str, Any]) -> DatasetInfo:
        raise NotImplementedError

    def _items(self, root: Path, split: str, info: DatasetInfo, opts: Dict[str, Any]) -> Items:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def register_dataset(name: str) -> Callable[[type], type]:
    """Class decorator: register an instance of a :class:`DatasetLoader` subclass."""

    def _register(cls: type) -> type:
        loader = cls()
        loader.name = name.lower()
        DATASETS.register(name, loader)
        return cls

    return _register


def get_dataset(name: str) -> Any:
    """The registry entry for ``name`` (KeyError with a suggestion if unknown)."""
    return DATASETS.get(name)


def dataset_info(name: str, root: PathLike, **options: Any) -> DatasetInfo:
    """Metadata (labels, sample rate, clip length...) of dataset ``name`` at ``root``."""
    return get_dataset(name).info(root, **options)


def build_dataset(name: str, root: PathLike, split: str, **options: Any) -> AudioDataset:
    """One split ("train", "valid" or "test") of dataset ``name`` at ``root``."""
    return get_dataset(name).load(root, split, **options)


def build_splits(name: str, root: PathLike, **options: Any) -> Dict[str, AudioDataset]:
    """All three splits of a dataset, as ``{"train": ..., "valid": ..., "test": ...}``."""
    loader = get_dataset(name)
    return {split: loader.load(root, split, **options) for split in ("train", "valid", "test")}


def list_datasets() -> List[str]:
    """Names of the registered datasets, sorted."""
    return DATASETS.list()


# -- helpers shared by the loaders --------------------------------------------------


def visible_subdirs(folder: Path) -> List[Path]:
    """Sub-folders of ``folder`` whose names start with neither ``_`` nor ``.``, sorted."""
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))),
        key=lambda p: p.name,
    )


def audio_files(
    folder: Path, recursive: bool = False, extensions: Sequence[str] = AUDIO_EXTENSIONS
) -> List[Path]:
    """Audio files in ``folder`` (by suffix, case-insensitive), sorted; hidden ones skipped."""
    exts = {e.lower() for e in extensions}
    found: List[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        if recursive:
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        else:
            dirnames[:] = []
        for fname in filenames:
            if not fname.startswith(".") and os.path.splitext(fname)[1].lower() in exts:
                found.append(Path(dirpath, fname))
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def positive_number(value: Any, option: str, dataset: str) -> float:
    try:
        ok = not isinstance(value, bool) and float(value) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"dataset {dataset!r}: {option} must be a positive number, got {value!r}")
    return float(value)


def positive_int(value: Any, option: str, dataset: str) -> int:
    try:
        ok = not isinstance(value, bool) and int(value) == float(value) and int(value) > 0
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        ok = False
    if not ok:
        raise ValueError(f"dataset {dataset!r}: {option} must be a positive integer, got {value!r}")
    return int(value)


def name_list(value: Any, option: str) -> Tuple[str, ...]:
    """A tuple of names from ``"a,b"``, ``["a", "b"]`` or None (-> empty)."""
    if value is None:
        return ()
    if isinstance(value, str):
        parts: Iterable[Any] = value.split(",")
    elif isinstance(value, Iterable):
        parts = value
    else:
        raise TypeError(f"{option} must be a string or a list of strings, got {value!r}")
    names = []
    for part in parts:
        if not isinstance(part, str):
            raise TypeError(f"{option} must contain strings, got {part!r}")
        part = part.strip()
        if part and part not in names:
            names.append(part)
    return tuple(names)


_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def index_set(value: Any, option: str) -> Set[int]:
    """A set of non-negative ints from ``5``, ``[5, 6]``, ``range(5, 10)``, ``"5-9"``,
    ``"0-2,7"`` or None (-> empty); ranges in strings include both ends."""
    if value is None:
        return set()
    if isinstance(value, bool):
        raise TypeError(f"{option} must be integers, got {value!r}")
    if isinstance(value, int):
        values: List[int] = [value]
    elif isinstance(value, str):
        values = []
        for part in value.split(","):
            if not part.strip():
                continue
            m = _RANGE.match(part)
            if not m:
                raise ValueError(
                    f"{option}: cannot parse {part.strip()!r} (use e.g. '5-9' or '5,6,7')"
                )
            lo = int(m.group(1))
            hi = int(m.group(2)) if m.group(2) is not None else lo
            if hi < lo:
                raise ValueError(f"{option}: empty range {part.strip()!r}")
            values.extend(range(lo, hi + 1))
    elif isinstance(value, Iterable):
        values = []
        for v in value:
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{option} must contain integers, got {v!r}")
            values.append(v)
    else:
        raise TypeError(f"{option} must be an int, a list of ints or a string like '5-9'")
    if any(v < 0 for v in values):
        raise ValueError(f"{option} must be non-negative, got {sorted(values)}")
    return set(values)


# Register the built-in datasets (these modules import this one).
from . import folder as _folder  # noqa: E402,F401
from . import fsdd as _fsdd  # noqa: E402,F401
from . import gsc as _gsc  # noqa: E402,F401
