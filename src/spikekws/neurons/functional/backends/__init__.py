"""Fused scan backends, picked through :data:`spikekws.neurons.functional.BACKENDS`.

``cpp``: CPU kernels from a C++ extension built on first use (:mod:`.cpp`); ``triton``:
kernels for CUDA tensors (:mod:`.triton_scan`). Modules import nothing heavy here: the
build happens at the first fused call.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Tuple

import torch

from ...surrogate import ATan, Boxcar, FastSigmoid, Sigmoid, Surrogate, Triangle


def surrogate_spec(surrogate: Surrogate) -> Optional[Tuple[int, float, float]]:
    """(id, p1, p2) of the fused kernels' pseudo-derivative, None for surrogates they do not
    know (the caller then falls back to the torch reference).

    Matched on the exact class: a subclass may redefine ``derivative``.
    """
    kind = type(surrogate)
    if kind is Boxcar:
        return 0, surrogate.width / 2, surrogate.scale
    if kind is FastSigmoid:
        return 1, surrogate.slope, 0.0
    if kind is Sigmoid:
        return 2, surrogate.slope, 0.0
    if kind is ATan:
        return 3, surrogate.alpha / 2, math.pi / 2 * surrogate.alpha
    if kind is Triangle:
        return 4, surrogate.width, 0.0
    return None


# Eligibility of the arguments for the fused kernels; None (or not ok) sends the call to
# the torch reference.

def per_neuron(p: Any, x: torch.Tensor) -> Optional[torch.Tensor]:
    """A parameter as a contiguous [H] tensor (differentiable expand), or None if it is
    not a scalar or [H] of x's dtype and device."""
    H = x.shape[-1]
    if not isinstance(p, torch.Tensor):
        if isinstance(p, (int, float)) and not isinstance(p, bool):
            return torch.full((H,), float(p), dtype=x.dtype, device=x.device)
        return None
    if p.dtype != x.dtype or p.device != x.device:
        return None
    if p.dim() == 0 or (p.dim() == 1 and p.shape[0] == 1):
        return p.reshape(1).expand(H).contiguous()
    if p.dim() == 1 and p.shape[0] == H:
        return p.contiguous()
    return None


def state_field(f: Any, x: torch.Tensor) -> Optional[torch.Tensor]:
    """A state field [B..., H] of x's dtype and device as a contiguous [M, H], else None."""
    if not isinstance(f, torch.Tensor) or f.shape != x.shape[1:] or f.dtype != x.dtype \
            or f.device != x.device:
        return None
    return f.reshape(-1, x.shape[-1]).contiguous()


def recurrent_weight_arg(w: Optional[torch.Tensor], x: torch.Tensor
                         ) -> Tuple[bool, Optional[torch.Tensor]]:
    """(ok, contiguous V): no weight is ok; a weight must be [H, H] of x's dtype and device."""
    if w is None:
        return True, None
    H = x.shape[-1]
    ok = (isinstance(w, torch.Tensor) and w.shape == (H, H) and w.dtype == x.dtype
          and w.device == x.device)
    return ok, (w.contiguous() if ok else None)


def needs_grad(tensors: Sequence[Optional[torch.Tensor]]) -> bool:
    """Whether a call on these tensors must record a backward (grad mode on and one of them
    requires grad); otherwise the kernels run their forward without saving anything."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
