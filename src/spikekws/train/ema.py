"""Exponential moving average (EMA) of a model's weights.

``train.ema_decay`` > 0 keeps, next to the trained weights, a copy updated after every
optimiser step::

    w_ema <- d * w_ema + (1 - d) * w,     d = min(ema_decay, (1 + n) / (10 + n))

where ``n`` counts the updates so far; the warm-up term keeps the first steps from being
dominated by the random initialisation (as timm's ``ModelEmaV2`` and TensorFlow's
``ExponentialMovingAverage(num_updates=...)`` do). Floating-point buffers (batch-norm
running statistics) are averaged the same way, integer buffers are copied.

Validation, model selection (``best.pt``) and evaluation use the averaged weights; the
optimiser keeps stepping the raw ones, which ``last.pt`` stores next to the average so
that ``--resume`` continues bit-identically.
"""
from __future__ import annotations

import copy
from typing import Any, Dict

import torch
from torch import nn


class WeightEMA:
    """EMA of ``model``'s parameters and buffers; ``self.model`` is the averaged copy."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < float(decay) < 1.0:
            raise ValueError(f"train.ema_decay must be in (0, 1) (0 turns it off), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self.model = copy.deepcopy(_unwrap(model))
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        n = self.updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        src = _unwrap(model)
        d = self.current_decay()
        ema_p = [p for p in self.model.parameters()]
        cur_p = [p.detach() for p in src.parameters()]
        if len(ema_p) != len(cur_p):
            raise RuntimeError("WeightEMA: the model's parameters changed since the EMA was made")
        torch._foreach_lerp_(ema_p, cur_p, 1.0 - d)
        for b_ema, b in zip(self.model.buffers(), src.buffers()):
            if b_ema.is_floating_point():
                b_ema.lerp_(b, 1.0 - d)
            else:
                b_ema.copy_(b)
        self.updates += 1

    def state_dict(self) -> Dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "model": self.model.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.decay = float(state["decay"])
        self.updates = int(state["updates"])
        self.model.load_state_dict(state["model"])


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)
