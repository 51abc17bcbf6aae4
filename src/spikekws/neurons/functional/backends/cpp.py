"""Fused CPU scans from a C++ extension (``scan_cpu.cpp``), built on first use.

Forward and backward each run one pass over time in C++ (elementwise loops over the
``[B, H]`` state; for recurrent weights one product per step, sparse while spikes are) and
keep for the backward only the membrane trace (and the adaptation trace for AdLIF) plus the
input current, instead of the autograd graph of about ten nodes per step that the plain
torch loop builds. Results equal the torch reference: spikes and states bit for bit without
recurrence, to rounding with it; gradients to rounding.

The same extension provides the layer around the neurons: an event-driven linear product
(:func:`linear_cpp`: with sparse inputs such as spikes, the sum of the weights of the non-zero
inputs, and the weight gradient over the same entries) and a dropout whose mask is recomputed
from a seed (:func:`dropout_cpp`). On x86-64 CPUs with AVX-512, float products use
hand-vectorised kernels: the event product lists each row's events with compress
instructions, and dense products (real-valued features into the first layer) run a
register-tiled kernel with fused multiply-adds; ``SPIKEKWS_SCAN_ISA=avx2`` or ``default``
caps the instruction set those kernels pick (read once per process; for tests).

The extension is compiled once per machine into ``$TORCH_EXTENSIONS_DIR/<name>`` or, when
that is unset, ``~/.cache/spikekws/torch_extensions/<name>`` (``$XDG_CACHE_HOME`` is
honoured). If it cannot be built (no compiler, no ninja, ...) one warning is logged and the
scans fall back to the torch reference. ``SPIKEKWS_NO_EXTENSIONS=1`` skips the build.

The kernels take their large outputs (spikes, traces, products: blocks of 1 MB and more)
from a pool that keeps freed blocks for the next call of the same size, instead of
returning them to the system and faulting them in again page by page (for a [100, 32, 512]
layer that costs as much as the scan itself). ``SPIKEKWS_POOL_MB`` caps the memory kept
(default 1024; 0 turns it off, read once per process); :func:`memory_pool` reports it and
:func:`release_memory_pool` frees it.

Inputs the kernels do not cover fall back to the reference as well: surrogates other than
the registered classes, non-CPU tensors, mixed dtypes, non-float dtypes, per-sample
parameters, tensor thresholds, empty sequences; so do calls under ``torch.compile``,
``torch.jit.trace`` and ONNX export.
"""
from __future__ import annotations

import logging
import math
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any, Optional

import torch
from torch.autograd.function import once_differentiable

from ..adlif import adlif_scan_torch
from . import needs_grad, per_neuron, recurrent_weight_arg, state_field, surrogate_spec
from ..li import li_scan_torch
from ..lif import lif_scan_torch
from ..state import AdLIFState, LIFState, LIState

log = logging.getLogger("spikekws.neurons")

SOURCE = Path(__file__).with_name("scan_cpu.cpp")
DISABLE_ENV = "SPIKEKWS_NO_EXTENSIONS"
_CFLAGS = ["-O3", "-ffp-contract=off", "-fno-trapping-math", "-fopenmp"]
_LDFLAGS = ["-fopenmp"]

# Every op the Python side calls; a loaded library must have them all.
_OPS = ("lif_forward", "lif_backward", "adlif_forward", "adlif_backward", "li_forward",
        "li_backward", "event_linear_forward", "event_linear_weight_grad", "masked_dropout",
        "event_min_outputs", "pool_info", "pool_release", "lif_linear_forward",
        "adlif_linear_forward", "fold_scale")

_lock = threading.Lock()
_ops: Any = None
_tried = False
_error: Optional[str] = None


def extension_name() -> str:
    """Library name; carries the torch and Python versions, whose ABIs it depends on."""
    tag = f"spikekws_scan_cpu_torch{torch.__version__}_py{sys.version_info[0]}{sys.version_info[1]}"
    return re.sub(r"[^A-Za-z0-9_]", "_", tag)


