"""Integrate-and-fire (non-leaky) kernel, reset by subtraction.

    v_t = v_{t-1} - theta * s_{t-1} + x_t
    s_t = H(v_t - theta)

Over T steps with constant input x >= 0 and v_0 = 0 the spike count is
``min(floor(T x / theta), T)`` (up to the last step), the property ANN-to-SNN conversion
relies on. ``v_init`` sets v_0 (e.g. theta/2 for the conversion "shift").
Shapes: x: [T, B, ...].
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from ..surrogate import Surrogate
from .state import LIFState


def if_step(
    x_t: torch.Tensor, state: LIFState, surrogate: Surrogate, v_threshold: float = 1.0
) -> Tuple[torch.Tensor, LIFState]:
    v, s = state
    v = v - v_threshold * s + x_t
    s = surrogate(v - v_threshold)
    return s, LIFState(v, s)


def if_scan_torch(
    x: torch.Tensor,
    state: Optional[LIFState],
    surrogate: Surrogate,
    v_threshold: float = 1.0,
) -> Tuple[torch.Tensor, LIFState]:
    if state is None:
        z = torch.zeros_like(x[0])
        state = LIFState(z, z)
    out = []
    for t in range(x.shape[0]):
        s, state = if_step(x[t], state, surrogate, v_threshold)
        out.append(s)
    return torch.stack(out), state
