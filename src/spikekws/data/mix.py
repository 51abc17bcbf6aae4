"""``mix``: a primary dataset whose training split is extended with other datasets.

Config example (FSDD held-out speaker + synthetic digits)::

    data:
      name: mix
      root: ../shared/data/fsdd          # used as primary.root when that is not given
      options:
        primary: {name: fsdd, root: ../shared/data/fsdd,
                  options: {split_mode: speaker, test_speakers: theo}}
        extra:
          - name: synth
            root: data/synth_digits8k
            options: {}
            label_map: {zero: "0", one: "1", two: "2"}   # extra label -> primary label
            splits: [train]                              # which extra splits to add (default)

``info()`` is the primary's info (labels, sample rate, clip length). ``load(split)``
returns the primary's ``split`` plus, when ``split == "train"``, the items of every extra
dataset's ``splits`` (all of its listed splits are merged into the primary's train split)
whose label appears in ``label_map``; their labels are rewritten to the primary's label
indices and the others are dropped (counted in an info line on the ``spikekws.data``
logger). Valid and test always come from the primary alone. Extra audio at another sample
rate is resampled to the primary rate and then cropped/padded to the primary clip length.
A ``label_map`` naming a label that the extra or the primary dataset does not have raises
ValueError.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from .audio import load_audio
from .base import AudioDataset, DatasetInfo, check_split
from .datasets import DatasetLoader, get_dataset, register_dataset

log = logging.getLogger("spikekws.data")

_EXTRA_KEYS = ("name", "root", "options", "label_map", "splits")
_PRIMARY_KEYS = ("name", "root", "options")


class MixDataset(AudioDataset):
    """An :class:`AudioDataset` whose items may come from files at other sample rates.

    ``sources[i]`` is ``(sample_rate, allow_multichannel)`` of item ``i``; a file whose
    rate differs from ``info.sample_rate`` is resampled before it is cropped/padded.
    """

    def __init__(self, items: Sequence[Tuple[Path, int]], sources: Sequence[Tuple[int, bool]],
                 info: DatasetInfo, split: str, on_error: str = "raise",
                 augment: Optional[Any] = None, trim_db: Optional[float] = None) -> None:
        if len(items) != len(sources):
            raise ValueError("MixDataset: items and sources must have the same length")
        self.sources: List[Tuple[int, bool]] = [(int(sr), bool(mc)) for sr, mc in sources]
        self._source_of = {Path(p): s for (p, _), s in zip(items, self.sources)}
        super().__init__(items, info, split, on_error="raise", allow_multichannel=True,
                         augment=augment, trim_db=trim_db)
        self.on_error = on_error
        if on_error == "skip":
            self.drop_invalid()

    def validate(self, full: bool = False) -> List[Tuple[Path, str]]:
        from .audio import AudioError, check_audio

        problems: List[Tuple[Path, str]] = []
        for path, _ in self.items:
            sr, multi = self._source_of[path]
            try:
                check_audio(path, expected_sample_rate=sr, allow_multichannel=multi, full=full)
            except AudioError as exc:
                problems.append((path, exc.reason))
            except OSError as exc:
                problems.append((path, str(exc)))
        return problems

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, int]:
        path, label = self.items[index]
        sr, multi = self._source_of[path]
        wave = load_audio(path, expected_sample_rate=sr, allow_multichannel=multi)
        if sr != self.info.sample_rate:
            from ..features.functional import resample

            wave = resample(wave, sr, self.info.sample_rate)
        return self._finish(wave, index), label

    def __repr__(self) -> str:
        return (
            f"MixDataset({self.info.name!r}, split={self.split!r}, items={len(self)}, "
            f"classes={self.info.num_classes}, sample_rate={self.info.sample_rate})"
        )


def _spec(value: Any, what: str, keys: Sequence[str]) -> Dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"mix: {what} must be a mapping with keys {', '.join(keys)}, got {value!r}")
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise TypeError(f"mix: {what} has unknown key(s) {', '.join(map(repr, unknown))}; "
                        f"accepted: {', '.join(keys)}")
    if not value.get("name"):
        raise ValueError(f"mix: {what} needs a dataset 'name'")
    spec = dict(value)
    opts = spec.get("options") or {}
    if not isinstance(opts, Mapping):
        raise TypeError(f"mix: {what}.options must be a mapping, got {opts!r}")
    spec["options"] = dict(opts)
    return spec


@register_dataset("mix")
class MixLoader(DatasetLoader):
    """A primary dataset plus extra training data; see the module docstring."""

    defaults: Dict[str, Any] = {"primary": None, "extra": ()}

    # The root is optional (it is only the fallback for ``primary.root``).
    def check_root(self, root: Any) -> Optional[Path]:  # type: ignore[override]
        return None if root is None else Path(root).expanduser()

    def _primary(self, root: Optional[Path], opts: Dict[str, Any]) -> Dict[str, Any]:
        if opts["primary"] is None:
            raise ValueError("mix: the 'primary' option is required ({name, root, options})")
        spec = _spec(opts["primary"], "primary", _PRIMARY_KEYS)
        if spec.get("root") is None:
            if root is None:
                raise ValueError("mix: primary.root is not set and no dataset root was given")
            spec["root"] = root
        return spec

    def _extras(self, opts: Dict[str, Any]) -> List[Dict[str, Any]]:
        extra = opts["extra"] or ()
        if isinstance(extra, Mapping):
            extra = [extra]
        specs = []
        for i, value in enumerate(extra):
            spec = _spec(value, f"extra[{i}]", _EXTRA_KEYS)
            if spec.get("root") is None:
                raise ValueError(f"mix: extra[{i}] ({spec['name']}) needs a 'root'")
            label_map = spec.get("label_map")
            if not isinstance(label_map, Mapping) or not label_map:
                raise ValueError(f"mix: extra[{i}] ({spec['name']}) needs a non-empty label_map "
                                 "{extra_label: primary_label}")
            spec["label_map"] = {str(k): str(v) for k, v in label_map.items()}
            splits = spec.get("splits") or ["train"]
            if isinstance(splits, str):
                splits = [s.strip() for s in splits.split(",") if s.strip()]
            for s in splits:
                check_split(s)
            spec["splits"] = list(dict.fromkeys(splits))
            specs.append(spec)
        return specs

    def _info(self, root: Optional[Path], opts: Dict[str, Any]) -> DatasetInfo:  # type: ignore[override]
        p = self._primary(root, opts)
        return get_dataset(p["name"]).info(p["root"], **p["options"])

    def info(self, root: Any, **options: Any) -> DatasetInfo:
        opts = self.resolve_options(options)
        path = self.check_root(root)
        info = self._info(path, opts)
        for spec in self._extras(opts):  # validate the label maps early
            self._index_map(spec, info, get_dataset(spec["name"]).info(spec["root"], **spec["options"]))
        return info

    @staticmethod
    def _index_map(spec: Dict[str, Any], primary: DatasetInfo, extra: DatasetInfo) -> Dict[int, int]:
        bad_src = sorted(k for k in spec["label_map"] if k not in extra.labels)
        bad_dst = sorted({v for v in spec["label_map"].values() if v not in primary.labels})
        if bad_src or bad_dst:
            parts = []
            if bad_src:
                parts.append(f"unknown {spec['name']} label(s) {', '.join(map(repr, bad_src))} "
                             f"(labels: {', '.join(extra.labels)})")
            if bad_dst:
                parts.append(f"unknown {primary.name} label(s) {', '.join(map(repr, bad_dst))} "
                             f"(labels: {', '.join(primary.labels)})")
            raise ValueError(f"mix: label_map of extra dataset {spec['name']!r} names "
                             + "; ".join(parts))
        return {extra.labels.index(k): primary.labels.index(v)
                for k, v in spec["label_map"].items()}

    def load(self, root: Any, split: str, **options: Any) -> AudioDataset:
        check_split(split)
        opts = self.resolve_options(options)
        path = self.check_root(root)
        p = self._primary(path, opts)
        primary_loader = get_dataset(p["name"])
        base = primary_loader.load(p["root"], split, **p["options"])
        info = base.info
        sources = [(info.sample_rate, base.allow_multichannel)] * len(base.items)
        items: List[Tuple[Path, int]] = list(base.items)
        if split == "train":
            for spec in self._extras(opts):
                loader = get_dataset(spec["name"])
                extra_info = loader.info(spec["root"], **spec["options"])
                if extra_info.kind != "audio":
                    raise ValueError(f"mix: extra dataset {spec['name']!r} is not an audio dataset")
                index_map = self._index_map(spec, info, extra_info)
                for s in spec["splits"]:
                    ds = loader.load(spec["root"], s, **spec["options"])
                    kept = [(p_, index_map[y]) for p_, y in ds.items if y in index_map]
                    dropped = len(ds.items) - len(kept)
                    log.info("mix: added %d %s %s item(s) to %s train (%d dropped: label not "
                             "in label_map)%s", len(kept), spec["name"], s, info.name, dropped,
                             f"; resampled {extra_info.sample_rate} -> {info.sample_rate} Hz"
                             if extra_info.sample_rate != info.sample_rate else "")
                    items.extend(kept)
                    sources.extend([(extra_info.sample_rate, ds.allow_multichannel)] * len(kept))
        augment = opts["augment"] if opts["augment"] is not None else base.augment
        trim_db = opts["trim_db"] if opts["trim_db"] is not None else base.trim_db
        return MixDataset(items, sources, info, split, on_error=opts["on_error"], augment=augment,
                          trim_db=trim_db)


__all__ = ["MixDataset", "MixLoader"]