def build_directory(suffix: str = "") -> Path:
    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if root:
        base = Path(root)
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        base = Path(cache) / "spikekws" / "torch_extensions"
    return base / (extension_name() + suffix)


def _ninja_on_path() -> None:
    """torch runs ``ninja`` from PATH; the ``ninja`` wheel's binary is not on it when the
    interpreter is called without activating its virtual environment."""
    try:
        import ninja  # type: ignore[import-not-found]
    except ImportError:
        return
    bin_dir = getattr(ninja, "BIN_DIR", None)
    path = os.environ.get("PATH", "")
    if bin_dir and bin_dir not in path.split(os.pathsep):
        os.environ["PATH"] = bin_dir + (os.pathsep + path if path else "")


def _build(verbose: bool = False) -> Any:
    from torch.utils import cpp_extension

    _ninja_on_path()

    # Without OpenMP (e.g. Apple clang) the kernels still build, single-threaded.
    attempts = [("", _CFLAGS, _LDFLAGS),
                ("_serial", [f for f in _CFLAGS if f != "-fopenmp"], [])]
    first_error: Optional[Exception] = None
    for suffix, cflags, ldflags in attempts:
        directory = build_directory(suffix)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            cpp_extension.load(
                name=extension_name() + suffix, sources=[str(SOURCE)], extra_cflags=cflags,
                extra_ldflags=ldflags, build_directory=str(directory), is_python_module=False,
                verbose=verbose,
            )
            ops = torch.ops.spikekws_scan
            missing = [op for op in _OPS if not hasattr(ops, op)]
            if missing:  # a library built from an older source, e.g. by another process
                raise RuntimeError(f"stale extension in {directory}: no {', '.join(missing)}")
            return ops
        except Exception as e:  # try the next flags, report the first failure
            first_error = first_error or e
    raise first_error or RuntimeError("no build attempted")


def _summary(e: Exception) -> str:
    """One line for the log: the first compiler error if there is one, else the last line."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    pick = next((ln for ln in lines if "error" in ln.lower() and ln is not lines[0]), None)
    text = pick or (lines[-1] if lines else "")
    return f"{type(e).__name__}: {text[:300]}"


def load(verbose: bool = False) -> Any:
    """The compiled ops (``torch.ops.spikekws_scan``), building them if needed; None if that
    is impossible (the reason is in :func:`build_error`, and logged once as a warning)."""
    global _ops, _tried, _error
    if _tried:
        return _ops
    with _lock:
        if _tried:
            return _ops
        if os.environ.get(DISABLE_ENV, "").strip() not in ("", "0"):
            _error = f"disabled by {DISABLE_ENV}"
            log.info("fused C++ neuron kernels %s; using the torch reference scans", _error)
        else:
            try:
                _ops = _build(verbose)
            except Exception as e:  # any build or load failure means: use the reference
                _error = _summary(e)
                log.warning(
                    "could not build the fused C++ neuron kernels (%s); using the torch "
                    "reference scans, which are slower. A C++ compiler and ninja "
                    "(pip install ninja) are needed; set %s=1 to skip the build.",
                    _error, DISABLE_ENV)
                _ops = None
        _tried = True
        return _ops


def loaded() -> Any:
    """The ops if an earlier call already loaded them, else None (never builds)."""
    return _ops if _tried else None


def available() -> bool:
    """True when the extension is (or can be) built and loaded; builds it on first call."""
    return load() is not None


def build_error() -> Optional[str]:
    return _error


# --------------------------------------------------------------------------------------
# Eligibility: what the kernels cover; everything else goes to the reference.
# --------------------------------------------------------------------------------------

def _tracing() -> bool:
    """Under torch.compile, torch.jit tracing or ONNX export, which do not know the custom
    ops: the reference scans trace into plain torch ops."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return True
    onnx = sys.modules.get("torch.onnx")
    return bool(onnx is not None and onnx.is_in_onnx_export())


def _common_ok(x: Any, v_threshold: Any = 1.0) -> bool:
    return (isinstance(x, torch.Tensor) and x.device.type == "cpu" and x.dim() >= 2
            and x.dtype in (torch.float32, torch.float64) and x.shape[0] > 0 and not _tracing()
            and isinstance(v_threshold, (int, float)) and not isinstance(v_threshold, bool))


