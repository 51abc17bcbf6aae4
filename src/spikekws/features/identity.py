"""The ``"none"`` front-end: inputs that already are features (binned spikes) pass through."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from .transforms import FEATURES

__all__ = ["Identity"]


@FEATURES.register("none")
class Identity(nn.Module):
    """``[B, T, F]`` -> the same tensor, as floating point.

    ``sample_rate`` is accepted (and ignored) so that every front-end is built the same
    way; ``lengths`` likewise.
    """

    def __init__(self, sample_rate: Optional[int] = None) -> None:
        super().__init__()
        self.sample_rate = sample_rate

    def forward(self, x: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
        return x if x.is_floating_point() else x.float()
