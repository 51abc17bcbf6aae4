"""Batched, seeded augmentation of feature sequences ``[B, T, F]`` (training only).

One affine resampling per batch (``grid_sample``) applies, per sample,
  * a frequency warp (scale of the feature axis about its origin: formant / vocal-tract
    length perturbation on a mel axis),
  * a time stretch (speaking-rate perturbation) and a time shift,
followed by SpecAugment-style time and frequency masks and additive Gaussian noise.
Values outside the input are filled with each sample's per-channel minimum (silence).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn


def _pair(name: str, value, lo_ok: float, hi_ok: float) -> Tuple[float, float]:
    if isinstance(value, (int, float)):
        value = (float(value), float(value))
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"augment option {name} must be a number or a [min, max] pair, got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if not (lo_ok <= lo <= hi <= hi_ok):
        raise ValueError(f"augment option {name} must satisfy {lo_ok} <= min <= max <= {hi_ok}, "
                         f"got {value!r}")
    return lo, hi


class FeatureAugment(nn.Module):
    """Random perturbations of ``x: [B, T, F]``; identity in eval mode.

    Args:
        freq_warp: range of the feature-axis scale factor, e.g. ``[0.9, 1.1]``.
        time_stretch: range of the time scale factor (> 1 slows down), e.g. ``[0.85, 1.15]``.
        shift: maximum time shift as a fraction of the sequence length (0..0.5).
        time_masks / time_mask_width: number of time masks and max width (frames).
        freq_masks / freq_mask_width: number of frequency masks and max width (channels).
        noise_std: std of additive Gaussian noise (features are usually normalised).
    """

    def __init__(self, freq_warp: Sequence[float] = (1.0, 1.0),
                 time_stretch: Sequence[float] = (1.0, 1.0), shift: float = 0.0,
                 time_masks: int = 0, time_mask_width: int = 10, freq_masks: int = 0,
                 freq_mask_width: int = 4, noise_std: float = 0.0) -> None:
        super().__init__()
        self.freq_warp = _pair("freq_warp", freq_warp, 0.5, 2.0)
        self.time_stretch = _pair("time_stretch", time_stretch, 0.5, 2.0)
        if not 0.0 <= float(shift) <= 0.5:
            raise ValueError(f"augment option shift must be in [0, 0.5], got {shift!r}")
        self.shift = float(shift)
        for name, v in (("time_masks", time_masks), ("time_mask_width", time_mask_width),
                        ("freq_masks", freq_masks), ("freq_mask_width", freq_mask_width)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"augment option {name} must be a non-negative integer, got {v!r}")
        self.time_masks, self.time_mask_width = time_masks, time_mask_width
        self.freq_masks, self.freq_mask_width = freq_masks, freq_mask_width
        if not float(noise_std) >= 0.0:
            raise ValueError(f"augment option noise_std must be >= 0, got {noise_std!r}")
        self.noise_std = float(noise_std)

    @property
    def geometric(self) -> bool:
        return self.freq_warp != (1.0, 1.0) or self.time_stretch != (1.0, 1.0) or self.shift > 0

    def _uniform(self, n: int, lo: float, hi: float, g: Optional[torch.Generator], device) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=g).to(device)

    def forward(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        if not self.training:
            return x
        b, t, f = x.shape
        dev = x.device
        if self.geometric:
            fw = self._uniform(b, *self.freq_warp, generator, dev)
            ts = self._uniform(b, *self.time_stretch, generator, dev)
            sh = self._uniform(b, -self.shift, self.shift, generator, dev) * 2.0
            floor = x.amin(dim=1, keepdim=True)  # [B, 1, F] silence level per channel
            # grid_sample coordinates in [-1, 1]: width = features, height = time.
            # Output feature j reads input feature j / fw (anchored at the lowest channel).
            theta = torch.zeros(b, 2, 3, device=dev, dtype=x.dtype)
            theta[:, 0, 0] = 1.0 / fw
            theta[:, 0, 2] = 1.0 / fw - 1.0
            theta[:, 1, 1] = 1.0 / ts
            theta[:, 1, 2] = sh
            grid = F.affine_grid(theta, (b, 1, t, f), align_corners=True)
            y = F.grid_sample((x - floor).unsqueeze(1), grid, mode="bilinear",
                              padding_mode="zeros", align_corners=True).squeeze(1)
            x = y + floor
        if self.time_masks or self.freq_masks:
            x = x.clone()
            fill = x.mean(dim=(1, 2), keepdim=True)
            for _ in range(self.time_masks):
                x = self._mask(x, 1, self.time_mask_width, generator, fill)
            for _ in range(self.freq_masks):
                x = self._mask(x, 2, self.freq_mask_width, generator, fill)
        if self.noise_std > 0:
            x = x + self.noise_std * torch.randn(x.shape, generator=generator).to(dev, x.dtype)
        return x

    @staticmethod
    def _mask(x, dim: int, max_width: int, g, fill) -> torch.Tensor:
        b, size = x.shape[0], x.shape[dim]
        width = (torch.rand(b, generator=g) * (max_width + 1)).long().clamp(max=size)
        start = (torch.rand(b, generator=g) * (size - width + 1).float()).long()
        pos = torch.arange(size)
        m = (pos[None, :] >= start[:, None]) & (pos[None, :] < (start + width)[:, None])  # [B, size]
        m = m.to(x.device)
        m = m[:, :, None] if dim == 1 else m[:, None, :]
        return torch.where(m, fill.expand_as(x), x)
