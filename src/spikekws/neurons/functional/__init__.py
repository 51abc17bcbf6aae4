"""Neuron kernels: ``<neuron>_step`` and ``<neuron>_scan``, the only time loops.

Each scan dispatches on ``backend`` through the :data:`BACKENDS` dict; ``"torch"`` is the
plain reference that defines correctness.
"""
from __future__ import annotations

from typing import Callable, Dict

from .adlif import adlif_init, adlif_scan_torch, adlif_step
from .if_ import if_scan_torch, if_step
from .li import li_scan_torch, li_step
from .lif import lif_init, lif_scan_torch, lif_step
from .state import AdLIFState, LIFState, LIState

BACKENDS: Dict[str, Dict[str, Callable]] = {
    "torch": {
        "lif": lif_scan_torch,
        "adlif": adlif_scan_torch,
        "if": if_scan_torch,
        "li": li_scan_torch,
    },
}


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


def if_scan(x, state=None, *, surrogate, v_threshold=1.0, backend="torch"):
    """x: [T, B, ...] -> (spikes, LIFState). See :mod:`.if_`."""
    return get_scan("if", backend)(x, state, surrogate, v_threshold)


def li_scan(x, state=None, *, alpha, backend="torch"):
    """x: [T, B, H] -> (membrane trace [T, B, H], LIState). See :mod:`.li`."""
    return get_scan("li", backend)(x, state, alpha)


__all__ = [
    "AdLIFState", "LIFState", "LIState", "BACKENDS", "get_scan",
    "lif_step", "lif_scan", "lif_init", "adlif_step", "adlif_scan", "adlif_init",
    "if_step", "if_scan", "li_step", "li_scan",
]
