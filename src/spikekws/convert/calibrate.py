"""Per-layer firing thresholds from calibration data.

An IF neuron with threshold ``Θ`` (reset by subtraction) driven for ``T`` steps by a
constant current ``z`` emits ``n = min(floor(T z / Θ + φ), T)`` spikes (``0`` for
``z <= 0``), where ``φ = 0`` or ``φ = 1/2`` when the membrane starts at ``Θ/2`` (the
shift option). Its rate code ``Θ n / T`` is the *ClipFloor* function :func:`clip_floor`,
the spiking counterpart of the ReLU (or QCFS) activation ``a(z)``.

Methods (registry :data:`CALIBRATIONS`), each giving one ``Θ`` per layer, in the units
of that layer's ANN activations:

=============  =============================================================================
``mse``        the candidate ``Θ`` minimising ``mean((a(z) - clip_floor(z, Θ, T))**2)``
               over calibration activations (depends on ``T`` and on the shift)
``max``        the largest activation (Diehl et al. 2015 data-based normalisation)
``percentile`` the p-th percentile of the positive activations (Rueckauer et al. 2017;
               p = 99.9 by default)
``qcfs``       the learned clip value ``λ`` of each QCFS activation (Bu et al. 2022)
=============  =============================================================================
"""
from __future__ import annotations

import logging
import math
from typing import Callable, List, Optional, Sequence

import torch

from ..registry import Registry
from .network import AffineLayer, ConvertedNet

log = logging.getLogger("spikekws.convert")

CALIBRATIONS: Registry = Registry("calibration")


def clip_floor(z: torch.Tensor, threshold: float, timesteps: int, shift: bool = False,
               counts: bool = False) -> torch.Tensor:
    """``Θ/T * clamp(floor(T z / Θ + φ), 0, T)`` (``counts=True``: the spike count itself)."""
    phi = 0.5 if shift else 0.0
    n = torch.clamp(torch.floor(z * (timesteps / threshold) + phi), 0, timesteps)
    return n if counts else n * (threshold / timesteps)


# --------------------------------------------------------------------------- samples
@torch.no_grad()
def collect_preactivations(net: ConvertedNet, x: torch.Tensor, batch_size: int = 128,
                           max_samples: int = 1_000_000, seed: int = 0) -> List[torch.Tensor]:
    """Pre-activations ``z`` of every spiking layer on ``x`` (ANN inference of ``net``),
    as flat CPU tensors of at most about ``max_samples`` uniformly drawn values each."""
    if len(x) == 0:
        raise ValueError("calibration needs at least one input")
    gen = torch.Generator().manual_seed(seed)
    device = net.layers[0].weight.device
    samples: List[List[torch.Tensor]] = []
    keep: Optional[List[float]] = None
    for i in range(0, len(x), batch_size):
        _, zs = net.forward(x[i:i + batch_size].to(device), return_preactivations=True)
        if keep is None:
            per_sample = [z[0].numel() for z in zs]
            keep = [min(1.0, max_samples / (n * len(x))) for n in per_sample]
            samples = [[] for _ in zs]
        for j, z in enumerate(zs):
            flat = z.reshape(-1).float().cpu()
            if keep[j] < 1.0:
                k = max(1, int(round(keep[j] * flat.numel())))
                flat = flat[torch.randint(flat.numel(), (k,), generator=gen)]
            samples[j].append(flat)
    return [torch.cat(s) for s in samples]


# --------------------------------------------------------------------------- methods
def _target(layer: AffineLayer, z: torch.Tensor) -> torch.Tensor:
    return layer.activate(z)


@CALIBRATIONS.register("max")
def max_threshold(z: torch.Tensor, layer: AffineLayer, **_: object) -> Optional[float]:
    a = _target(layer, z)
    top = float(a.max()) if a.numel() else 0.0
    return top if top > 0 else None


@CALIBRATIONS.register("percentile")
def percentile_threshold(z: torch.Tensor, layer: AffineLayer, percentile: float = 99.9,
                         **_: object) -> Optional[float]:
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    a = _target(layer, z)
    a = a[a > 0]
    if a.numel() == 0:
        return None
    if a.numel() > 16_000_000:  # torch.quantile's limit
        a = a[torch.randperm(a.numel(), generator=torch.Generator().manual_seed(0))[:16_000_000]]
    return float(torch.quantile(a.double(), percentile / 100.0))