# --------------------------------------------------------------------------------------
# Autograd functions
# --------------------------------------------------------------------------------------

class _LIFScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, v0, s0, alpha, weight, theta, detach_reset, spec):  # type: ignore[override]
        ops = torch.ops.spikekws_scan
        spikes, v_last, v_trace, cur = ops.lif_forward(x, v0, s0, alpha, weight, theta, True)
        ctx.save_for_backward(cur if weight is not None else x, v_trace, v0, s0, alpha, weight)
        ctx.cfg = (theta, detach_reset, spec)
        return spikes, v_last

    @staticmethod
    @once_differentiable
    def backward(ctx, g_spikes, g_v):  # type: ignore[override]
        cur, v_trace, v0, s0, alpha, weight = ctx.saved_tensors
        theta, detach_reset, (sid, p1, p2) = ctx.cfg
        gx, ga, gw, gv0, gs0 = torch.ops.spikekws_scan.lif_backward(
            g_spikes.contiguous(), g_v.contiguous(), cur, v_trace, v0, s0, alpha, weight,
            theta, detach_reset, sid, p1, p2)
        return gx, gv0, gs0, ga, (gw if weight is not None else None), None, None, None


class _AdLIFScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, v0, w0, s0, alpha, beta, a, b, weight, theta,  # type: ignore[override]
                detach_reset, spec):
        ops = torch.ops.spikekws_scan
        spikes, v_last, w_last, v_trace, w_trace, cur = ops.adlif_forward(
            x, v0, w0, s0, alpha, beta, a, b, weight, theta, True)
        ctx.save_for_backward(cur if weight is not None else x, v_trace, w_trace, v0, w0, s0,
                              alpha, beta, a, b, weight)
        ctx.cfg = (theta, detach_reset, spec)
        return spikes, v_last, w_last

    @staticmethod
    @once_differentiable
    def backward(ctx, g_spikes, g_v, g_w):  # type: ignore[override]
        cur, v_trace, w_trace, v0, w0, s0, alpha, beta, a, b, weight = ctx.saved_tensors
        theta, detach_reset, (sid, p1, p2) = ctx.cfg
        gx, ga, gbeta, gaa, gbb, gw, gv0, gw0, gs0 = torch.ops.spikekws_scan.adlif_backward(
            g_spikes.contiguous(), g_v.contiguous(), g_w.contiguous(), cur, v_trace, w_trace,
            v0, w0, s0, alpha, beta, a, b, weight, theta, detach_reset, sid, p1, p2)
        return (gx, gv0, gw0, gs0, ga, gbeta, gaa, gbb, (gw if weight is not None else None),
                None, None, None)


class _LIScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, v0, alpha):  # type: ignore[override]
        trace = torch.ops.spikekws_scan.li_forward(x, v0, alpha)
        ctx.save_for_backward(x, trace, v0, alpha)
        return trace

    @staticmethod
    @once_differentiable
    def backward(ctx, g_trace):  # type: ignore[override]
        x, trace, v0, alpha = ctx.saved_tensors
        gx, ga, gv0 = torch.ops.spikekws_scan.li_backward(g_trace.contiguous(), x, trace, v0, alpha)
        return gx, gv0, ga


class _EventLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):  # type: ignore[override]
        y, sparse = torch.ops.spikekws_scan.event_linear_forward(x, weight, bias)
        ctx.save_for_backward(x, weight)
        ctx.sparse = sparse
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, g):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        g = g.contiguous()
        gx = g.mm(weight) if ctx.needs_input_grad[0] else None
        gw = (torch.ops.spikekws_scan.event_linear_weight_grad(g, x, ctx.sparse)
              if ctx.needs_input_grad[1] else None)
        gb = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb


