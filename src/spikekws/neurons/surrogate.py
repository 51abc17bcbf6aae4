"""Surrogate gradients for the Heaviside spike function.

Every surrogate computes ``H(x) = 1[x >= 0]`` in the forward pass and replaces the
derivative by a smooth pseudo-derivative ``g(x)`` in the backward pass, where ``x`` is
the membrane potential minus the threshold.

=============  ==============================================  ====================
name           pseudo-derivative g(x)                           default parameter
=============  ==============================================  ====================
boxcar         ``scale * 1[|x| <= width/2]``                     width=1, scale=1
fast_sigmoid   ``1 / (1 + slope*|x|)^2``  (SuperSpike)           slope=10
sigmoid        ``slope * σ(slope x) (1 - σ(slope x))``           slope=5
atan           ``alpha/2 / (1 + (π/2 * alpha * x)^2)``           alpha=2
triangle       ``max(0, 1 - |x|/width) / width``                  width=1
=============  ==============================================  ====================
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..registry import Registry

SURROGATES: Registry = Registry("surrogate")


class _SpikeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, deriv: Callable[[torch.Tensor], torch.Tensor]):  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.deriv = deriv
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_output * ctx.deriv(x), None


class Surrogate:
    """Base class: ``spike = surrogate(v - threshold)``; subclasses define ``derivative``."""

    name = "base"

    def derivative(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _SpikeFn.apply(x, self.derivative)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in vars(self).items())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"surrogate parameter {name} must be a positive number, got {value}")
    return value


@SURROGATES.register("boxcar")
class Boxcar(Surrogate):
    def __init__(self, width: float = 1.0, scale: float = 1.0) -> None:
        self.width = _positive("width", width)
        self.scale = _positive("scale", scale)

    def derivative(self, x):
        return (x.abs() <= self.width / 2).to(x.dtype) * self.scale


@SURROGATES.register("fast_sigmoid")
class FastSigmoid(Surrogate):
    def __init__(self, slope: float = 10.0) -> None:
        self.slope = _positive("slope", slope)

    def derivative(self, x):
        return 1.0 / (1.0 + self.slope * x.abs()) ** 2


@SURROGATES.register("sigmoid")
class Sigmoid(Surrogate):
    def __init__(self, slope: float = 5.0) -> None:
        self.slope = _positive("slope", slope)

    def derivative(self, x):
        s = torch.sigmoid(self.slope * x)
        return self.slope * s * (1.0 - s)


@SURROGATES.register("atan")
class ATan(Surrogate):
    def __init__(self, alpha: float = 2.0) -> None:
        self.alpha = _positive("alpha", alpha)

    def derivative(self, x):
        return (self.alpha / 2) / (1.0 + (math.pi / 2 * self.alpha * x) ** 2)


@SURROGATES.register("triangle")
class Triangle(Surrogate):
    def __init__(self, width: float = 1.0) -> None:
        self.width = _positive("width", width)

    def derivative(self, x):
        return torch.clamp(1.0 - x.abs() / self.width, min=0.0) / self.width


def get_surrogate(spec: "str | Surrogate", **kwargs) -> Surrogate:
    """Return a surrogate instance from a registry name or pass an instance through."""
    if isinstance(spec, Surrogate):
        if kwargs:
            raise TypeError("surrogate parameters given together with a surrogate instance")
        return spec
    return SURROGATES.build(spec, **kwargs)
