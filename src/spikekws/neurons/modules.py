"""Neuron modules: hold (trainable) physical parameters, call the kernels.

Parameters use NIR names and units: ``tau_mem``/``tau_adapt`` and ``dt`` in seconds,
``v_threshold``. Decay factors (``alpha = exp(-dt/tau_mem)``) are derived in ``forward``,
never stored. Modules hold no batch size and no state: ``forward(x, state=None)`` returns
``(spikes, state)`` with ``x: [T, B, H]`` time-first.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..registry import Registry
from . import functional as F
from .surrogate import Surrogate, get_surrogate

NEURONS: Registry = Registry("neuron")

Range = Union[float, Sequence[float]]


def _range(name: str, value: Range) -> Tuple[float, float]:
    if isinstance(value, (int, float)):
        lo = hi = float(value)
    else:
        if len(value) != 2:
            raise ValueError(f"{name} must be a number or a (min, max) pair, got {value!r}")
        lo, hi = float(value[0]), float(value[1])
    if not (0 < lo <= hi) or not math.isfinite(hi):
        raise ValueError(f"{name} must satisfy 0 < min <= max, got {value!r}")
    return lo, hi


def _uniform(size: int, lo: float, hi: float) -> torch.Tensor:
    return torch.empty(size).uniform_(lo, hi) if hi > lo else torch.full((size,), lo)


class _SpikingNeuron(nn.Module):
    """Shared parts: size, dt, threshold, surrogate, backend, membrane time constant."""

    def __init__(
        self,
        size: int,
        dt: float = 0.01,
        tau_mem: Range = (0.05, 0.25),
        v_threshold: float = 1.0,
        surrogate: Union[str, Surrogate] = "boxcar",
        learn_tau: bool = True,
        detach_reset: bool = False,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if int(size) <= 0:
            raise ValueError(f"size must be a positive integer, got {size}")
        if not dt > 0:
            raise ValueError(f"dt must be positive (seconds), got {dt}")
        if not v_threshold > 0:
            raise ValueError(f"v_threshold must be positive, got {v_threshold}")
        self.size = int(size)
        self.dt = float(dt)
        self.v_threshold = float(v_threshold)
        self.surrogate = get_surrogate(surrogate)
        self.detach_reset = bool(detach_reset)
        self.backend = backend
        lo, hi = _range("tau_mem", tau_mem)
        self.tau_mem_range = (lo, hi)
        self.tau_mem = nn.Parameter(_uniform(self.size, lo, hi), requires_grad=learn_tau)

    @property
    def alpha(self) -> torch.Tensor:
        lo, hi = self.tau_mem_range
        return torch.exp(-self.dt / self.tau_mem.clamp(lo, hi))

    def _fused_backend(self, x: torch.Tensor) -> bool:
        backend = self.backend
        if backend == "auto":
            backend = F.resolve_backend("lif", x.device.type)
        return backend == "cpp" and not (self._forward_hooks or self._forward_pre_hooks)

    def extra_repr(self) -> str:
        return (f"size={self.size}, dt={self.dt}, v_threshold={self.v_threshold}, "
                f"surrogate={self.surrogate!r}, backend={self.backend!r}")


class _Recurrent:
    """Mixin: a recurrent weight matrix with zero diagonal (no self-connection)."""

    def _init_recurrent(self, recurrent: bool) -> None:
        self.recurrent = bool(recurrent)
        if self.recurrent:
            w = torch.empty(self.size, self.size)
            nn.init.orthogonal_(w)
            self.recurrent_weight = nn.Parameter(w)
        else:
            self.register_parameter("recurrent_weight", None)

    def _rec(self) -> Optional[torch.Tensor]:
        if self.recurrent_weight is None:
            return None
        return self.recurrent_weight * (1.0 - torch.eye(self.size, device=self.recurrent_weight.device,
                                                           dtype=self.recurrent_weight.dtype))


@NEURONS.register("lif")
class LIF(_SpikingNeuron, _Recurrent):
    """Leaky integrate-and-fire neuron (equations in :mod:`spikekws.neurons.functional.lif`)."""

    def __init__(self, size: int, *, recurrent: bool = False, **kwargs) -> None:
        super().__init__(size, **kwargs)
        self._init_recurrent(recurrent)

    def forward(self, x: torch.Tensor, state: Optional[F.LIFState] = None):
        return F.lif_scan(x, state, alpha=self.alpha, surrogate=self.surrogate,
                          v_threshold=self.v_threshold, recurrent_weight=self._rec(),
                          detach_reset=self.detach_reset, backend=self.backend)

    def fused_linear(self, x: torch.Tensor, weight: torch.Tensor,
                     bias: Optional[torch.Tensor] = None, state: Optional[F.LIFState] = None):
        """``self(x W^T + bias)`` in one fused pass on the C++ backend (inference only:
        nothing requires a gradient) as ``(spikes, state, firing rate)``, or None where it
        does not apply."""
        if not self._fused_backend(x):
            return None
        from .functional.backends import cpp
        return cpp.lif_linear_scan_cpp(x, weight, bias, state, self.alpha, self.surrogate,
                                       self.v_threshold, self._rec())

    def step(self, x_t: torch.Tensor, state: Optional[F.LIFState] = None):
        state = F.lif_init(x_t) if state is None else state
        return F.lif_step(x_t, state, self.alpha, self.surrogate, self.v_threshold, self._rec(),
                          self.detach_reset)


@NEURONS.register("rlif")
class RLIF(LIF):
    """Recurrent LIF: LIF with a learned recurrent weight matrix (zero diagonal)."""

    def __init__(self, size: int, **kwargs) -> None:
        kwargs.pop("recurrent", None)
        super().__init__(size, recurrent=True, **kwargs)


@NEURONS.register("adlif")
class AdLIF(_SpikingNeuron, _Recurrent):
    """Adaptive LIF (equations in :mod:`spikekws.neurons.functional.adlif`).

    ``a`` is clamped to ``a_range`` and ``b`` to ``b_range`` (sparch: [-1, 1] and [0, 2]).
    """

    def __init__(
        self,
        size: int,
        *,
        tau_adapt: Range = (0.3, 3.5),
        a_range: Tuple[float, float] = (-1.0, 1.0),
        b_range: Tuple[float, float] = (0.0, 2.0),
        recurrent: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(size, **kwargs)
        lo, hi = _range("tau_adapt", tau_adapt)
        self.tau_adapt_range = (lo, hi)
        self.tau_adapt = nn.Parameter(_uniform(self.size, lo, hi),
                                      requires_grad=self.tau_mem.requires_grad)
        self.a_range = (float(a_range[0]), float(a_range[1]))
        self.b_range = (float(b_range[0]), float(b_range[1]))
        self.a = nn.Parameter(torch.empty(self.size).uniform_(*self.a_range))
        self.b = nn.Parameter(torch.empty(self.size).uniform_(*self.b_range))
        self._init_recurrent(recurrent)

    @property
    def beta(self) -> torch.Tensor:
        lo, hi = self.tau_adapt_range
        return torch.exp(-self.dt / self.tau_adapt.clamp(lo, hi))

    def _ab(self):
        return self.a.clamp(*self.a_range), self.b.clamp(*self.b_range)

    def forward(self, x: torch.Tensor, state: Optional[F.AdLIFState] = None):
        a, b = self._ab()
        return F.adlif_scan(x, state, alpha=self.alpha, beta=self.beta, a=a, b=b,
                            surrogate=self.surrogate, v_threshold=self.v_threshold,
                            recurrent_weight=self._rec(), detach_reset=self.detach_reset,
                            backend=self.backend)

    def fused_linear(self, x: torch.Tensor, weight: torch.Tensor,
                     bias: Optional[torch.Tensor] = None, state: Optional[F.AdLIFState] = None):
        """``self(x W^T + bias)`` in one fused pass on the C++ backend (inference only), or
        None where it does not apply; see :meth:`LIF.fused_linear`."""
        if not self._fused_backend(x):
            return None
        from .functional.backends import cpp
        a, b = self._ab()
        return cpp.adlif_linear_scan_cpp(x, weight, bias, state, self.alpha, self.beta, a, b,
                                         self.surrogate, self.v_threshold, self._rec())

    def step(self, x_t: torch.Tensor, state: Optional[F.AdLIFState] = None):
        state = F.adlif_init(x_t) if state is None else state
        a, b = self._ab()
        return F.adlif_step(x_t, state, self.alpha, self.beta, a, b, self.surrogate,
                            self.v_threshold, self._rec(), self.detach_reset)


@NEURONS.register("radlif")
class RadLIF(AdLIF):
    """Recurrent adaptive LIF."""

    def __init__(self, size: int, **kwargs) -> None:
        kwargs.pop("recurrent", None)
        super().__init__(size, recurrent=True, **kwargs)


@NEURONS.register("if")
class IF(nn.Module):
    """Integrate-and-fire with reset by subtraction (no leak, no learned parameters)."""

    def __init__(self, size: Optional[int] = None, *, v_threshold: float = 1.0,
                 surrogate: Union[str, Surrogate] = "boxcar", backend: str = "auto", **_ignored) -> None:
        super().__init__()
        if not v_threshold > 0:
            raise ValueError(f"v_threshold must be positive, got {v_threshold}")
        self.size = size
        self.v_threshold = float(v_threshold)
        self.surrogate = get_surrogate(surrogate)
        self.backend = backend

    def forward(self, x: torch.Tensor, state: Optional[F.LIFState] = None):
        return F.if_scan(x, state, surrogate=self.surrogate, v_threshold=self.v_threshold,
                         backend=self.backend)

    def step(self, x_t: torch.Tensor, state: Optional[F.LIFState] = None):
        state = F.lif_init(x_t) if state is None else state
        return F.if_step(x_t, state, self.surrogate, self.v_threshold)


class LI(nn.Module):
    """Non-spiking leaky integrator (readout membrane). forward: x [T,B,H] -> (v [T,B,H], state)."""

    def __init__(self, size: int, *, dt: float = 0.01, tau_mem: Range = (0.05, 0.25),
                 learn_tau: bool = True, backend: str = "auto") -> None:
        super().__init__()
        self.size = int(size)
        self.dt = float(dt)
        lo, hi = _range("tau_mem", tau_mem)
        self.tau_mem_range = (lo, hi)
        self.tau_mem = nn.Parameter(_uniform(self.size, lo, hi), requires_grad=learn_tau)
        self.backend = backend

    @property
    def alpha(self) -> torch.Tensor:
        lo, hi = self.tau_mem_range
        return torch.exp(-self.dt / self.tau_mem.clamp(lo, hi))

    def forward(self, x: torch.Tensor, state: Optional[F.LIState] = None):
        return F.li_scan(x, state, alpha=self.alpha, backend=self.backend)

    def step(self, x_t: torch.Tensor, state: Optional[F.LIState] = None):
        state = F.LIState(torch.zeros_like(x_t)) if state is None else state
        return F.li_step(x_t, state, self.alpha)


def build_neuron(name: str, size: int, **kwargs) -> nn.Module:
    return NEURONS.build(name, size, **kwargs)