def _initial_state(state, fields: int, like: torch.Tensor):
    """The ``fields`` state tensors as contiguous [M, H] (zeros when ``state`` is None) for
    a scan of ``like``'s shape [T, B..., H], dtype and device; None if one does not fit."""
    if state is None:
        zero = like.new_zeros(math.prod(like.shape[1:-1]), like.shape[-1])
        return (zero,) * fields
    out = tuple(state_field(f, like) for f in state)
    return None if any(f is None for f in out) else out


# --------------------------------------------------------------------------------------
# Scans with the reference signatures (see ..lif, ..adlif, ..li for the equations)
# --------------------------------------------------------------------------------------

def lif_scan_cpp(x, state, alpha, surrogate, v_threshold=1.0, recurrent_weight=None,
                 detach_reset=False):
    """Fused LIF/RLIF scan. x: [T, B, H] -> (spikes [T, B, H], LIFState)."""
    args = (x, state, alpha, surrogate, v_threshold, recurrent_weight, detach_reset)
    spec = surrogate_spec(surrogate)
    if spec is None or not _common_ok(x, v_threshold) or load() is None:
        return lif_scan_torch(*args)
    a = per_neuron(alpha, x)
    ok_w, w = recurrent_weight_arg(recurrent_weight, x)
    init = _initial_state(state, 2, x)
    if a is None or not ok_w or init is None:
        return lif_scan_torch(*args)
    v0, s0 = init
    T, H = x.shape[0], x.shape[-1]
    xs = x.reshape(T, -1, H).contiguous()
    theta = float(v_threshold)
    if needs_grad((xs, v0, s0, a, w)):
        spikes, v_last = _LIFScan.apply(xs, v0, s0, a, w, theta, bool(detach_reset), spec)
    else:
        spikes, v_last, _, _ = torch.ops.spikekws_scan.lif_forward(xs, v0, s0, a, w, theta, False)
    spikes = spikes.reshape(x.shape)
    return spikes, LIFState(v_last.reshape(x.shape[1:]), spikes[-1])


def adlif_scan_cpp(x, state, alpha, beta, a, b, surrogate, v_threshold=1.0,
                   recurrent_weight=None, detach_reset=False):
    """Fused AdLIF/RadLIF scan. x: [T, B, H] -> (spikes [T, B, H], AdLIFState)."""
    args = (x, state, alpha, beta, a, b, surrogate, v_threshold, recurrent_weight, detach_reset)
    spec = surrogate_spec(surrogate)
    if spec is None or not _common_ok(x, v_threshold) or load() is None:
        return adlif_scan_torch(*args)
    params = [per_neuron(p, x) for p in (alpha, beta, a, b)]
    ok_w, w = recurrent_weight_arg(recurrent_weight, x)
    init = _initial_state(state, 3, x)
    if any(p is None for p in params) or not ok_w or init is None:
        return adlif_scan_torch(*args)
    v0, w0, s0 = init
    T, H = x.shape[0], x.shape[-1]
    xs = x.reshape(T, -1, H).contiguous()
    theta = float(v_threshold)
    pa, pb, pA, pB = params
    if needs_grad((xs, v0, w0, s0, pa, pb, pA, pB, w)):
        spikes, v_last, w_last = _AdLIFScan.apply(xs, v0, w0, s0, pa, pb, pA, pB, w, theta,
                                                  bool(detach_reset), spec)
    else:
        spikes, v_last, w_last, _, _, _ = torch.ops.spikekws_scan.adlif_forward(
            xs, v0, w0, s0, pa, pb, pA, pB, w, theta, False)
    spikes = spikes.reshape(x.shape)
    shape = x.shape[1:]
    return spikes, AdLIFState(v_last.reshape(shape), w_last.reshape(shape), spikes[-1])


def _fused_layer_args(x, weight, bias, v_threshold, surrogate) -> bool:
    """Whether x, the layer's weight and bias, the threshold and surrogate suit a fused layer
    call (and the ops load)."""
    return (surrogate_spec(surrogate) is not None and _common_ok(x, v_threshold) and x.dim() == 3
            and isinstance(weight, torch.Tensor) and weight.dim() == 2
            and weight.dtype == x.dtype and weight.device == x.device
            and weight.shape[1] == x.shape[-1]
            and (bias is None or (isinstance(bias, torch.Tensor) and bias.dtype == x.dtype
                                  and bias.shape == (weight.shape[0],)))
            and load() is not None)


