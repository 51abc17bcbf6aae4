"""Leaky integrator (non-spiking readout).

    v_t = alpha * v_{t-1} + (1 - alpha) * x_t,   alpha = exp(-dt / tau_mem),  v_0 = 0

Shapes: x: [T, B, H] -> membrane trace [T, B, H].
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .state import LIState


def li_step(x_t: torch.Tensor, state: LIState, alpha: torch.Tensor) -> Tuple[torch.Tensor, LIState]:
    v = alpha * state.v + (1.0 - alpha) * x_t
    return v, LIState(v)


def li_scan_torch(
    x: torch.Tensor, state: Optional[LIState], alpha: torch.Tensor
) -> Tuple[torch.Tensor, LIState]:
    if state is None:
        state = LIState(torch.zeros_like(x[0]))
    out = []
    for t in range(x.shape[0]):
        v, state = li_step(x[t], state, alpha)
        out.append(v)
    return torch.stack(out), state
