"""Models: only wiring of layers. Built by name through :data:`MODELS`.

Every registered factory has the signature ``factory(in_features, num_classes, **options)``
and returns an ``nn.Module`` whose ``forward(x: [B, T, F])`` returns
``(log_probs_or_scores [B, C], firing_rates [L])``.
"""
from __future__ import annotations

from torch import nn

from ..registry import Registry

MODELS: Registry = Registry("model")

from . import snn as _snn  # noqa: E402,F401  (registers "snn")
from . import ann as _ann  # noqa: E402,F401  (registers "mlp", "rnn", "gru", "ligru", "cnn2d")
from . import spikescr as _spikescr  # noqa: E402,F401  (registers "spikescr")
from .snn import SNN  # noqa: E402


def build_model(name: str, in_features: int, num_classes: int, **options) -> nn.Module:
    factory = MODELS.get(name)
    try:
        return factory(in_features, num_classes, **options)
    except TypeError as e:
        raise TypeError(f"model {name!r}: {e}") from None


__all__ = ["MODELS", "SNN", "build_model"]
