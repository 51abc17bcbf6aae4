"""Symmetric int8 quantisation of weights (per tensor or per output channel) and of the input.

``w ≈ q * s`` with ``q = clamp(round(w / s), -127, 127)`` stored as ``int8`` and
``s = max|w| / 127`` (per tensor, or per output channel). Two details make the integer
simulation of a quantised network match its float simulation exactly (see
:mod:`.simulate`):

* weight scales are rounded *up* to 16 significant bits (a relative change below 2e-5,
  and never a clipped weight), so every dequantised weight ``q * s`` is exact in float32;
* the input step is a power of two, so quantising the input is a shift.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from .network import ConvertedNet

SCALE_BITS = 16


def snap_scale(scale: torch.Tensor, bits: int = SCALE_BITS) -> torch.Tensor:
    """Round positive scales up to ``bits`` significant bits (float32 result)."""
    s = scale.double()
    mantissa, exponent = torch.frexp(s)  # s = mantissa * 2**exponent, mantissa in [0.5, 1)
    mantissa = torch.ceil(mantissa * 2.0 ** bits) / 2.0 ** bits
    return torch.ldexp(mantissa, exponent).float()


def quantize_tensor(weight: torch.Tensor, bits: int = 8, per_channel: bool = False
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Symmetric quantisation of ``weight`` ([out, ...]) -> (codes int8, scale [out] float32).

    ``per_channel``: one scale per output channel (dim 0); otherwise one for the tensor
    (repeated ``out`` times). ``|weight - codes * scale| <= scale / 2`` element-wise.
    """
    if int(bits) != bits or not 2 <= bits <= 8:
        raise ValueError(f"bits must be an integer in [2, 8], got {bits!r}")
    qmax = 2 ** (int(bits) - 1) - 1
    w = weight.detach().float()
    out = w.shape[0]
    if per_channel:
        amax = w.abs().reshape(out, -1).amax(dim=1)
    else:
        amax = w.abs().max().expand(out).clone()
    if not torch.isfinite(amax).all():
        raise ValueError("cannot quantise non-finite weights")
    scale = snap_scale(amax / qmax)
    scale = torch.where(amax > 0, scale, torch.ones_like(scale))
    view = scale.reshape(-1, *([1] * (w.dim() - 1)))
    codes = torch.clamp(torch.round(w / view), -qmax, qmax).to(torch.int8)
    return codes, scale


def dequantize(codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return codes.float() * scale.reshape(-1, *([1] * (codes.dim() - 1)))


def input_scale_for(x: torch.Tensor, bits: int = 8) -> float:
    """The power-of-two step that covers ``max|x|`` with ``bits``-bit signed codes."""
    qmax = 2 ** (int(bits) - 1) - 1
    amax = float(x.detach().abs().max())
    if not math.isfinite(amax):
        raise ValueError("cannot quantise a non-finite input")
    if amax == 0:
        return 1.0
    return 2.0 ** math.ceil(math.log2(amax / qmax))


def quantize(net: ConvertedNet, per_channel: bool = False, bits: int = 8,
             calibration: Optional[torch.Tensor] = None,
             input_scale: Optional[float] = None) -> ConvertedNet:
    """A copy of ``net`` with int8 weights (``qweight``, ``wscale``; ``weight`` becomes the
    dequantised value) and, given ``calibration`` inputs or an explicit power-of-two
    ``input_scale``, int8 input codes. Biases stay float (they are rounded to the membrane
    grid only when the network is turned into a spiking one)."""
    out = net.clone()
    for layer in out.layers:
        codes, scale = quantize_tensor(layer.weight, bits, per_channel)
        layer.qweight, layer.wscale = codes, scale
        layer.weight = dequantize(codes, scale)
    if input_scale is not None:
        if not input_scale > 0 or math.log2(input_scale) != round(math.log2(input_scale)):
            raise ValueError(f"input_scale must be a positive power of two, got {input_scale}")
        out.input_scale = float(input_scale)
    elif calibration is not None:
        out.input_scale = input_scale_for(calibration, bits)
    return out


__all__ = ["quantize", "quantize_tensor", "dequantize", "input_scale_for", "snap_scale", "SCALE_BITS"]
