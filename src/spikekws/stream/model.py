"""Stateful frame-by-frame wrapper around a trained SNN (neuron state persists)."""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import nn


class StreamingSNN:
    """``step(x_t: [B, F]) -> readout membrane [B, C]`` with the state kept between calls.

    Works for :class:`~spikekws.models.snn.SNN` (any unidirectional neuron type, adLIF and
    RadLIF included: nothing is exported) and :class:`~spikekws.export.graph.GraphSNN`.
    The per-frame membrane ``v_t`` is what the offline readout averages
    (``mean_t softmax(v_t)``), so ``softmax(v_t)`` is the frame posterior.
    """

    def __init__(self, model: nn.Module) -> None:
        from ..export.graph import GraphSNN
        from ..models.snn import SNN
        if not isinstance(model, (SNN, GraphSNN)):
            raise TypeError(f"streaming needs a spiking SNN model, got {type(model).__name__}")
        if isinstance(model, SNN):
            if any(layer.bidirectional for layer in model.layers):
                raise ValueError("a bidirectional model needs the whole utterance; it cannot stream")
            if model.readout is None:
                raise ValueError("streaming needs an LI readout (use_readout_layer=true)")
        self.model = model.eval()
        self.reset()

    def reset(self) -> None:
        self._states: List[Optional[tuple]] = [None] * len(self.model.layers)
        self._readout = None
        self._graph_state = None

    @torch.no_grad()
    def step(self, x_t: torch.Tensor) -> torch.Tensor:
        from ..export.graph import GraphSNN
        if isinstance(self.model, GraphSNN):
            v, self._graph_state = self.model.step(x_t, self._graph_state)
            return v
        h = x_t
        for i, layer in enumerate(self.model.layers):
            h, self._states[i] = layer.step(h, self._states[i])
        ro = self.model.readout
        z = ro.norm(ro.linear(h).unsqueeze(0)).squeeze(0)
        v, self._readout = ro.li.step(z, self._readout)
        return v

    @torch.no_grad()
    def run(self, frames: torch.Tensor) -> torch.Tensor:
        """frames: [T, F] -> membranes [T, C] (state carried on)."""
        return torch.stack([self.step(f.unsqueeze(0))[0] for f in frames]) if len(frames) else \
            torch.zeros(0, self.model.num_classes)


__all__ = ["StreamingSNN"]
