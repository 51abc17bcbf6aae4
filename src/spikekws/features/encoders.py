"""Spike encoders: audio features ``[B, T, F]`` -> spikes ``[B, T', F']`` in {0, 1}.

Registry :data:`ENCODERS` (build with :func:`build_encoder`):

* ``rate``: each feature becomes a firing probability per step. ``mode="poisson"``
  draws Bernoulli spikes (a discrete Poisson process) from a seeded generator;
  ``mode="deterministic"`` integrates the probability and fires when the running sum
  crosses the next integer (starting from 0.5), so a constant intensity ``p`` over
  ``N`` steps gives exactly ``round(p * N)`` spikes. ``repeat`` steps per frame.
* ``latency``: time-to-first-spike. Every frame opens a window of ``window`` steps; each
  channel whose intensity ``I`` reaches ``threshold`` fires once, at step
  ``round((1 - I) * (window - 1))`` (``curve="linear"``) or
  ``round((window - 1) * ln I / ln threshold)`` (``curve="log"``): stronger -> earlier.
* ``delta`` (send-on-delta): a reference level per channel follows the signal in steps
  of ``threshold``; an "up" spike when the signal has risen by ``threshold`` above it, a
  "down" spike when it has fallen as much. Output channels ``[up_0..up_{F-1},
  down_0..down_{F-1}]`` (``2F``). :meth:`DeltaEncoder.reconstruct` integrates the spikes
  back; the result stays within ``threshold`` of the input while the input moves by at
  most ``threshold`` per step (one spike per channel and step).

Intensities for ``rate``/``latency`` come from ``normalize``: ``"minmax"`` (default:
per utterance, over time and channels, to [0, 1]), ``"sigmoid"``, ``"clamp"`` (to
[0, 1]) or ``"none"``. ``delta`` works on the features themselves (``normalize="none"``).

Every encoder has ``time_factor`` (output steps per input frame) and
``num_outputs(in_features)``.
"""
from __future__ import annotations

import inspect
import math
import numbers
from typing import Any, Dict, Optional

import torch
from torch import Tensor, nn

from ..registry import Registry

__all__ = [
    "ENCODERS",
    "NORMALIZE_MODES",
    "DeltaEncoder",
    "LatencyEncoder",
    "RateEncoder",
    "build_encoder",
    "encoder_kwargs",
    "to_intensity",
]

ENCODERS: Registry = Registry("encoder")

#: Accepted values of the ``normalize`` argument.
NORMALIZE_MODES = ("minmax", "sigmoid", "clamp", "none")


def _bad(name: str, allowed: str, value: Any) -> ValueError:
    return ValueError(f"{name} must be {allowed}, got {value!r}")


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _check_normalize(normalize: Any) -> str:
    if normalize is None or normalize is False:
        return "none"
    if not isinstance(normalize, str) or normalize.lower() not in NORMALIZE_MODES:
        raise _bad("normalize", "one of " + ", ".join(repr(m) for m in NORMALIZE_MODES), normalize)
    return normalize.lower()


def _check_input(x: Any) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"features must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in (2, 3):
        raise ValueError(f"features must have shape [B, T, F] or [T, F], got {tuple(x.shape)}")
    return x if x.is_floating_point() else x.float()


def to_intensity(x: Tensor, mode: str = "minmax", eps: float = 1e-12) -> Tensor:
    """Map features ``[..., T, F]`` to intensities; see the module docstring for ``mode``."""
    mode = _check_normalize(mode)
    if mode == "minmax":
        lo = x.amin(dim=(-2, -1), keepdim=True)
        hi = x.amax(dim=(-2, -1), keepdim=True)
        span = hi - lo
        return torch.where(span > eps, (x - lo) / span.clamp_min(eps), torch.zeros_like(x))
    if mode == "sigmoid":
        return torch.sigmoid(x)
    if mode == "clamp":
        return x.clamp(0.0, 1.0)
    return x


class _Encoder(nn.Module):
    time_factor: int = 1

    def num_outputs(self, in_features: int) -> int:
        return int(in_features)

    def _batched(self, x: Any):
        x = _check_input(x)
        single = x.dim() == 2
        return (x.unsqueeze(0) if single else x), single


