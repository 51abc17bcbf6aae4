"""Convert an audio dataset into spike files in the SHD format (``spikekws spikify``).

Every clip goes through a feature front-end (default log-mel) and a spike encoder
(:mod:`spikekws.features.encoders`); the spikes are written as events, one HDF5 file per
split (``DST/train.h5``, ``valid.h5``, ``test.h5``; empty splits are not written) with
the dataset names and dtypes of SHD (``spikes/times`` float32 seconds, ``spikes/units``
uint16, ``labels`` uint16, ``extra/keys`` class names) plus root attributes
``spikekws_dt``, ``spikekws_max_time``, ``spikekws_num_channels`` and
``spikekws_encoder``. ``DST/spikify.json`` records how the files were made.

A spike in encoder step ``k`` is written at time ``(k + 0.5) * dt`` with
``dt = hop / encoder.time_factor``, so the ``shd``/``ssc`` loaders (which read ``dt``
from the attributes) bin it back into step ``k``: ``build_dataset("shd", DST, split)``
returns exactly the encoder output. ``extra/speaker`` is not written (audio datasets do
not expose speakers uniformly), so ``valid_speakers`` does not apply to these files.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from .base import SPLITS, check_split
from .spikes import ATTR_CHANNELS, ATTR_DT, ATTR_ENCODER, ATTR_MAX_TIME, write_spike_h5

__all__ = ["spikify", "spikes_to_events"]

log = logging.getLogger("spikekws.data")

PathLike = Union[str, "os.PathLike[str]"]
MANIFEST = "spikify.json"


def spikes_to_events(spikes: torch.Tensor, dt: float):
    """``[T, C]`` {0, 1} -> (times float32 ``(k + 0.5) * dt``, units uint16), time-sorted."""
    steps, units = torch.nonzero(spikes > 0, as_tuple=True)
    times = (steps.double().numpy() + 0.5) * dt
    return times.astype(np.float32), units.numpy().astype(np.uint16)


def spikify(
    dataset: str,
    root: PathLike,
    to: PathLike,
    encoder: str = "rate",
    encoder_options: Optional[Mapping[str, Any]] = None,
    features: str = "logmel",
    feature_options: Optional[Mapping[str, Any]] = None,
    options: Optional[Mapping[str, Any]] = None,
    splits: Sequence[str] = SPLITS,
    batch_size: int = 64,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = False,
) -> Dict[str, Any]:
    """Write the spike version of audio dataset ``dataset`` at ``root`` into ``to``.

    Args:
        dataset, root, options: the source, as for :func:`~spikekws.data.build_dataset`
            (``augment`` is not allowed: the files would freeze one random draw).
        encoder, encoder_options: a registered encoder and its arguments.
        features, feature_options: the front-end (``sample_rate`` comes from the dataset).
        splits: which splits to convert.
        seed: seeds the random encoders (split ``i`` uses ``seed * 1000 + i``).
        overwrite: replace existing files in ``to`` (else ValueError).

    Returns the summary also written to ``to/spikify.json``.
    """
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from ..features import build_encoder, build_features, encoder_kwargs, feature_kwargs
    from .datasets import build_dataset, dataset_info

    options = dict(options or {})
    if options.get("augment"):
        raise ValueError("spikify: the augment option is not allowed (converted files would "
                         "hold one fixed random draw); augment the spike dataset instead")
    for split in splits:
        check_split(split)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    info = dataset_info(dataset, root, **options)
    if info.kind != "audio":
        raise ValueError(f"spikify needs an audio dataset; {dataset!r} holds {info.kind}")
    frontend = build_features(features, sample_rate=info.sample_rate, **dict(feature_options or {}))
    hop = getattr(frontend, "hop_length", None)
    if hop is None or not hasattr(frontend, "num_features"):
        raise ValueError(f"spikify: feature {features!r} has no frame hop; use logmel or mfcc")
    enc = build_encoder(encoder, **dict(encoder_options or {}))
    frontend.eval()
    enc.eval()
    dt = hop / info.sample_rate / enc.time_factor
    num_steps = frontend.num_frames(info.clip_samples) * enc.time_factor
    channels = enc.num_outputs(frontend.num_features)
    if channels > np.iinfo(np.uint16).max + 1:
        raise ValueError(f"spikify: {channels} channels do not fit the uint16 units of SHD files")

    out = Path(to).expanduser()
    existing = [out / f"{s}.h5" for s in SPLITS if (out / f"{s}.h5").exists()]
    if existing and not overwrite:
        raise ValueError(f"{out} already holds {existing[0].name}; pass overwrite "
                         f"(--overwrite) or choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    enc_spec = {"name": encoder, **{k: v for k, v in encoder_kwargs(enc).items()}}
    attrs = {ATTR_DT: dt, ATTR_MAX_TIME: num_steps * dt, ATTR_CHANNELS: channels,
             ATTR_ENCODER: enc_spec}
    summary: Dict[str, Any] = {
        "source": {"dataset": dataset, "root": str(root), "options": options},
        "features": {"name": features, **{k: v for k, v in feature_kwargs(frontend).items()}},
        "encoder": enc_spec, "dt": dt, "num_steps": num_steps, "num_channels": channels,
        "labels": list(info.labels), "seed": seed, "splits": {},
    }
    for i, split in enumerate(splits):
        ds = build_dataset(dataset, root, split, **options)
        target = out / f"{split}.h5"
        if len(ds) == 0:
            if target.exists():
                target.unlink()
            log.info("spikify: %s split is empty; no %s written", split, target.name)
            continue
        gen = torch.Generator().manual_seed(seed * 1000 + i)
        times, units, labels = [], [], []
        n_spikes = 0
        loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0)
        with torch.no_grad():
            for wave, label in tqdm(loader, desc=f"spikify {split}", disable=None if progress else True,
                                    leave=False, unit="batch"):
                spikes = enc(frontend(wave), generator=gen)
                for b in range(spikes.shape[0]):
                    t, u = spikes_to_events(spikes[b], dt)
                    times.append(t)
                    units.append(u)
                    n_spikes += t.size
                labels.extend(int(y) for y in label)
        write_spike_h5(target, times, units, labels, keys=info.labels, attrs=attrs)
        summary["splits"][split] = {"samples": len(labels), "spikes": n_spikes,
                                    "rate_hz": n_spikes / (len(labels) * channels * num_steps * dt)}
        log.info("spikify: wrote %s (%d samples, %d spikes)", target, len(labels), n_spikes)
    (out / MANIFEST).write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return summary
