"""The Triton scans (backend "triton") against the torch reference: values and gradients.

On CPU they run in Triton's interpreter (``TRITON_INTERPRET=1``), which executes the same
kernels with NumPy; the ``gpu`` tests run them compiled on CUDA. Skipped without triton.
"""
from __future__ import annotations

import importlib.util
import os

import pytest
import torch

from spikekws.neurons import SURROGATES, get_surrogate
from spikekws.neurons import functional as NF
from spikekws.neurons.functional.backends import triton_scan

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None,
                                reason="triton is not installed (pip install triton)")

TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def _reset_kernels():
    triton_scan._kernels = None
    triton_scan._import_error = None


@pytest.fixture(scope="module")
def interpreter():
    """Triton's interpreter on for this module only (kernels redefined on entry and exit)."""
    old = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    _reset_kernels()
    if not triton_scan.available():
        pytest.skip(f"triton interpreter unavailable: {triton_scan.import_error()}")
    yield
    if old is None:
        os.environ.pop("TRITON_INTERPRET", None)
    else:
        os.environ["TRITON_INTERPRET"] = old
    _reset_kernels()


def _rel(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def _case(kind, *, T=9, B=3, H=7, recurrent=False, state=False, dtype=torch.float64, seed=0,
          device="cpu"):
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, lo=None, hi=None):
        r = torch.rand(*shape, generator=g) if lo is not None else torch.randn(*shape, generator=g)
        r = lo + (hi - lo) * r if lo is not None else r
        return r.to(dtype)

    p = {"x": 1.2 + rnd(T, B, H), "alpha": rnd(H, lo=0.5, hi=0.95)}
    if kind == "adlif":
        p.update(beta=rnd(H, lo=0.6, hi=0.98), a=rnd(H, lo=-0.5, hi=0.5), b=rnd(H, lo=0.0, hi=0.5))
    if recurrent:
        p["recurrent_weight"] = 0.4 * rnd(H, H) * (1 - torch.eye(H, dtype=dtype))
    if state:
        p["v0"] = rnd(B, H, lo=-0.5, hi=1.2)
        p["s0"] = (rnd(B, H, lo=0, hi=1) > 0.5).to(dtype)
        if kind == "adlif":
            p["w0"] = 0.3 * rnd(B, H)
    return {k: v.to(device).requires_grad_(True) for k, v in p.items()}


def _run(kind, p, backend, surrogate, detach_reset=False):
    surr = get_surrogate(surrogate)
    if kind == "lif":
        state = NF.LIFState(p["v0"], p["s0"]) if "v0" in p else None
        return NF.lif_scan(p["x"], state, alpha=p["alpha"], surrogate=surr,
                           recurrent_weight=p.get("recurrent_weight"), detach_reset=detach_reset,
                           backend=backend)
    state = NF.AdLIFState(p["v0"], p["w0"], p["s0"]) if "v0" in p else None
    return NF.adlif_scan(p["x"], state, alpha=p["alpha"], beta=p["beta"], a=p["a"], b=p["b"],
                         surrogate=surr, recurrent_weight=p.get("recurrent_weight"),
                         detach_reset=detach_reset, backend=backend)


def _compare(kind, surrogate="atan", detach_reset=False, **case):
    dtype = case.get("dtype", torch.float64)
    ref = _case(kind, **case)
    tri = {k: v.detach().clone().requires_grad_(True) for k, v in ref.items()}
    calls = []
    real_apply = triton_scan._Scan.apply
    triton_scan._Scan.apply = lambda *a: calls.append(1) or real_apply(*a)
    try:
        outs = {}
        for backend, leaves in (("torch", ref), ("triton", tri)):
            s, st = _run(kind, leaves, backend, surrogate, detach_reset)
            g = torch.Generator().manual_seed(1)
            loss = (s * torch.randn(s.shape, generator=g).to(s)).sum()
            for f in st:
                loss = loss + (f * torch.randn(f.shape, generator=g).to(f)).sum()
            grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
            outs[backend] = (s, st, [torch.zeros_like(v) if gr is None else gr
                                     for gr, v in zip(grads, leaves.values())])
    finally:
        triton_scan._Scan.apply = real_apply
    assert calls == [1], "the Triton kernels did not run"
    (s_ref, st_ref, g_ref), (s_tri, st_tri, g_tri) = outs["torch"], outs["triton"]
    assert torch.equal(s_tri, s_ref), "spikes differ"
    assert 0 < s_ref.mean().item() < 1
    for name, a, b in zip(st_ref._fields, st_tri, st_ref):
        assert _rel(a, b) < TOL[dtype] or b.abs().max() == a.abs().max() == 0, f"state.{name}"
    for name, a, b in zip(ref, g_tri, g_ref):
        assert torch.isfinite(a).all(), name
        if b.abs().max() == 0:
            assert a.abs().max() == 0, f"grad {name}"
        else:
            assert _rel(a, b) < TOL[dtype], f"grad {name}: {_rel(a, b):.2e}"
    return dict(zip(ref, g_ref))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("surrogate", SURROGATES.list())
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("kind", ["lif", "adlif"])
def test_interpreted_kernels_match_reference(interpreter, kind, recurrent, surrogate, dtype):
    grads = _compare(kind, surrogate, recurrent=recurrent, dtype=dtype)
    assert grads["x"].abs().sum() > 0 and grads["alpha"].abs().sum() > 0
    if recurrent:
        assert grads["recurrent_weight"].abs().sum() > 0


@pytest.mark.parametrize("T", [1, 12])
@pytest.mark.parametrize("options", ["state", "detach", "state+detach"])
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("kind", ["lif", "adlif"])
def test_interpreted_kernels_options(interpreter, kind, recurrent, options, T):
    # Odd sizes: more neurons (B * H = 5 * 67) than one block of the kernel.
    _compare(kind, "triangle", detach_reset="detach" in options, T=T, B=5, H=67,
             recurrent=recurrent, state="state" in options, dtype=torch.float32, seed=T)


def test_cpu_without_interpreter_uses_reference(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    p = _case("lif", T=4)
    s_ref, _ = _run("lif", p, "torch", "boxcar")
    monkeypatch.setattr(triton_scan._Scan, "apply",
                        lambda *a: pytest.fail("kernels must not run on CPU"))
    s_tri, _ = _run("lif", p, "triton", "boxcar")
    assert torch.equal(s_tri, s_ref)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("kind", ["lif", "adlif"])
def test_cuda_kernels_match_reference(kind, recurrent):
    if triton_scan.interpreting():
        pytest.skip("TRITON_INTERPRET is set: the compiled kernels are not in use")
    _reset_kernels()
    assert NF.resolve_backend(kind, "cuda") == "triton"
    # Compiled, the kernels take the threshold and surrogate constants as fp32 scalars: fp64
    # results then agree with the reference to fp32 rounding of those constants only.
    _compare(kind, "atan", T=50, B=16, H=300, recurrent=recurrent, dtype=torch.float32,
             device="cuda")
