"""Adaptive leaky integrate-and-fire kernels (adLIF and recurrent RadLIF).

Discrete-time dynamics (sparch, Bittar & Garner 2022), per neuron, step t:

    I_t = x_t + V s_{t-1}                       (V = 0 for adLIF; diag(V) = 0 for RadLIF)
    w_t = beta * w_{t-1} + a * v_{t-1} + b * s_{t-1}
    v_t = alpha * (v_{t-1} - theta * s_{t-1}) + (1 - alpha) * (I_t - w_t)
    s_t = H(v_t - theta)

``alpha = exp(-dt / tau_mem)``, ``beta = exp(-dt / tau_adapt)``; ``a`` couples the
membrane to the adaptation current (sub-threshold adaptation, may be negative to give
resonance), ``b`` is the spike-triggered adaptation. Initial state v = w = s = 0.

Shapes: x: [T, B, H]; alpha, beta, a, b: [H] or scalars; V: [H, H].
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from ..surrogate import Surrogate
from .state import AdLIFState


def adlif_init(x_t: torch.Tensor) -> AdLIFState:
    z = torch.zeros_like(x_t)
    return AdLIFState(z, z, z)


def adlif_step(
    x_t: torch.Tensor,
    state: AdLIFState,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    surrogate: Surrogate,
    v_threshold: float = 1.0,
    recurrent_weight: Optional[torch.Tensor] = None,
    detach_reset: bool = False,
) -> Tuple[torch.Tensor, AdLIFState]:
    """One step. x_t: [B, H]. Returns (s_t, new state)."""
    v, w, s = state
    current = x_t if recurrent_weight is None else x_t + s @ recurrent_weight.t()
    w = beta * w + a * v + b * s
    s_reset = s.detach() if detach_reset else s
    v = alpha * (v - v_threshold * s_reset) + (1.0 - alpha) * (current - w)
    s = surrogate(v - v_threshold)
    return s, AdLIFState(v, w, s)


def adlif_scan_torch(
    x: torch.Tensor,
    state: Optional[AdLIFState],
    alpha: torch.Tensor,
    beta: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    surrogate: Surrogate,
    v_threshold: float = 1.0,
    recurrent_weight: Optional[torch.Tensor] = None,
    detach_reset: bool = False,
) -> Tuple[torch.Tensor, AdLIFState]:
    """Reference scan: a Python loop of :func:`adlif_step`. x: [T, B, H] -> spikes."""
    if state is None:
        state = adlif_init(x[0])
    out = []
    for t in range(x.shape[0]):
        s, state = adlif_step(
            x[t], state, alpha, beta, a, b, surrogate, v_threshold, recurrent_weight, detach_reset
        )
        out.append(s)
    return torch.stack(out), state