@ENCODERS.register("rate")
class RateEncoder(_Encoder):
    """Rate coding, ``[B, T, F]`` -> ``[B, T * repeat, F]``; see the module docstring.

    Args:
        mode: ``"poisson"`` (random, seeded) or ``"deterministic"``.
        repeat: output steps per input frame.
        gain: intensities are multiplied by this before clipping to [0, 1].
        normalize: how features become intensities.
        seed: seed of the module's own generator (poisson); ``forward(x, generator=g)``
            uses ``g`` instead. ``None`` uses torch's global generator.
    """

    def __init__(self, mode: str = "poisson", repeat: int = 1, gain: float = 1.0,
                 normalize: Optional[str] = "minmax", seed: Optional[int] = None) -> None:
        super().__init__()
        if mode not in ("poisson", "deterministic"):
            raise _bad("mode", "'poisson' or 'deterministic'", mode)
        if not _is_int(repeat) or repeat < 1:
            raise _bad("repeat", "an integer >= 1", repeat)
        if not _is_real(gain) or gain <= 0:
            raise _bad("gain", "> 0", gain)
        if seed is not None and (not _is_int(seed) or seed < 0):
            raise _bad("seed", "None or an integer >= 0", seed)
        self.mode = mode
        self.repeat = int(repeat)
        self.time_factor = self.repeat
        self.gain = float(gain)
        self.normalize = _check_normalize(normalize)
        self.seed = seed
        self._generators: Dict[Any, torch.Generator] = {}

    def _generator(self, device: torch.device) -> Optional[torch.Generator]:
        if self.seed is None:
            return None
        g = self._generators.get(device)
        if g is None:
            g = torch.Generator(device=device)
            g.manual_seed(int(self.seed))
            self._generators[device] = g
        return g

    def probabilities(self, x: Tensor) -> Tensor:
        """Per-step firing probabilities ``[B, T * repeat, F]``."""
        p = (to_intensity(x, self.normalize) * self.gain).clamp_(0.0, 1.0)
        return p.repeat_interleave(self.repeat, dim=-2) if self.repeat > 1 else p

    def forward(self, x: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        xb, single = self._batched(x)
        p = self.probabilities(xb)
        if self.mode == "deterministic":
            acc = torch.floor(0.5 + torch.cumsum(p.double(), dim=-2))
            prev = torch.cat([torch.zeros_like(acc[..., :1, :]), acc[..., :-1, :]], dim=-2)
            spikes = (acc - prev).clamp_(0.0, 1.0).to(p.dtype)
        else:
            g = generator if generator is not None else self._generator(p.device)
            u = torch.rand(p.shape, generator=g, device=p.device, dtype=p.dtype)
            spikes = (u < p).to(p.dtype)
        return spikes[0] if single else spikes

    def extra_repr(self) -> str:
        return (f"mode={self.mode!r}, repeat={self.repeat}, gain={self.gain:g}, "
                f"normalize={self.normalize!r}, seed={self.seed}")


@ENCODERS.register("latency")
class LatencyEncoder(_Encoder):
    """Time-to-first-spike coding, ``[B, T, F]`` -> ``[B, T * window, F]``.

    Args:
        window: steps per input frame; each channel fires at most once per window.
        threshold: intensities below it (in (0, 1]) do not fire.
        curve: ``"linear"`` or ``"log"`` mapping from intensity to spike time.
        normalize: how features become intensities.
    """

    def __init__(self, window: int = 10, threshold: float = 0.1, curve: str = "linear",
                 normalize: Optional[str] = "minmax") -> None:
        super().__init__()
        if not _is_int(window) or window < 1:
            raise _bad("window", "an integer >= 1", window)
        if not _is_real(threshold) or not 0.0 < threshold <= 1.0:
            raise _bad("threshold", "in (0, 1]", threshold)
        if curve not in ("linear", "log"):
            raise _bad("curve", "'linear' or 'log'", curve)
        if curve == "log" and threshold >= 1.0:
            raise _bad("threshold", "< 1 with curve='log'", threshold)
        self.window = int(window)
        self.time_factor = self.window
        self.threshold = float(threshold)
        self.curve = curve
        self.normalize = _check_normalize(normalize)

    def spike_steps(self, x: Tensor) -> Tensor:
        """Spike step within each window ``[B, T, F]`` (long), ``-1`` where no spike."""
        i = to_intensity(x, self.normalize).clamp(0.0, 1.0)
        fires = i >= self.threshold
        if self.curve == "linear":
            k = torch.round((1.0 - i) * (self.window - 1))
        else:
            safe = i.clamp_min(self.threshold)
            k = torch.round((self.window - 1) * torch.log(safe) / math.log(self.threshold))
        k = k.clamp_(0, self.window - 1).long()
        return torch.where(fires, k, torch.full_like(k, -1))

    def forward(self, x: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        xb, single = self._batched(x)
        b, t, f = xb.shape
        k = self.spike_steps(xb)
        out = torch.zeros(b, t, self.window + 1, f, dtype=xb.dtype, device=xb.device)
        # non-firing channels go to the extra slot `window`, which is cut off below
        slot = torch.where(k >= 0, k, torch.full_like(k, self.window)).unsqueeze(2)
        out.scatter_(2, slot, 1.0)
        out = out[:, :, : self.window].reshape(b, t * self.window, f)
        return out[0] if single else out

    def extra_repr(self) -> str:
        return (f"window={self.window}, threshold={self.threshold:g}, curve={self.curve!r}, "
                f"normalize={self.normalize!r}")


@ENCODERS.register("delta")
class DeltaEncoder(_Encoder):
    """Send-on-delta coding with up/down channels, ``[B, T, F]`` -> ``[B, T, 2F]``.

    Args:
        threshold: level step (> 0), in units of the (normalised) input.
        initial: starting reference level, ``"zero"`` or ``"first"`` (the first frame,
            which then produces no spikes).
        normalize: applied to the input first (default ``"none"``).
    """

    def __init__(self, threshold: float = 0.1, initial: str = "zero",
                 normalize: Optional[str] = "none") -> None:
        super().__init__()
        if not _is_real(threshold) or threshold <= 0:
            raise _bad("threshold", "> 0", threshold)
        if initial not in ("zero", "first"):
            raise _bad("initial", "'zero' or 'first'", initial)
        self.threshold = float(threshold)
        self.initial = initial
        self.normalize = _check_normalize(normalize)

    def num_outputs(self, in_features: int) -> int:
        return 2 * int(in_features)

    def forward(self, x: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        xb, single = self._batched(x)
        xb = to_intensity(xb, self.normalize)
        thr = self.threshold
        ref = xb[:, 0].clone() if self.initial == "first" else torch.zeros_like(xb[:, 0])
        up = torch.zeros_like(xb)
        down = torch.zeros_like(xb)
        for t in range(xb.shape[1]):  # the reference depends on all earlier spikes
            d = xb[:, t] - ref
            u = d >= thr
            v = d <= -thr
            up[:, t] = u.to(xb.dtype)
            down[:, t] = v.to(xb.dtype)
            ref = ref + thr * (u.to(xb.dtype) - v.to(xb.dtype))
        out = torch.cat([up, down], dim=-1)
        return out[0] if single else out

    def reconstruct(self, spikes: Tensor, initial: Optional[Tensor] = None) -> Tensor:
        """The reference level after each step, ``[B, T, 2F]`` -> ``[B, T, F]``.

        ``initial`` is the starting level (zeros for ``initial="zero"``; pass the first
        frame for ``initial="first"``).
        """
        f = spikes.shape[-1] // 2
        level = torch.cumsum(spikes[..., :f] - spikes[..., f:], dim=-2) * self.threshold
        return level if initial is None else level + initial.unsqueeze(-2)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold:g}, initial={self.initial!r}, normalize={self.normalize!r}"


def build_encoder(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered encoder (``"rate"``, ``"latency"``, ``"delta"``) by name.

    Unknown names raise KeyError listing the available ones; unknown keyword arguments
    raise TypeError naming the argument and listing the valid ones.
    """
    cls = ENCODERS.get(name)
    params = inspect.signature(cls).parameters
    valid = [p for p in params if p not in ("self", "args", "kwargs")]
    for key in kwargs:
        if key not in params:
            raise TypeError(f"unknown argument {key!r} for encoder {name!r}; valid arguments: "
                            f"{', '.join(valid)}")
    return cls(**kwargs)


def encoder_kwargs(module: nn.Module) -> Dict[str, Any]:
    """Constructor arguments that rebuild ``module``."""
    params = inspect.signature(type(module)).parameters
    return {p: getattr(module, p) for p in params if hasattr(module, p)}