def _mse(z: torch.Tensor, a: torch.Tensor, candidates: torch.Tensor, timesteps: int,
         shift: bool, chunk: int = 16) -> torch.Tensor:
    errs = []
    phi = 0.5 if shift else 0.0
    for i in range(0, len(candidates), chunk):
        c = candidates[i:i + chunk, None]
        n = torch.clamp(torch.floor(z[None] * (timesteps / c) + phi), 0, timesteps)
        errs.append(((a[None] - n * (c / timesteps)) ** 2).double().mean(dim=1))
    return torch.cat(errs)


@CALIBRATIONS.register("mse")
def mse_threshold(z: torch.Tensor, layer: AffineLayer, timesteps: Optional[int] = None,
                  shift: bool = False, candidates: int = 200, **_: object) -> Optional[float]:
    """Grid search of ``Θ`` in ``(0, max a]`` (``candidates`` points, then a finer grid
    around the best one). Inputs with ``z <= 0`` cost nothing for every ``Θ`` and are
    skipped."""
    if timesteps is None or int(timesteps) < 1:
        raise ValueError(f"mse calibration needs the number of time steps, got {timesteps!r}")
    a = _target(layer, z)
    keep = z > 0
    z, a = z[keep].float(), a[keep].float()
    if z.numel() == 0 or float(a.max()) <= 0:
        return None
    top = float(a.max())
    grid = torch.linspace(top / candidates, top, candidates, dtype=torch.float32)
    errs = _mse(z, a, grid, int(timesteps), shift)
    best = int(errs.argmin())
    lo = grid[max(best - 1, 0)] if best > 0 else grid[0] / 2
    hi = grid[min(best + 1, candidates - 1)]
    fine = torch.linspace(float(lo), float(hi), 41, dtype=torch.float32)
    fine_errs = _mse(z, a, fine, int(timesteps), shift)
    if float(fine_errs.min()) < float(errs[best]):
        return float(fine[int(fine_errs.argmin())])
    return float(grid[best])


@CALIBRATIONS.register("qcfs")
def qcfs_threshold(z: torch.Tensor, layer: AffineLayer, **_: object) -> Optional[float]:
    if layer.activation != "qcfs" or layer.qcfs_lambda is None:
        raise ValueError(f"calibration 'qcfs' needs QCFS activations, but layer {layer.name!r} "
                         f"uses {layer.activation!r}; train with model.options.qcfs=L or choose "
                         f"mse, max or percentile")
    return float(layer.qcfs_lambda)


def thresholds_from_samples(net: ConvertedNet, samples: Sequence[torch.Tensor], method: str = "mse",
                            timesteps: Optional[int] = None, shift: bool = False,
                            percentile: float = 99.9) -> List[float]:
    """One threshold per spiking layer from :func:`collect_preactivations` output."""
    fn: Callable[..., Optional[float]] = CALIBRATIONS.get(method)
    layers = net.spiking_layers
    if len(samples) != len(layers):
        raise ValueError(f"got {len(samples)} sample sets for {len(layers)} spiking layers")
    out = []
    for layer, z in zip(layers, samples):
        theta = fn(z, layer, timesteps=timesteps, shift=shift, percentile=percentile)
        if theta is None or not math.isfinite(theta) or theta <= 0:
            log.warning("layer %s never activates on the calibration data; threshold set to 1",
                        layer.name)
            theta = 1.0
        out.append(float(theta))
    return out


def calibrate(net: ConvertedNet, x: torch.Tensor, method: str = "mse",
              timesteps: Optional[int] = None, shift: bool = False, percentile: float = 99.9,
              batch_size: int = 128, max_samples: int = 1_000_000, seed: int = 0) -> List[float]:
    """Thresholds ``Θ_l`` (ANN activation units) of every spiking layer of ``net`` from the
    calibration inputs ``x`` [N, *input_shape]."""
    CALIBRATIONS.get(method)  # unknown names fail before any work
    if method == "mse" and (timesteps is None or int(timesteps) < 1):
        raise ValueError(f"mse calibration needs the number of time steps, got {timesteps!r}")
    samples = collect_preactivations(net, x, batch_size, max_samples, seed)
    return thresholds_from_samples(net, samples, method, timesteps, shift, percentile)


__all__ = ["CALIBRATIONS", "calibrate", "clip_floor", "collect_preactivations",
           "thresholds_from_samples", "max_threshold", "percentile_threshold", "mse_threshold",
           "qcfs_threshold"]
