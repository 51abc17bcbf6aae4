"""Feed-forward / recurrent SNN stack (sparch-compatible constructor)."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from ..layers import LIReadout, SpikingLinear
from ..neurons.modules import NEURONS
from . import MODELS


class SNN(nn.Module):
    """A stack of spiking layers followed by a leaky-integrator readout.

    Args mirror sparch's ``SNN``: ``input_shape`` is ``(batch, time, features)`` (only the
    feature size is used; any batch size and length work), ``layer_sizes`` lists the hidden
    sizes followed by the number of classes, ``neuron_type`` is one of LIF, adLIF, RLIF,
    RadLIF (case-insensitive) or any registered neuron.

    forward(x: [B, T, F]) -> (out [B, C], firing_rates [L]) where ``out`` holds
    log-probabilities (readout layer) or spike counts over time (last layer spiking,
    ``use_readout_layer=False``) and ``firing_rates`` the mean spike probability per
    spiking layer and step.
    """

    spiking = True

    def __init__(
        self,
        input_shape: Sequence[int],
        layer_sizes: Sequence[int],
        neuron_type: str = "LIF",
        threshold: float = 1.0,
        dropout: float = 0.0,
        normalization: str = "batchnorm",
        use_bias: bool = False,
        bidirectional: bool = False,
        use_readout_layer: bool = True,
        **neuron_kwargs,
    ) -> None:
        super().__init__()
        if len(layer_sizes) < 1 or any(int(s) <= 0 for s in layer_sizes):
            raise ValueError(f"layer_sizes must be positive integers, got {list(layer_sizes)}")
        NEURONS.get(neuron_type)  # fail early with the list of neurons
        self.input_size = int(input_shape[-1])
        self.layer_sizes = [int(s) for s in layer_sizes]
        self.num_classes = self.layer_sizes[-1]
        self.use_readout_layer = bool(use_readout_layer)
        spiking_sizes = self.layer_sizes[:-1] if use_readout_layer else self.layer_sizes
        layers: List[SpikingLinear] = []
        in_features = self.input_size
        for i, size in enumerate(spiking_sizes):
            last = i == len(spiking_sizes) - 1 and not use_readout_layer
            layer = SpikingLinear(
                in_features, size, neuron=neuron_type.lower(), normalization=normalization,
                bias=use_bias, dropout=0.0 if last else dropout,
                bidirectional=bidirectional and not last, v_threshold=threshold, **neuron_kwargs,
            )
            layers.append(layer)
            in_features = layer.out_features
        self.layers = nn.ModuleList(layers)
        self.readout: Optional[LIReadout] = None
        if use_readout_layer:
            dt = neuron_kwargs.get("dt", 0.01)
            tau = neuron_kwargs.get("tau_mem", (0.05, 0.25))
            self.readout = LIReadout(in_features, self.num_classes, normalization=normalization,
                                     bias=use_bias, dt=dt, tau_mem=tau)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"expected input [batch, time, {self.input_size}], got {list(x.shape)}")
        return x.transpose(0, 1)  # the one batch-first -> time-first adapter

    def forward(self, x: torch.Tensor):
        h = self._check(x)
        rates = []
        for layer in self.layers:
            s, _, rate = layer.spikes_and_rate(h)
            rates.append(rate)  # before dropout, whose 1/(1-p) scaling is not firing
            h = layer.dropout(s)
        firing_rates = torch.stack(rates) if rates else x.new_zeros(0)
        if self.readout is not None:
            return self.readout(h), firing_rates
        return h.sum(0), firing_rates

    @torch.no_grad()
    def trace(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Per-layer activity for analysis: {"layer{i}": spikes [T, B, H], "readout": v}."""
        h = self._check(x)
        out: Dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.layers):
            h, _ = layer(h)
            out[f"layer{i}"] = h
        if self.readout is not None:
            out["readout"], _ = self.readout.membrane(h)
        return out


@MODELS.register("snn")
def build_snn(
    in_features: int,
    num_classes: int,
    neuron: str = "lif",
    hidden_sizes: Sequence[int] = (128, 128),
    dropout: float = 0.1,
    normalization: str = "batchnorm",
    bias: bool = False,
    bidirectional: bool = False,
    use_readout_layer: bool = True,
    threshold: float = 1.0,
    **neuron_kwargs,
) -> SNN:
    return SNN(
        (1, 1, in_features), list(hidden_sizes) + [num_classes], neuron_type=neuron,
        threshold=threshold, dropout=dropout, normalization=normalization, use_bias=bias,
        bidirectional=bidirectional, use_readout_layer=use_readout_layer, **neuron_kwargs,
    )
