"""Integer-only inference of quantised SNNs (LIF, RLIF, IF layers; LI readout).

A folded SNN (:func:`~spikekws.export.graph.fold_snn`) is quantised per layer:

* weights: symmetric ``weight_bits`` codes ``W ≈ Wq * s`` with one scale ``s`` per layer
  (``s = max|W| / qmax`` rounded up to 16 significant bits, as in :mod:`spikekws.convert`);
* input: int8 codes on a power-of-two step ``s_in`` (first layer; later layers get spikes,
  ``s_in = 1``). One membrane unit of the layer is ``sigma = s * s_in`` of input current;
* recurrent weights share the layer's unit up to a left shift ``m >= 0``:
  ``V ≈ Vq * sigma * 2**m`` (``Vq`` also ``weight_bits`` wide);
* decay: ``alpha`` is replaced by ``1 - d / 4096`` with an integer ``d``. ``decay="shift"``
  restricts ``d`` to ``2**(12 - k)`` so the leak is the bit-shift ``v -= v >> k``
  (Xylo-style, ``k`` in 1..12); ``decay="fixed12"`` keeps any ``d`` in 1..4096 (Loihi-style
  12-bit decay, ``v -= (v * d) >> 12``).

Integer state ``u`` (int64) counts membrane in units of ``(d / 4096) * sigma``, so the
float update ``v_t = alpha (v_{t-1} - theta s_{t-1}) + (1 - alpha) I_t`` becomes::

    w   = u_{t-1} - Theta s_{t-1}
    u_t = w - ((w * d) >> 12) + Wq x_t + b_q + (Vq s_{t-1}) << m      s_t = [u_t >= Theta]

with ``Theta = round(theta / ((d/4096) sigma))`` (``>= 1``) and ``b_q = round(b / sigma)``.
IF layers use ``d = 0`` and ``u`` in units of ``sigma``. The LI readout is the same
without threshold; class scores are computed from ``v = u * (d/4096) * sigma``.

:meth:`IntegerSNN.to_float` is the float simulation of the *same* quantised network
(dequantised weights, ``alpha = 1 - d/4096``, rounded thresholds and biases). For IF
layers every float64 quantity is an exact multiple of ``sigma``, so spikes are identical;
for leaky layers the integer leak floors ``w * d / 4096`` while the float one does not,
so spikes may differ by rounding: :func:`agreement` reports how much.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from ..convert.quantize import snap_scale
from .graph import GraphLayer, GraphReadout, GraphSNN, fold_snn

DECAYS = ("shift", "fixed12")
ONE = 4096  # 12-bit decay denominator


def quantize_weight(w: torch.Tensor, bits: int) -> Tuple[torch.Tensor, float]:
    """Symmetric per-tensor quantisation -> (int64 codes, scale)."""
    if int(bits) != bits or not 2 <= bits <= 16:
        raise ValueError(f"weight_bits must be an integer in [2, 16], got {bits!r}")
    qmax = 2 ** (int(bits) - 1) - 1
    amax = float(w.detach().abs().max()) if w.numel() else 0.0
    if not math.isfinite(amax):
        raise ValueError("cannot quantise non-finite weights")
    scale = float(snap_scale(torch.tensor([amax / qmax]))[0]) if amax > 0 else 1.0
    codes = torch.clamp(torch.round(w.detach().double() / scale), -qmax, qmax).long()
    return codes, scale


def decay_code(alpha: torch.Tensor, decay: str) -> torch.Tensor:
    """Integer ``d`` (``alpha ≈ 1 - d/4096``) per neuron for ``decay`` in DECAYS."""
    leak = (1.0 - alpha.detach().double()).clamp(min=1.0 / ONE, max=1.0)
    if decay == "shift":
        k = torch.round(-torch.log2(leak)).clamp(0, 12).long()
        return (2 ** (12 - k)).long()
    if decay == "fixed12":
        return torch.round(leak * ONE).clamp(1, ONE).long()
    raise ValueError(f"decay must be one of {', '.join(DECAYS)}; got {decay!r}")


def input_step(x: torch.Tensor, bits: int = 8) -> float:
    """Power-of-two step covering ``max|x|`` with ``bits``-bit signed codes."""
    qmax = 2 ** (int(bits) - 1) - 1
    amax = float(x.detach().abs().max())
    if not math.isfinite(amax):
        raise ValueError("cannot quantise a non-finite input")
    return 1.0 if amax == 0 else 2.0 ** math.ceil(math.log2(amax / qmax))


@dataclass
class IntLayer:
    """Integer constants of one layer (see the module docstring)."""

    name: str
    neuron: str  # "lif", "if" or "li" (readout)
    weight: torch.Tensor  # [H, in] int64 codes
    scale: float  # weight scale s
    sigma: float  # membrane-current unit s * s_in
    bias: torch.Tensor  # [H] int64
    d: torch.Tensor  # [H] int64 decay code (0: no leak)
    threshold: Optional[torch.Tensor]  # [H] int64 (None: readout)
    recurrent: Optional[torch.Tensor] = None  # [H, H] int64 codes
    rec_shift: int = 0

    @property
    def unit(self) -> torch.Tensor:
        """Float value of one integer membrane step, per neuron [H] (float64)."""
        frac = torch.where(self.d > 0, self.d.double() / ONE, torch.ones_like(self.d, dtype=torch.float64))
        return frac * self.sigma

    @property
    def shift(self) -> Optional[torch.Tensor]:
        """``k`` with ``d = 2**(12-k)`` where the decay is a pure shift, else None."""
        if bool((self.d <= 0).any()):
            return None
        k = 12 - torch.log2(self.d.double())
        return k.long() if bool((k == k.round()).all()) else None


class IntegerSNN(nn.Module):
    """Integer-only simulation. forward(x: [B, T, F] float features) -> (log-probs [B, C]
    or spike counts, firing rates [L]); the input is quantised with ``input_scale``."""

    def __init__(self, layers: List[IntLayer], input_scale: float, input_bits: int, dt: float,
                 has_readout: bool) -> None:
        super().__init__()
        self.int_layers = layers
        self.input_scale = float(input_scale)
        self.input_bits = int(input_bits)
        self.dt = float(dt)
        self.has_readout = bool(has_readout)

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        qmax = 2 ** (self.input_bits - 1) - 1
        return torch.clamp(torch.round(x.double() / self.input_scale), -qmax, qmax).long()

    @torch.no_grad()
    def trace(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """{"layer{i}": spikes [T, B, H] (0/1 float), "readout": membrane [T, B, C] (float64,
        dequantised)}; x: [B, T, F]."""
        h = self.quantize_input(x).transpose(0, 1)  # [T, B, F] int64
        out: Dict[str, torch.Tensor] = {}
        spiking = [L for L in self.int_layers if L.threshold is not None]
        for i, L in enumerate(self.int_layers):
            z = torch.matmul(h, L.weight.t()) + L.bias  # [T, B, H] int64
            u = torch.zeros_like(z[0])
            s = torch.zeros_like(z[0])
            trace = []
            for t in range(z.shape[0]):
                w = u if L.threshold is None else u - L.threshold * s
                cur = z[t]
                if L.recurrent is not None:
                    cur = cur + (torch.matmul(s, L.recurrent.t()) << L.rec_shift)
                u = w - ((w * L.d) >> 12) + cur
                if L.threshold is None:
                    trace.append(u)
                else:
                    s = (u >= L.threshold).long()
                    trace.append(s)
            h = torch.stack(trace)
            if L.threshold is None:
                out["readout"] = h.double() * L.unit
            else:
                out[f"layer{spiking.index(L)}"] = h.double()
        return out

    def forward(self, x: torch.Tensor):
        tr = self.trace(x)
        spikes = [v for k, v in tr.items() if k.startswith("layer")]
        rates = torch.stack([s.mean() for s in spikes]) if spikes else torch.zeros(0)
        if self.has_readout:
            return torch.log(torch.softmax(tr["readout"], -1).mean(0) + 1e-12), rates
        return spikes[-1].sum(0), rates

    def to_float(self, dtype: torch.dtype = torch.float64) -> GraphSNN:
        """The float simulation of this quantised network (see the module docstring)."""
        layers, readout = [], None
        for L in self.int_layers:
            w = L.weight.double() * L.scale  # acts on dequantised inputs (codes * s_in)
            b = L.bias.double() * L.sigma
            if L.threshold is None:
                readout = GraphReadout(w, b, 1.0 - L.d.double() / ONE)
                continue
            rec = None if L.recurrent is None else L.recurrent.double() * (L.sigma * 2 ** L.rec_shift)
            if L.neuron == "if":
                layers.append(GraphLayer(w, b, "if", None, L.threshold.double() * L.sigma, name=L.name))
            else:
                layers.append(GraphLayer(w, b, "lif", 1.0 - L.d.double() / ONE,
                                         L.threshold.double() * L.unit, rec, name=L.name))
        return GraphSNN(layers, readout, self.dt).to(dtype).eval()

    def quantize_input_float(self, x: torch.Tensor) -> torch.Tensor:
        """The dequantised input the float simulation must see: codes * input_scale."""
        return self.quantize_input(x).double() * self.input_scale


@torch.no_grad()
def quantize_snn(model: nn.Module, calibration: Optional[torch.Tensor] = None,
                 input_scale: Optional[float] = None, weight_bits: int = 8, input_bits: int = 8,
                 decay: str = "shift") -> IntegerSNN:
    """Quantise an SNN (or GraphSNN) for :class:`IntegerSNN`.

    ``calibration`` ([B, T, F] features) sets the power-of-two input step unless
    ``input_scale`` is given. Raises ValueError for layers the scheme does not cover.
    """
    if decay not in DECAYS:
        raise ValueError(f"decay must be one of {', '.join(DECAYS)}; got {decay!r}")
    g = fold_snn(model)
    if input_scale is None:
        if calibration is None:
            raise ValueError("quantize_snn needs calibration features or an input_scale")
        input_scale = input_step(calibration, input_bits)
    if not input_scale > 0 or math.log2(input_scale) != round(math.log2(input_scale)):
        raise ValueError(f"input_scale must be a positive power of two, got {input_scale}")
    layers: List[IntLayer] = []
    s_in = float(input_scale)
    for gl in g.layers:
        if gl.reset != "subtract" or not bool((gl.gain == 1).all()):
            raise ValueError(f"layer {gl.name}: only spikekws dynamics (subtractive reset, unit "
                             "gain) can be quantised")
        codes, s = quantize_weight(gl.weight, weight_bits)
        sigma = s * s_in
        bias = torch.round(gl.bias.double() / sigma).long()
        rec, m = None, 0
        if gl.recurrent:
            qmax = 2 ** (weight_bits - 1) - 1
            amax = float(gl.recurrent_weight.abs().max())
            if amax > 0:
                m = max(0, math.ceil(math.log2(amax / (qmax * sigma))))
            rec = torch.clamp(torch.round(gl.recurrent_weight.double() / (sigma * 2 ** m)), -qmax, qmax).long()
        if gl.neuron == "if":
            d = torch.zeros(gl.size, dtype=torch.long)
            unit = torch.full((gl.size,), sigma, dtype=torch.float64)
        else:
            d = decay_code(gl.alpha, decay)
            unit = d.double() / ONE * sigma
        theta = torch.clamp(torch.round(gl.v_threshold.double() / unit), min=1).long()
        layers.append(IntLayer(gl.name, gl.neuron, codes, s, sigma, bias, d, theta, rec, m))
        s_in = 1.0
    if g.readout is not None:
        codes, s = quantize_weight(g.readout.weight, weight_bits)
        sigma = s * s_in
        layers.append(IntLayer("readout", "li", codes, s, sigma,
                               torch.round(g.readout.bias.double() / sigma).long(),
                               decay_code(g.readout.alpha, decay), None))
    return IntegerSNN(layers, input_scale, input_bits, g.dt, g.readout is not None)


def quantize_for(model: nn.Module, target: str, calibration: Optional[torch.Tensor] = None,
                 input_scale: Optional[float] = None) -> IntegerSNN:
    """:func:`quantize_snn` with the weight bits and decay scheme of a chip profile
    (``"xylo"``: bit-shift decay, 8 bits; ``"loihi2"``: 12-bit decay; ...)."""
    from .targets import get_target
    prof = get_target(target)
    return quantize_snn(model, calibration, input_scale, weight_bits=prof.weight_bits,
                        decay=prof.decay)


@torch.no_grad()
def agreement(int_net: IntegerSNN, x: torch.Tensor) -> Dict[str, float]:
    """Integer vs float simulation of the same quantised net on features ``x`` [B, T, F]:
    fraction of equal spikes per layer, of equal predictions, and max |readout| difference."""
    fnet = int_net.to_float()
    xi = int_net.quantize_input_float(x)
    a, b = int_net.trace(x), fnet.trace(xi)
    rep: Dict[str, float] = {}
    for k in a:
        if k.startswith("layer"):
            rep[f"spikes_{k}"] = float((a[k] == b[k]).double().mean())
    if "readout" in a:
        rep["readout_max_abs_diff"] = float((a["readout"] - b["readout"]).abs().max())
    pa, pb = int_net(x)[0].argmax(1), fnet(xi)[0].argmax(1)
    rep["predictions"] = float((pa == pb).double().mean())
    return rep


__all__ = ["IntegerSNN", "IntLayer", "quantize_snn", "quantize_for", "agreement", "decay_code", "quantize_weight",
           "input_step", "DECAYS"]
