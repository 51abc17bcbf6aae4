"""Audio front-ends: log-mel / MFCC features, deltas, normalisation and resampling.

Functional forms live in :mod:`spikekws.features.functional`; ``nn.Module`` forms and
the feature registry in :mod:`spikekws.features.transforms` (plus ``"none"``, the
pass-through front-end of spike datasets, in :mod:`spikekws.features.identity`); spike
encoders (features -> spikes) in :mod:`spikekws.features.encoders`. All outputs are
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
from .identity import Identity  # noqa: E402  (registers the "none" front-end)
from .encoders import (  # noqa: E402
    ENCODERS,
    DeltaEncoder,
    LatencyEncoder,
    RateEncoder,
    build_encoder,
    encoder_kwargs,
)

__all__ = [
    "functional",
    "ENCODERS",
    "FEATURES",
    "DeltaEncoder",
    "Identity",
    "LatencyEncoder",
    "RateEncoder",
    "build_encoder",
    "encoder_kwargs",
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
