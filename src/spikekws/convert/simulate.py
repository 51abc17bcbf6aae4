"""Spiking simulation of a converted network: float and integer-only.

Every hidden layer ``l`` becomes integrate-and-fire neurons with reset by subtraction
(:func:`spikekws.neurons.functional.if_step`); the readout is a non-spiking integrator.
The input is presented as a constant current at each of the ``T`` steps, the first layer
receiving the analog (or int8-quantised) input itself. A spike of layer ``l - 1`` stands
for an activation of ``Θ_{l-1}`` (its threshold), so, with ``Θ_0 = 1`` for the input,
layer ``l`` uses (Rueckauer et al. 2017 weight normalisation, written per layer)::

    I_t = W_l pre(s_{t, l-1}) + b_l / Θ_{l-1}          threshold θ_l = Θ_l / Θ_{l-1}
    v_t = v_{t-1} - θ_l s_{t-1} + I_t ;  s_t = [v_t >= θ_l] ;  v_0 = θ_l / 2 (shift) or 0

and the outputs are ``Θ_{L-1} / T * Σ_t I_t`` of the readout (on the scale of the ANN's
logits). After ``T`` steps the spike count of a first-layer neuron is exactly
``min(floor(T z / θ + φ), T)`` (ClipFloor, ``φ = 1/2`` with the shift).

**Integer domain.** For a quantised network with an int8 input (:func:`.quantize.quantize`
with calibration data) the membrane of output channel ``c`` of layer ``l`` is counted in
units ``u = wscale_c`` (times the input step for the first layer): weights are the int8
codes, ``b/Θ``, ``θ`` and ``v_0`` are rounded to integers in that unit (``θ >= 1``,
``v_0 = θ // 2``), and :func:`simulate_integer` runs with ``int64`` membranes. The float
simulation of the same :class:`SpikingNet` uses exactly those rounded values times ``u``.
All its quantities are then integer multiples of ``u`` that float64 represents exactly
(16-bit scales, power-of-two input step, spikes and their sums), so ``simulate(...,
dtype=torch.float64)`` emits bit-identical spikes to :func:`simulate_integer`. In float32
the sums are rounded, which may flip a spike that lands exactly on the threshold.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import List, NamedTuple, Optional, Sequence

import torch

from ..neurons.functional import LIFState, if_scan, if_step
from ..neurons.surrogate import get_surrogate
from .network import AffineLayer, ConvertedNet

_SPIKE = get_surrogate("boxcar")  # forward pass only: the Heaviside step
_EXACT = 2 ** 53  # every integer below this is exact in float64
_INT_LIMIT = 2 ** 36  # integer bias/threshold magnitudes whose float64 multiples stay exact


class SimulationResult(NamedTuple):
    """``outputs`` [B, C] (ANN logit scale), ``spike_counts`` per spiking layer [B, ...]
    (int64), ``firing_rates`` [L] (mean spikes per neuron and step), ``spikes`` per
    spiking layer [T, B, ...] (bool) when requested."""

    outputs: torch.Tensor
    spike_counts: List[torch.Tensor]
    firing_rates: torch.Tensor
    spikes: Optional[List[torch.Tensor]] = None


@dataclass
class SpikingLayer:
    """Per-layer constants of the spiking network (see the module docstring)."""

    layer: AffineLayer
    bias: torch.Tensor  # [C] float64, membrane units of the float simulation
    threshold: Optional[torch.Tensor]  # [C] float64 (None: readout)
    v_init: Optional[torch.Tensor]
    unit: Optional[torch.Tensor] = None  # [C] float64: value of one integer membrane step
    bias_int: Optional[torch.Tensor] = None  # [C] int64
    threshold_int: Optional[torch.Tensor] = None
    v_init_int: Optional[torch.Tensor] = None
    input_bound: int = 0  # largest |input| of one synapse in the integer simulation

    @property
    def spiking(self) -> bool:
        return self.layer.spiking


@dataclass
class SpikingNet:
    """A converted network with thresholds: ready for :func:`simulate`."""

    net: ConvertedNet
    layers: List[SpikingLayer]
    thresholds: List[float]
    shift: bool
    output_scale: float

    @property
    def integer(self) -> bool:
        """Whether :func:`simulate_integer` can run it (int8 weights and int8 input)."""
        return self.layers[0].unit is not None


def build_snn(net: ConvertedNet, thresholds: Sequence[float], shift: bool = False) -> SpikingNet:
    """Attach thresholds ``Θ_l`` (one per spiking layer, ANN activation units) to ``net``."""
    thresholds = [float(t) for t in thresholds]
    if len(thresholds) != len(net.spiking_layers):
        raise ValueError(f"need {len(net.spiking_layers)} thresholds (one per spiking layer), "
                         f"got {len(thresholds)}")
    if any(not t > 0 for t in thresholds):
        raise ValueError(f"thresholds must be positive, got {thresholds}")
    integer = net.quantized and net.input_scale is not None
    layers: List[SpikingLayer] = []
    prev, k = 1.0, 0
    for i, layer in enumerate(net.layers):
        bias = layer.bias.double() / prev
        theta = None
        if layer.spiking:
            theta = torch.full_like(bias, thresholds[k] / prev)
        if not integer:
            v0 = theta / 2 if (theta is not None and shift) else (
                torch.zeros_like(bias) if theta is not None else None)
            layers.append(SpikingLayer(layer, bias, theta, v0))
        else:
            unit = layer.wscale.double() * (net.input_scale if i == 0 else 1.0)
            b_int = torch.round(bias / unit).long()
            t_int = v_int = None
            if theta is not None:
                t_int = torch.clamp(torch.round(theta / unit), min=1).long()
                v_int = t_int // 2 if shift else torch.zeros_like(t_int)
            for what, val in (("bias", b_int), ("threshold", t_int)):
                if val is not None and int(val.abs().max()) >= _INT_LIMIT:
                    raise ValueError(f"layer {layer.name}: {what} is {int(val.abs().max())} "
                                     f"membrane steps, too large for the integer simulation")
            bound = 127 * layer.in_max if i == 0 else layer.in_max
            fan_in = int(layer.qweight.abs().reshape(layer.out_channels, -1).long().sum(1).max())
            if fan_in * bound >= _EXACT:
                raise ValueError(f"layer {layer.name}: synaptic sums may reach "
                                 f"{fan_in * bound}, beyond exact integer arithmetic")
            layers.append(SpikingLayer(
                layer, b_int.double() * unit, None if t_int is None else t_int.double() * unit,
                None if v_int is None else v_int.double() * unit, unit, b_int, t_int, v_int, bound))
        if layer.spiking:
            prev = thresholds[k]
            k += 1
    return SpikingNet(net, layers, thresholds, bool(shift), prev)


# --------------------------------------------------------------------------- simulation
def _exact_context(t: torch.Tensor):
    # cuDNN may pick FFT/Winograd convolutions, which are not exact on integers.
    if t.is_cuda:
        return torch.backends.cudnn.flags(enabled=False)
    return contextlib.nullcontext()


def _channel(v: torch.Tensor, layer: AffineLayer, like: torch.Tensor) -> torch.Tensor:
    return v.to(device=like.device, dtype=like.dtype).reshape(layer.channel_shape())


def _run(snn: SpikingNet, x: torch.Tensor, timesteps: int, integer: bool, dtype: torch.dtype,
         return_spikes: bool) -> SimulationResult:
    if int(timesteps) != timesteps or timesteps < 1:
        raise ValueError(f"timesteps must be a positive integer, got {timesteps!r}")
    net = snn.net
    device = net.layers[0].weight.device
    x = x.to(device)
    net.check_input(x)
    if integer:
        if not snn.integer:
            raise ValueError("integer simulation needs int8 weights and an int8 input: "
                             "quantize(net, calibration=...) before build_snn")
        h0 = net.quantize_input(x).long()
    else:
        h0 = net.prepare_input(x.to(dtype)).to(dtype)

    def current(sl: SpikingLayer, h: torch.Tensor) -> torch.Tensor:
        layer = sl.layer
        h = layer.apply_pre(h)
        if integer:
            z = torch.round(layer.linear_part(h.double(), layer.qweight.double())).long()
            return z + _channel(sl.bias_int, layer, z)
        z = layer.linear_part(h.to(dtype))
        return z + _channel(sl.bias, layer, z)

    counts: List[torch.Tensor] = []
    trains: List[List[torch.Tensor]] = []
    states: List[Optional[LIFState]] = [None] * len(snn.layers)
    acc: Optional[torch.Tensor] = None
    with _exact_context(x) if (integer or dtype == torch.float64) else contextlib.nullcontext():
        first = current(snn.layers[0], h0)  # constant input: the same current every step
        for _ in range(int(timesteps)):
            h = h0
            k = 0
            for i, sl in enumerate(snn.layers):
                cur = first if i == 0 else current(sl, h)
                if not sl.spiking:
                    acc = cur if acc is None else acc + cur
                    continue
                thr = _channel(sl.threshold_int if integer else sl.threshold, sl.layer, cur)
                if states[i] is None:
                    v0 = _channel(sl.v_init_int if integer else sl.v_init, sl.layer, cur)
                    states[i] = LIFState(v0.expand_as(cur).clone(), torch.zeros_like(cur))
                s, states[i] = if_step(cur, states[i], _SPIKE, thr)
                if len(counts) <= k:
                    counts.append(torch.zeros(s.shape, dtype=torch.long, device=s.device))
                    trains.append([])
                counts[k] += s.long()
                if return_spikes:
                    trains[k].append(s.bool())
                h = s
                k += 1
    assert acc is not None
    readout = snn.layers[-1]
    if integer:
        out = acc.double() * _channel(readout.unit, readout.layer, acc.double())
    else:
        out = acc.double()
    out = out * (snn.output_scale / timesteps)
    for op in net.post:
        out = op(out)
    rates = torch.stack([c.double().mean() / timesteps for c in counts]).float()
    spikes = [torch.stack(t) for t in trains] if return_spikes else None
    return SimulationResult(out.float(), counts, rates, spikes)


@torch.no_grad()
def simulate(snn: SpikingNet, x: torch.Tensor, timesteps: int, dtype: torch.dtype = torch.float32,
             return_spikes: bool = False) -> SimulationResult:
    """Float simulation for ``timesteps`` steps. x: [B, *input_shape]."""
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    return _run(snn, x, timesteps, False, dtype, return_spikes)


@torch.no_grad()
def simulate_integer(snn: SpikingNet, x: torch.Tensor, timesteps: int,
                     return_spikes: bool = False) -> SimulationResult:
    """Integer-only simulation: int8 input codes and weights, int64 membranes, thresholds and
    biases. Synaptic sums are products of integers accumulated in float64 (exact below 2**53,
    which :func:`build_snn` checks for every layer) and cast back to int64."""
    return _run(snn, x, timesteps, True, torch.float64, return_spikes)


@torch.no_grad()
def if_spike_counts(current: torch.Tensor, threshold: float, timesteps: int,
                    shift: bool = False) -> torch.Tensor:
    """Spike counts of IF neurons (reset by subtraction) driven by a constant ``current``
    for ``timesteps`` steps; membrane starts at ``threshold / 2`` with ``shift``."""
    x = current.unsqueeze(0).expand(int(timesteps), *current.shape)
    v0 = torch.full_like(current, threshold / 2 if shift else 0.0)
    s, _ = if_scan(x, LIFState(v0, torch.zeros_like(current)), surrogate=_SPIKE,
                   v_threshold=threshold)
    return s.sum(0).long()


__all__ = ["SpikingNet", "SpikingLayer", "SimulationResult", "build_snn", "simulate",
           "simulate_integer", "if_spike_counts"]