def _layer_input(x: torch.Tensor) -> torch.Tensor:
    """x [T, B, K] for a fused layer op: as it is when contiguous or the time-major view of
    batch-first features (read in place), else a contiguous copy."""
    if x.is_contiguous() or x.transpose(0, 1).is_contiguous():
        return x
    return x.contiguous()


def _rate(count: torch.Tensor, spikes: torch.Tensor) -> torch.Tensor:
    """The mean of the spikes from their count (exact), in their dtype: ``spikes.mean()``
    without another pass over them."""
    return count.to(spikes.dtype) / max(spikes.numel(), 1)


def lif_linear_scan_cpp(x, weight, bias, state, alpha, surrogate, v_threshold=1.0,
                        recurrent_weight=None):
    """``lif_scan(x W^T + bias)`` in one fused pass (the product computed a few steps at a
    time, just before the scan reads it), for inference: None when a gradient is needed or
    the arguments are not covered (the caller then runs the product and the scan). x:
    [T, B, K], weight [H, K] -> (spikes [T, B, H], LIFState, firing rate); equal to the two
    calls and ``spikes.mean()``."""
    if not _fused_layer_args(x, weight, bias, v_threshold, surrogate):
        return None
    # shape, dtype and device of the layer's current, for the argument checks
    proxy = x.new_empty(1, 1, 1).expand(x.shape[0], x.shape[1], weight.shape[0])
    a = per_neuron(alpha, proxy)
    ok_w, w = recurrent_weight_arg(recurrent_weight, proxy)
    init = _initial_state(state, 2, proxy)
    if a is None or not ok_w or init is None or needs_grad((x, weight, bias, a, w, *init)):
        return None
    v0, s0 = init
    spikes, v_last, count = torch.ops.spikekws_scan.lif_linear_forward(
        _layer_input(x), weight, bias, v0, s0, a, w, float(v_threshold))
    return spikes, LIFState(v_last, spikes[-1]), _rate(count, spikes)


def adlif_linear_scan_cpp(x, weight, bias, state, alpha, beta, a, b, surrogate, v_threshold=1.0,
                          recurrent_weight=None):
    """``adlif_scan(x W^T + bias)`` in one fused pass; see :func:`lif_linear_scan_cpp`."""
    if not _fused_layer_args(x, weight, bias, v_threshold, surrogate):
        return None
    proxy = x.new_empty(1, 1, 1).expand(x.shape[0], x.shape[1], weight.shape[0])
    params = [per_neuron(p, proxy) for p in (alpha, beta, a, b)]
    ok_w, w = recurrent_weight_arg(recurrent_weight, proxy)
    init = _initial_state(state, 3, proxy)
    if (any(p is None for p in params) or not ok_w or init is None
            or needs_grad((x, weight, bias, *params, w, *init))):
        return None
    v0, w0, s0 = init
    spikes, v_last, w_last, count = torch.ops.spikekws_scan.adlif_linear_forward(
        _layer_input(x), weight, bias, v0, w0, s0, *params, w, float(v_threshold))
    return spikes, AdLIFState(v_last, w_last, spikes[-1]), _rate(count, spikes)


def li_scan_cpp(x, state, alpha):
    """Fused leaky-integrator scan. x: [T, B, H] -> (membrane trace [T, B, H], LIState)."""
    if not _common_ok(x) or load() is None:
        return li_scan_torch(x, state, alpha)
    a = per_neuron(alpha, x)
    if state is None:
        v0 = x.new_zeros(x[0].reshape(-1, x.shape[-1]).shape)
    else:
        v0 = state_field(state[0], x)
    if a is None or v0 is None:
        return li_scan_torch(x, state, alpha)
    T, H = x.shape[0], x.shape[-1]
    xs = x.reshape(T, -1, H).contiguous()
    if needs_grad((xs, v0, a)):
        trace = _LIScan.apply(xs, v0, a)
    else:
        trace = torch.ops.spikekws_scan.li_forward(xs, v0, a)
    trace = trace.reshape(x.shape)
    return trace, LIState(trace[-1])


