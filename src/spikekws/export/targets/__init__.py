"""Chip profiles, one module per target: ``get_target(name).check(model)``.

Registered: loihi2, xylo, truenorth, altai (see each module for its figures).
"""
from __future__ import annotations

import importlib

from .base import TARGETS, ChipProfile, LayerSpec, Violation, get_target, layer_specs

_MODULES = ("loihi2", "xylo", "truenorth", "altai")


def _load_all() -> None:
    for name in _MODULES:
        importlib.import_module(f"{__name__}.{name}")


def list_targets():
    _load_all()
    return TARGETS.list()


__all__ = ["TARGETS", "ChipProfile", "LayerSpec", "Violation", "get_target", "layer_specs",
           "list_targets"]
