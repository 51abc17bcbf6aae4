"""Neuron states: explicit NamedTuples, zero-initialised, never held by modules."""
from __future__ import annotations

from typing import NamedTuple

import torch


class LIFState(NamedTuple):
    """v: membrane potential [B, H]; s: spikes emitted at the previous step [B, H]."""

    v: torch.Tensor
    s: torch.Tensor


class AdLIFState(NamedTuple):
    """v: membrane [B, H]; w: adaptation current [B, H]; s: previous spikes [B, H]."""

    v: torch.Tensor
    w: torch.Tensor
    s: torch.Tensor


class LIState(NamedTuple):
    """v: membrane potential of a non-spiking leaky integrator [B, H]."""

    v: torch.Tensor


def zeros_like_input(x_t: torch.Tensor, n: int):
    return tuple(torch.zeros_like(x_t) for _ in range(n))
