"""Audio loading and keyword-spotting datasets.

Quick use::

    from spikekws.data import build_dataset, dataset_info, list_datasets

    info = dataset_info("fsdd", "../shared/data/fsdd")         # labels, sample rate...
    train = build_dataset("fsdd", "../shared/data/fsdd", "train", split_mode="speaker")
    wave, label = train[0]      # float32 [info.clip_samples], int

Datasets (``list_datasets()``): ``gsc``, ``synth``, ``fsdd``, ``folder``. See
:mod:`spikekws.data.datasets` for the registry contract and how to add one.
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

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioDataset",
    "AudioError",
    "DATASETS",
    "DatasetInfo",
    "DatasetLoader",
    "SPLITS",
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
