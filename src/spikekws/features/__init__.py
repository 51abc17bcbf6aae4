"""Audio front-ends: log-mel / MFCC features, deltas, normalisation and resampling.

Functional forms live in :mod:`spikekws.features.functional`; ``nn.Module`` forms and
the feature registry in :mod:`spikekws.features.transforms`. All outputs are
time-first: ``[B, N]`` waveforms become ``[B, T, F]`` features.
"""
from __future__ import annotations

from . import functional
from .functional import (
    MEL_SCALES,
    WINDOWS,
    add_deltas,
    dct_matrix,
    deltas,
    frame_params,
    hz_to_mel,
    lifter_weights,
    log_mel,
    make_window,
    mel_filterbank,
    mel_to_hz,
    mfcc,
    normalize_utterance,
    num_frames,
    resample,
    stft_power,
)
from .transforms import FEATURES, MFCC, NORMALIZE_MODES, LogMel, build_features, feature_kwargs

__all__ = [
    "functional",
    "FEATURES",
    "LogMel",
    "MFCC",
    "NORMALIZE_MODES",
    "build_features",
    "feature_kwargs",
    "MEL_SCALES",
    "WINDOWS",
    "add_deltas",
    "dct_matrix",
    "deltas",
    "frame_params",
    "hz_to_mel",
    "lifter_weights",
    "log_mel",
    "make_window",
    "mel_filterbank",
    "mel_to_hz",
    "mfcc",
    "normalize_utterance",
    "num_frames",
    "resample",
    "stft_power",
]