def linear_cpp(x, weight, bias=None):
    """``x W^T + bias`` (``torch.nn.functional.linear``) for x: [..., K], W: [O, K], computed
    from the non-zero entries of x when fewer than one in four are (spikes, dropout-scaled
    spikes): the product and the weight gradient then cost in proportion to the events."""
    if not (_common_ok(x) and isinstance(weight, torch.Tensor) and weight.dim() == 2
            and weight.dtype == x.dtype and weight.device == x.device
            and x.shape[-1] == weight.shape[1]
            and (bias is None or (isinstance(bias, torch.Tensor) and bias.dtype == x.dtype
                                  and bias.shape == (weight.shape[0],)))) or load() is None:
        return torch.nn.functional.linear(x, weight, bias)
    x2 = x.reshape(-1, x.shape[-1]).contiguous()
    if needs_grad((x2, weight, bias)):
        y = _EventLinear.apply(x2, weight, bias)
    else:
        y, _ = torch.ops.spikekws_scan.event_linear_forward(x2, weight, bias)
    return y.reshape(*x.shape[:-1], weight.shape[0])


class _MaskedDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, p, seed):  # type: ignore[override]
        ctx.cfg = (p, seed)
        return torch.ops.spikekws_scan.masked_dropout(x, p, seed)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):  # type: ignore[override]
        p, seed = ctx.cfg
        return torch.ops.spikekws_scan.masked_dropout(g.contiguous(), p, seed), None, None


def dropout_cpp(x, p):
    """Training-mode dropout, ``x * mask / (1 - p)`` with ``P(mask = 1) = 1 - p``, as
    ``torch.nn.functional.dropout(x, p, True)`` but with a counter-based mask: one seed drawn
    from torch's default generator (so ``torch.manual_seed`` fixes it) instead of a stored
    mask, and several times faster. The masks differ from torch's."""
    if not (_common_ok(x) and isinstance(p, (int, float)) and 0.0 <= p < 1.0) or load() is None:
        return torch.nn.functional.dropout(x, p, True)
    if p == 0.0:
        return x
    seed = int(torch.randint(-2**63, 2**63 - 1, (), dtype=torch.int64).item())
    xc = x.contiguous()
    if needs_grad((xc,)):
        return _MaskedDropout.apply(xc, float(p), seed)
    return torch.ops.spikekws_scan.masked_dropout(xc, float(p), seed)


def memory_pool() -> dict:
    """The kernels' buffer pool: ``cached_bytes`` and ``cached_blocks`` kept now, ``hits``
    (requests served from it) and ``misses`` (requests allocated anew) so far, and
    ``limit_bytes``. All zero if the extension is not available."""
    keys = ("cached_bytes", "cached_blocks", "hits", "misses", "limit_bytes")
    ops = load()
    values = ops.pool_info() if ops is not None else [0] * len(keys)
    return dict(zip(keys, (int(v) for v in values)))


def release_memory_pool(limit_mb: Optional[float] = None) -> int:
    """Frees the blocks the kernels' pool keeps and returns their bytes; with ``limit_mb``
    also sets how much it may keep from now on (0 turns it off)."""
    if limit_mb is not None and not limit_mb >= 0:
        raise ValueError(f"limit_mb must be >= 0, got {limit_mb}")
    ops = load()
    if ops is None:
        return 0
    return int(ops.pool_release(-1 if limit_mb is None else int(limit_mb * 2**20)))


SCANS = {"lif": lif_scan_cpp, "adlif": adlif_scan_cpp, "li": li_scan_cpp, "linear": linear_cpp,
         "dropout": dropout_cpp}

__all__ = ["SCANS", "available", "build_directory", "build_error", "load", "surrogate_spec",
           "lif_scan_cpp", "adlif_scan_cpp", "li_scan_cpp", "linear_cpp", "dropout_cpp",
           "memory_pool", "release_memory_pool", "lif_linear_scan_cpp", "adlif_linear_scan_cpp"]
