"""Fused scan backends, picked through :data:`spikekws.neurons.functional.BACKENDS`.

``cpp``: CPU kernels from a C++ extension built on first use (:mod:`.cpp`); ``triton``:
kernels for CUDA tensors (:mod:`.triton_scan`). Modules import nothing heavy here: the
build happens at the first fused call.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

from ...surrogate import ATan, Boxcar, FastSigmoid, Sigmoid, Surrogate, Triangle


def surrogate_spec(surrogate: Surrogate) -> Optional[Tuple[int, float, float]]:
    """(id, p1, p2) of the fused kernels' pseudo-derivative, None for surrogates they do not
    know (the caller then falls back to the torch reference).

    Matched on the exact class: a subclass may redefine ``derivative``.
    """
    kind = type(surrogate)
    if kind is Boxcar:
        return 0, surrogate.width / 2, surrogate.scale
    if kind is FastSigmoid:
        return 1, surrogate.slope, 0.0
    if kind is Sigmoid:
        return 2, surrogate.slope, 0.0
    if kind is ATan:
        return 3, surrogate.alpha / 2, math.pi / 2 * surrogate.alpha
    if kind is Triangle:
        return 4, surrogate.width, 0.0
    return None
