"""Run configuration schema and loading.

A config is four sections (``data``, ``features``, ``model``, ``train``). YAML files and
``section.key=value`` overrides are checked against the dataclasses below: unknown keys
and wrong types raise ``ValueError``/``TypeError`` naming the key. Free-form option dicts
(``data.options``, ``model.options``) are passed to the dataset/model constructors, which
check them in turn.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import yaml

from ..atomic import atomic_write_text  # noqa: F401  (re-exported: used across the package)


@dataclass
class DataConfig:
    name: str = "synth"
    root: str = "data/synth"
    options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class FeatureConfig:
    name: str = "logmel"
    options: Dict[str, Any] = field(default_factory=dict)
    # Resample every clip's feature sequence to this many frames (area/average pooling
    # along time: the same clip seen with a longer hop); None keeps the front-end's frames.
    timesteps: Optional[int] = None


@dataclass
class ModelConfig:
    name: str = "snn"
    neuron: str = "radlif"
    hidden_sizes: List[int] = field(default_factory=lambda: [128, 128])
    dropout: float = 0.1
    normalization: str = "batchnorm"
    bidirectional: bool = False
    surrogate: str = "boxcar"
    options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    scheduler: str = "plateau"  # plateau | cosine | none
    scheduler_patience: int = 2
    scheduler_factor: float = 0.7
    grad_clip: Optional[float] = None
    # Cross-entropy against targets smoothed towards uniform (0 = one-hot targets).
    label_smoothing: float = 0.0
    # Mixup (Zhang et al. 2018): each training batch is blended with a shuffled copy of
    # itself, features and loss, with weight lam ~ Beta(mixup, mixup) (0 = off).
    mixup: float = 0.0
    # Exponential moving average of the weights (0 = off, e.g. 0.998): validation, best.pt
    # and evaluation use the averaged weights (spikekws.train.ema). `spikekws distill`
    # averages each curriculum stage's weights too; it trains without mixup.
    ema_decay: float = 0.0
    reg_factor: float = 0.5
    reg_fmin: float = 0.01
    reg_fmax: float = 0.2
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch intra-op threads; 0 = torch default
    # Extract the training features once. Re-extracted every epoch when false, and always
    # when the training split augments its waveforms (data.options.augment), so that the
    # augmentation is drawn anew each epoch.
    cache_features: bool = True
    # Feature-level augmentation of training batches (spikekws.features.augment.FeatureAugment
    # options, e.g. {freq_warp: [0.9, 1.1], time_stretch: [0.85, 1.15], shift: 0.1}).
    augment: Dict[str, Any] = field(default_factory=dict)
    eval_batch_size: int = 256
    progress: bool = True
    # Per-epoch scalars and firing rates to RUN/tensorboard/ (needs: pip install tensorboard).
    tensorboard: bool = False


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def config_to_dict(cfg: Any) -> Dict[str, Any]:
    return dataclasses.asdict(cfg)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against annotation ``tp``; allow int -> float; raise TypeError naming key."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Union:
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except TypeError as e:
                errors.append(str(e))
        raise TypeError(f"config key {key!r}: expected {_type_name(tp)}, got {value!r}")
    if origin in (list, List, Sequence):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"config key {key!r}: expected a list, got {value!r}")
        (inner,) = args or (Any,)
        return [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise TypeError(f"config key {key!r}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "3e-3" as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"config key {key!r}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"config key {key!r}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise TypeError(f"config key {key!r}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise TypeError(f"config key {key!r}: expected a string, got {value!r}")
        return value
    return value


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        section = prefix.rstrip(".") or "<root>"
        raise TypeError(f"config section {section!r}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
            raise ValueError(f"unknown config key {full!r}{hint} (allowed: {', '.join(names)})")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, f"{full}.")
        else:
            kwargs[key] = _coerce(value, tp, full)
    return cls(**kwargs)


def config_from_dict(data: Dict[str, Any]) -> Config:
    return _build(Config, data or {}, "")


def _set_dotted(data: Dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {dotted!r}: {p!r} is not a section")
    node[parts[-1]] = value


def apply_overrides(data: Dict[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """Apply ``a.b=value`` strings (values parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ValueError(f"override {item!r} has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise ValueError(f"override {item!r}: cannot parse value: {e}") from None
        _set_dotted(data, key, value)
    return data


def read_yaml(path: Union[str, Path]) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(f"config file {path} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping at the top level")
    return data


def load_config(path: Optional[Union[str, Path]] = None, overrides: Sequence[str] = ()) -> Config:
    data = read_yaml(path) if path is not None else {}
    apply_overrides(data, overrides)
    return config_from_dict(data)


def save_config(cfg: Config, path: Union[str, Path]) -> None:
    atomic_write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False, allow_unicode=True))
