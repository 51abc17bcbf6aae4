"""Neuron kernels: ``<neuron>_step`` and ``<neuron>_scan``, the only time loops.

Each scan dispatches on ``backend`` through the :data:`BACKENDS` dict:

- ``"torch"``: the plain reference (a Python loop of ``<neuron>_step``); it defines
  correctness and runs on any device.
- ``"cpp"``: fused CPU kernels (:mod:`.backends.cpp`), built on first use; inputs they do
  not cover (unknown surrogates, ...) and failed builds fall back to the reference.
- ``"triton"``: fused GPU kernels (:mod:`.backends.triton_scan`) for CUDA tensors; other
  inputs use the reference.
- ``"auto"``: per call, the first backend in :data:`AUTO_PREFERENCE` for the input's device
  type that is available, else the reference.

A neuron missing from a backend's table uses the reference. The tables also hold
``"linear"``, the weighted input ``x W^T + b`` of a layer, which fused backends compute from
the non-zero inputs (spikes) only, and ``"dropout"`` (training mode), whose fused version
draws its mask from a counter-based generator instead of storing it.
"""
from __future__ import annotations

from typing import Callable, Dict, Tuple

import torch

from .adlif import adlif_init, adlif_scan_torch, adlif_step
from .backends import cpp as _cpp
from .backends import triton_scan as _triton
from .if_ import if_scan_torch, if_step
from .li import li_scan_torch, li_step
from .lif import lif_init, lif_scan_torch, lif_step
from .state import AdLIFState, LIFState, LIState


def _cpu_only(neuron: str, scan: Callable) -> Callable:
    """An explicit ``backend="cpp"`` on another device is a user error, not a fallback."""

    def checked(x, *args):
        if x.device.type != "cpu":
            raise ValueError(
                f"backend 'cpp' runs on CPU tensors, got {x.device.type}; "
                "use backend='auto' or 'torch'")
        return scan(x, *args)

    checked.__name__ = f"{neuron}_scan_cpp"
    checked.__doc__ = scan.__doc__
    return checked


BACKENDS: Dict[str, Dict[str, Callable]] = {
    "torch": {
        "lif": lif_scan_torch,
        "adlif": adlif_scan_torch,
        "if": if_scan_torch,
        "li": li_scan_torch,
        "linear": torch.nn.functional.linear,
        "dropout": lambda x, p: torch.nn.functional.dropout(x, p, True),
    },
    "cpp": {name: _cpu_only(name, fn) for name, fn in _cpp.SCANS.items()},
    "triton": dict(_triton.SCANS),
}

# Fused backends tried by "auto", per device type, best first ("torch" is the last resort).
AUTO_PREFERENCE: Dict[str, Tuple[str, ...]] = {"cpu": ("cpp",), "cuda": ("triton",)}

# Whether a backend can run here (may build it); backends not listed are always available.
BACKEND_AVAILABLE: Dict[str, Callable[[], bool]] = {"cpp": _cpp.available,
                                                     "triton": _triton.available}


def resolve_backend(neuron: str, device_type: str) -> str:
    """The backend ``"auto"`` uses for ``neuron`` on tensors of ``device_type``."""
    for name in AUTO_PREFERENCE.get(device_type, ()):
        if neuron in BACKENDS.get(name, {}) and BACKEND_AVAILABLE.get(name, lambda: True)():
            return name
    return "torch"


def _auto(neuron: str) -> Callable:
    def scan(x, *args):
        return BACKENDS[resolve_backend(neuron, x.device.type)][neuron](x, *args)

    scan.__name__ = f"{neuron}_scan_auto"
    return scan


BACKENDS["auto"] = {name: _auto(name) for name in BACKENDS["torch"]}


def get_scan(neuron: str, backend: str = "torch") -> Callable:
    if backend not in BACKENDS:
        raise KeyError(f"unknown backend {backend!r} (available: {', '.join(sorted(BACKENDS))})")
    table = BACKENDS[backend]
    if neuron not in table:
        return BACKENDS["torch"][neuron]
    return table[neuron]


def lif_scan(x, state=None, *, alpha, surrogate, v_threshold=1.0, recurrent_weight=None,
             detach_reset=False, backend="torch"):
    """x: [T, B, H] -> (spikes [T, B, H], LIFState). See :mod:`.lif` for the equations."""
    return get_scan("lif", backend)(x, state, alpha, surrogate, v_threshold, recurrent_weight, detach_reset)


def adlif_scan(x, state=None, *, alpha, beta, a, b, surrogate, v_threshold=1.0,
               recurrent_weight=None, detach_reset=False, backend="torch"):
    """x: [T, B, H] -> (spikes [T, B, H], AdLIFState). See :mod:`.adlif`."""
    return get_scan("adlif", backend)(
        x, state, alpha, beta, a, b, surrogate, v_threshold, recurrent_weight, detach_reset
    )


def linear(x, weight, bias=None, *, backend="torch"):
    """x: [..., K], weight: [O, K] -> x W^T + bias: [..., O] (``torch.nn.functional.linear``)."""
    return get_scan("linear", backend)(x, weight, bias)


def dropout(x, p, *, backend="torch"):
    """Training-mode dropout of ``x`` (any shape): ``x * mask / (1 - p)``."""
    return get_scan("dropout", backend)(x, p)


def if_scan(x, state=None, *, surrogate, v_threshold=1.0, backend="torch"):
    """x: [T, B, ...] -> (spikes, LIFState). See :mod:`.if_`."""
    return get_scan("if", backend)(x, state, surrogate, v_threshold)


def li_scan(x, state=None, *, alpha, backend="torch"):
    """x: [T, B, H] -> (membrane trace [T, B, H], LIState). See :mod:`.li`."""
    return get_scan("li", backend)(x, state, alpha)


__all__ = [
    "AdLIFState", "LIFState", "LIState", "BACKENDS", "AUTO_PREFERENCE", "BACKEND_AVAILABLE",
    "get_scan", "resolve_backend",
    "lif_step", "lif_scan", "lif_init", "adlif_step", "adlif_scan", "adlif_init",
    "if_step", "if_scan", "li_step", "li_scan", "linear", "dropout",
]
