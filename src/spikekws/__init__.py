"""spikekws: speech command recognition with spiking neural networks.

Imports are lazy: ``import spikekws`` is cheap; subpackages load on first use.
"""
from __future__ import annotations

import importlib
import logging

__version__ = "0.1.0"

logging.getLogger("spikekws").addHandler(logging.NullHandler())

_SUBMODULES = {
    "data", "features", "neurons", "layers", "models", "train", "config", "registry",
}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"spikekws.{name}")
    raise AttributeError(f"module 'spikekws' has no attribute {name!r}")
