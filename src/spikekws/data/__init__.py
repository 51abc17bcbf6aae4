"""Audio loading and keyword-spotting datasets.

Quick use::

    from spikekws.data import build_dataset, dataset_info, list_datasets

    info = dataset_info("fsdd", "../shared/data/fsdd")         # labels, sample rate...
    train = build_dataset("fsdd", "../shared/data/fsdd", "train", split_mode="speaker")
    wave, label = train[0]      # float32 [info.clip_samples], int

Datasets (``list_datasets()``): audio ``gsc``, ``gsc12``, ``synth``, ``fsdd``, ``hd``,
``rusc``, ``folder``; spikes (``info.kind == "spikes"``, items ``(x [T, C], label)``)
``shd``, ``ssc``. See :mod:`spikekws.data.datasets` for the registry contract and how to
add one, :mod:`spikekws.data.augment` for the ``augment`` option,
:mod:`spikekws.data.download` and :mod:`spikekws.data.spikify` for the CLI helpers.
"""
from __future__ import annotations

# ``datasets`` must be imported before the loader modules it registers.
from .datasets import (  # noqa: I001
    DATASETS,
    DatasetLoader,
    build_dataset,
    build_splits,
    dataset_info,
    get_dataset,
    list_datasets,
    register_dataset,
)
from .audio import AUDIO_EXTENSIONS, AudioError, check_audio, fix_length, load_audio
from .base import SPLITS, AudioDataset, DatasetInfo, check_split

# Loader modules register themselves on import.
from . import gsc12 as _gsc12  # noqa: E402,F401
from . import hd as _hd  # noqa: E402,F401
from . import mix as _mix  # noqa: E402,F401
from . import rusc as _rusc  # noqa: E402,F401
from . import shd as _shd  # noqa: E402,F401
from .augment import Augment, build_augment  # noqa: E402
from .spikes import SpikeDataset  # noqa: E402

__all__ = [
    "AUDIO_EXTENSIONS",
    "Augment",
    "AudioDataset",
    "AudioError",
    "DATASETS",
    "DatasetInfo",
    "DatasetLoader",
    "SPLITS",
    "SpikeDataset",
    "build_augment",
    "build_dataset",
    "build_splits",
    "check_audio",
    "check_split",
    "dataset_info",
    "fix_length",
    "get_dataset",
    "list_datasets",
    "load_audio",
    "register_dataset",
]
