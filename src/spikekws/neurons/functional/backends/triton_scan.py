"""Fused GPU scans written in Triton (LIF/RLIF and AdLIF/RadLIF), for CUDA tensors.

Each program owns a block of the ``[B * H]`` neurons and runs the time loop in registers:
forward writes the spikes and the membrane (and adaptation) trace, backward walks time in
reverse with the carried gradients, as the C++ CPU kernels do (``scan_cpu.cpp``); the
per-element parameter gradients are summed over the batch afterwards. Without recurrence a
forward or a backward is one launch. With a recurrent weight ``V`` each step needs
``s_{t-1} V^T`` from all neurons of the sample, so the loop over time stays in Python: per
step one GEMM (cuBLAS) and one launch of the same kernels on one step (forward), one launch
and one GEMM for ``d/ds_{t-1}`` (backward), and one GEMM for ``dV`` over all steps at the end.
Saved for backward: the membrane (and adaptation) trace and, with recurrence, the input
current; spikes are recomputed as ``v - theta >= 0``.

``triton`` is optional (``pip install triton``; it ships with CUDA builds of torch on
Linux). On CPU tensors the scans use the torch reference unless Triton's interpreter is on
(``TRITON_INTERPRET=1`` before Triton is imported), which runs the same kernels on CPU
with NumPy: slow, for tests. Inputs the kernels do not cover (other surrogates, dtypes other
than float32/float64, per-sample parameters, tracing) use the reference as well. Compiled
kernels take the threshold and the surrogate's constants as fp32 scalars, so float64 inputs
agree with the reference to the fp32 rounding of those constants.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import torch
from torch.autograd.function import once_differentiable

from ..adlif import adlif_scan_torch
from ..lif import lif_scan_torch
from ..state import AdLIFState, LIFState
from . import needs_grad, per_neuron, recurrent_weight_arg, state_field, surrogate_spec

BLOCK = 256
_kernels: Any = None
_import_error: Optional[str] = None


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "").strip() not in ("", "0")


def _load() -> Any:
    """The jitted kernels (module-level cache); None when triton cannot be imported."""
    global _kernels, _import_error
    if _kernels is not None or _import_error is not None:
        return _kernels
    try:
        _kernels = _define_kernels()
    except Exception as e:  # ImportError, or a triton too old for these kernels
        _import_error = f"{type(e).__name__}: {e}"
        _kernels = None
    return _kernels


def available() -> bool:
    """True where the kernels can run: triton importable and CUDA present (or the
    interpreter on)."""
    if not (torch.cuda.is_available() or interpreting()):
        return False
    return _load() is not None


def import_error() -> Optional[str]:
    return _import_error


def _define_kernels():
    import importlib

    from . import triton_kernels

    # Re-run the definitions when the interpreter setting changed since they were made.
    return importlib.reload(triton_kernels)


# --------------------------------------------------------------------------------------
# Launch helpers. Shapes: x [T, M, H]; states [M, H]; parameters [H]; all contiguous.
# --------------------------------------------------------------------------------------

def _grid(MH: int):
    return (triton_cdiv(MH, BLOCK),)


def triton_cdiv(a: int, b: int) -> int:
    return (a + b - 1) // b


def _forward(x, v0, w0, s0, params, weight, theta, adapt):
    """-> (spikes, v_trace, w_trace or None, current trace or None)."""
    k = _load()
    T, M, H = x.shape
    MH = M * H
    alpha, beta, a, b = params
    spikes = torch.empty_like(x)
    v_tr = torch.empty_like(x)
    w_tr = torch.empty_like(x) if adapt else v_tr
    w0_ = w0 if adapt else v0
    beta_, a_, b_ = (beta, a, b) if adapt else (alpha, alpha, alpha)
    if weight is None:
        k.forward[_grid(MH)](x, v0, w0_, s0, alpha, beta_, a_, b_, spikes, v_tr, w_tr, T, MH, H,
                             theta, ADAPT=adapt, BLOCK=BLOCK)
        return spikes, v_tr, (w_tr if adapt else None), None
    cur = torch.empty_like(x)
    wt = weight.t()
    for t in range(T):
        s_prev = s0 if t == 0 else spikes[t - 1]
        torch.addmm(x[t], s_prev, wt, out=cur[t])
        vp = v0 if t == 0 else v_tr[t - 1]
        wp = w0_ if t == 0 else w_tr[t - 1]
        k.forward[_grid(MH)](cur[t], vp, wp, s_prev, alpha, beta_, a_, b_, spikes[t], v_tr[t],
                             w_tr[t], 1, MH, H, theta, ADAPT=adapt, BLOCK=BLOCK)
    return spikes, v_tr, (w_tr if adapt else None), cur


def _backward(g_spikes, g_v, g_w, cur, v_tr, w_tr, v0, w0, s0, params, weight, theta,
              detach_reset, spec, adapt):
    """-> (gx, [g_alpha, g_beta, g_a, g_b][:n], g_weight or None, gv0, gw0, gs0)."""
    k = _load()
    T, M, H = cur.shape
    MH = M * H
    sid, p1, p2 = spec
    alpha, beta, a, b = params
    gx = torch.empty_like(cur)
    cv = g_v.clone().contiguous()
    cw = g_w.clone().contiguous() if adapt else cv
    cs = torch.zeros_like(v0)
    acc = torch.zeros((4 if adapt else 1, M, H), dtype=cur.dtype, device=cur.device)
    cs_coef = torch.zeros_like(alpha) if detach_reset else (alpha * (-theta)).contiguous()
    beta_, a_, b_ = (beta, a, b) if adapt else (alpha, alpha, alpha)
    w_tr_ = w_tr if adapt else v_tr
    w0_ = w0 if adapt else v0
    common = dict(ADAPT=adapt, SID=sid, BLOCK=BLOCK)
    if weight is None:
        k.backward[_grid(MH)](g_spikes, cur, v_tr, w_tr_, v0, w0_, s0, alpha, beta_, a_, b_,
                              cs_coef, gx, cv, cw, cs, acc, T, MH, H, theta, p1, p2, **common)
        g_weight = None
    else:
        for t in range(T - 1, -1, -1):
            vp = v0 if t == 0 else v_tr[t - 1]
            wp = w0_ if t == 0 else w_tr_[t - 1]
            sp = s0 if t == 0 else (v_tr[t - 1] - theta >= 0).to(cur.dtype)
            # One step: the kernel sees [v_{t-1}] as "v0" and [v_t] as the trace.
            k.backward[_grid(MH)](g_spikes[t], cur[t], v_tr[t], w_tr_[t], vp, wp, sp.contiguous(),
                                  alpha, beta_, a_, b_, cs_coef, gx[t], cv, cw, cs, acc, 1, MH, H,
                                  theta, p1, p2, **common)
            cs.addmm_(gx[t], weight)  # d/ds_{t-1} through I_t = x_t + s_{t-1} V^T
        s_prev = torch.cat([s0[None], (v_tr[:-1] - theta >= 0).to(cur.dtype)])
        g_weight = gx.reshape(T * M, H).t().mm(s_prev.reshape(T * M, H))
    sums = acc.sum(1)
    return gx, list(sums), g_weight, cv, (cw if adapt else None), cs


class _Scan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, v0, w0, s0, alpha, beta, a, b, weight, theta, detach_reset, spec,  # type: ignore[override]
                adapt):
        spikes, v_tr, w_tr, cur = _forward(x, v0, w0, s0, (alpha, beta, a, b), weight, theta,
                                           adapt)
        ctx.save_for_backward(x if cur is None else cur, v_tr, w_tr, v0, w0, s0, alpha, beta,
                              a, b, weight)
        ctx.cfg = (theta, detach_reset, spec, adapt)
        v_last = v_tr[-1].clone()
        w_last = w_tr[-1].clone() if adapt else v_last.new_zeros(())
        return spikes, v_last, w_last

    @staticmethod
    @once_differentiable
    def backward(ctx, g_spikes, g_v, g_w):  # type: ignore[override]
        cur, v_tr, w_tr, v0, w0, s0, alpha, beta, a, b, weight = ctx.saved_tensors
        theta, detach_reset, spec, adapt = ctx.cfg
        g_v = torch.zeros_like(v0) if g_v is None else g_v
        g_w = torch.zeros_like(v0) if (g_w is None or not adapt) else g_w
        g_spikes = torch.zeros_like(cur) if g_spikes is None else g_spikes.contiguous()
        gx, sums, g_weight, gv0, gw0, gs0 = _backward(
            g_spikes, g_v, g_w, cur, v_tr, w_tr, v0, w0 if adapt else None, s0,
            (alpha, beta, a, b), weight, theta, detach_reset, spec, adapt)
        g_alpha = sums[0]
        g_beta, g_a, g_b = (sums[1], sums[2], sums[3]) if adapt else (None, None, None)
        return (gx, gv0, gw0, gs0, g_alpha, g_beta, g_a, g_b, g_weight, None, None, None, None)


# --------------------------------------------------------------------------------------
# Scans with the reference signatures
# --------------------------------------------------------------------------------------

def _eligible(x, v_threshold) -> bool:
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[0] == 0:
        return False
    if x.dtype not in (torch.float32, torch.float64):
        return False
    if x.device.type != "cuda" and not (x.device.type == "cpu" and interpreting()):
        return False
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False
    if not isinstance(v_threshold, (int, float)) or isinstance(v_threshold, bool):
        return False
    return _load() is not None


def _run(x, state, params, recurrent_weight, v_threshold, detach_reset, spec, adapt):
    """None when an input is not covered (the caller then uses the reference)."""
    ps = [per_neuron(p, x) for p in params]
    ok_w, w = recurrent_weight_arg(recurrent_weight, x)
    n_state = 3 if adapt else 2
    if state is None:
        z = x.new_zeros(x[0].reshape(-1, x.shape[-1]).shape)
        fields = [z] * n_state
    else:
        fields = [state_field(f, x) for f in state]
    if any(p is None for p in ps) or not ok_w or any(f is None for f in fields):
        return None
    T, H = x.shape[0], x.shape[-1]
    xs = x.reshape(T, -1, H).contiguous()
    if adapt:
        v0, w0, s0 = fields
        alpha, beta, a, b = ps
    else:
        (v0, s0), w0 = fields, None
        alpha, beta, a, b = ps[0], None, None, None
    theta = float(v_threshold)
    if needs_grad((xs, v0, w0, s0, alpha, beta, a, b, w)):
        spikes, v_last, w_last = _Scan.apply(xs, v0, w0, s0, alpha, beta, a, b, w, theta,
                                             bool(detach_reset), spec, adapt)
    else:
        with torch.no_grad():
            spikes, v_tr, w_tr, _ = _forward(xs, v0, w0, s0, (alpha, beta, a, b), w, theta,
                                             adapt)
        v_last, w_last = v_tr[-1], (w_tr[-1] if adapt else None)
    spikes = spikes.reshape(x.shape)
    shape = x.shape[1:]
    if adapt:
        return spikes, AdLIFState(v_last.reshape(shape), w_last.reshape(shape), spikes[-1])
    return spikes, LIFState(v_last.reshape(shape), spikes[-1])


def lif_scan_triton(x, state, alpha, surrogate, v_threshold=1.0, recurrent_weight=None,
                    detach_reset=False):
    """Fused LIF/RLIF scan on CUDA. x: [T, B, H] -> (spikes [T, B, H], LIFState)."""
    spec = surrogate_spec(surrogate)
    if spec is not None and _eligible(x, v_threshold):
        out = _run(x, state, (alpha,), recurrent_weight, v_threshold, detach_reset, spec, False)
        if out is not None:
            return out
    return lif_scan_torch(x, state, alpha, surrogate, v_threshold, recurrent_weight, detach_reset)


def adlif_scan_triton(x, state, alpha, beta, a, b, surrogate, v_threshold=1.0,
                      recurrent_weight=None, detach_reset=False):
    """Fused AdLIF/RadLIF scan on CUDA. x: [T, B, H] -> (spikes [T, B, H], AdLIFState)."""
    spec = surrogate_spec(surrogate)
    if spec is not None and _eligible(x, v_threshold):
        out = _run(x, state, (alpha, beta, a, b), recurrent_weight, v_threshold, detach_reset,
                   spec, True)
        if out is not None:
            return out
    return adlif_scan_torch(x, state, alpha, beta, a, b, surrogate, v_threshold,
                            recurrent_weight, detach_reset)


SCANS = {"lif": lif_scan_triton, "adlif": adlif_scan_triton}

__all__ = ["SCANS", "available", "import_error", "interpreting", "lif_scan_triton",
           "adlif_scan_triton"]
