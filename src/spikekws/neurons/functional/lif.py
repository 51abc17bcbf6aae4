"""Leaky integrate-and-fire kernels (LIF and recurrent RLIF).

Discrete-time dynamics (sparch, Bittar & Garner 2022), per neuron, step t:

    I_t = x_t + V s_{t-1}                       (V = 0 for LIF; diag(V) = 0 for RLIF)
    v_t = alpha * (v_{t-1} - theta * s_{t-1}) + (1 - alpha) * I_t
    s_t = H(v_t - theta)

with ``alpha = exp(-dt / tau_mem)``, threshold ``theta`` (NIR: ``v_threshold``), reset by
subtraction applied one step after the spike, and ``H`` the Heaviside step whose
derivative is replaced by a surrogate. Initial state: v_0 = s_0 = 0.

Shapes: x: [T, B, H] (time-first), alpha: [H] or scalar, V: [H, H] (``V @ s`` per sample).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from ..surrogate import Surrogate
from .state import LIFState


def lif_init(x_t: torch.Tensor) -> LIFState:
    z = torch.zeros_like(x_t)
    return LIFState(z, z)


def lif_step(
    x_t: torch.Tensor,
    state: LIFState,
    alpha: torch.Tensor,
    surrogate: Surrogate,
    v_threshold: float = 1.0,
    recurrent_weight: Optional[torch.Tensor] = None,
    detach_reset: bool = False,
) -> Tuple[torch.Tensor, LIFState]:
    """One step. x_t: [B, H] (already weighted input). Returns (s_t, new state)."""
    v, s = state
    current = x_t if recurrent_weight is None else x_t + s @ recurrent_weight.t()
    s_reset = s.detach() if detach_reset else s
    v = alpha * (v - v_threshold * s_reset) + (1.0 - alpha) * current
    s = surrogate(v - v_threshold)
    return s, LIFState(v, s)


def lif_scan_torch(
    x: torch.Tensor,
    state: Optional[LIFState],
    alpha: torch.Tensor,
    surrogate: Surrogate,
    v_threshold: float = 1.0,
    recurrent_weight: Optional[torch.Tensor] = None,
    detach_reset: bool = False,
) -> Tuple[torch.Tensor, LIFState]:
    """Reference scan: a Python loop of :func:`lif_step`. x: [T, B, H] -> spikes [T, B, H]."""
    if state is None:
        state = lif_init(x[0])
    out = []
    for t in range(x.shape[0]):
        s, state = lif_step(x[t], state, alpha, surrogate, v_threshold, recurrent_weight, detach_reset)
        out.append(s)
    return torch.stack(out), state
