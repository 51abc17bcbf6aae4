"""The fused C++ scans (backend "cpp") against the torch reference: values and gradients.

Skipped, with the build error as the reason, where the extension cannot be built.
"""
from __future__ import annotations

import logging

import pytest
import torch

from spikekws.models import build_model
from spikekws.neurons import SURROGATES, get_surrogate
from spikekws.neurons import functional as NF
from spikekws.neurons.functional.backends import cpp
from spikekws.neurons.surrogate import Surrogate

_OPS = cpp.load()
needs_ext = pytest.mark.skipif(
    _OPS is None, reason=f"fused C++ kernels could not be built: {cpp.build_error()}")

TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Norm-wise relative error of ``a`` against the reference ``b``."""
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def _close(a, b, dtype, what):
    assert a.shape == b.shape, what
    if b.abs().max() == 0:
        assert a.abs().max() == 0, what
        return
    err = _rel(a, b)
    assert err < TOL[dtype], f"{what}: relative error {err:.2e}"


def _case(kind, *, T=13, B=3, H=7, recurrent=False, dtype=torch.float64, state=True,
          drive=1.2, scalar_alpha=False, seed=0):
    """Random inputs, parameters and (optionally non-zero) initial state, all leaves."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, lo=None, hi=None):
        if lo is not None:
            return (lo + (hi - lo) * torch.rand(*shape, generator=g)).to(dtype)
        return torch.randn(*shape, generator=g).to(dtype)

    leaves = {"x": drive + rnd(T, B, H)}
    leaves["alpha"] = rnd(1, lo=0.5, hi=0.95).reshape(()) if scalar_alpha else rnd(H, lo=0.5, hi=0.95)
    if kind == "adlif":
        leaves.update(beta=rnd(H, lo=0.6, hi=0.98), a=rnd(H, lo=-0.5, hi=0.5),
                      b=rnd(H, lo=0.0, hi=0.5))
    if recurrent:
        w = 0.4 * rnd(H, H)
        leaves["recurrent_weight"] = w * (1 - torch.eye(H, dtype=dtype))
    if state:
        leaves["v0"] = rnd(B, H, lo=-0.5, hi=1.2)
        leaves["s0"] = (rnd(B, H, lo=0, hi=1) > 0.5).to(dtype)
        if kind == "adlif":
            leaves["w0"] = 0.3 * rnd(B, H)
    return {k: v.detach().requires_grad_(True) for k, v in leaves.items()}


def _run(kind, leaves, backend, surrogate, detach_reset=False):
    p = leaves
    surr = get_surrogate(surrogate) if isinstance(surrogate, str) else surrogate
    if kind == "lif":
        state = NF.LIFState(p["v0"], p["s0"]) if "v0" in p else None
        return NF.lif_scan(p["x"], state, alpha=p["alpha"], surrogate=surr,
                           recurrent_weight=p.get("recurrent_weight"),
                           detach_reset=detach_reset, backend=backend)
    state = NF.AdLIFState(p["v0"], p["w0"], p["s0"]) if "v0" in p else None
    return NF.adlif_scan(p["x"], state, alpha=p["alpha"], beta=p["beta"], a=p["a"], b=p["b"],
                         surrogate=surr, recurrent_weight=p.get("recurrent_weight"),
                         detach_reset=detach_reset, backend=backend)


def _loss(spikes, state, seed=1):
    """Weights every output (spikes and every final-state field) with random numbers."""
    g = torch.Generator().manual_seed(seed)
    total = (spikes * torch.randn(spikes.shape, generator=g).to(spikes.dtype)).sum()
    for f in state:
        total = total + (f * torch.randn(f.shape, generator=g).to(f.dtype)).sum()
    return total


def _grads(loss, leaves):
    grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, leaves.values())]


def _compare(kind, surrogate="boxcar", detach_reset=False, **case):
    dtype = case.get("dtype", torch.float64)
    ref_leaves = _case(kind, **case)
    cpp_leaves = {k: v.detach().clone().requires_grad_(True) for k, v in ref_leaves.items()}
    s_ref, st_ref = _run(kind, ref_leaves, "torch", surrogate, detach_reset)
    s_cpp, st_cpp = _run(kind, cpp_leaves, "cpp", surrogate, detach_reset)
    assert s_cpp.dtype == dtype and type(st_cpp) is type(st_ref)
    assert torch.equal(s_cpp, s_ref), "spikes differ"
    for name, a, b in zip(st_ref._fields, st_cpp, st_ref):
        _close(a, b, dtype, f"state.{name}")
    rate = s_ref.mean().item()
    # allow_unused: with detach_reset and no recurrence, s0 does not enter the reference graph.
    grads_ref = _grads(_loss(s_ref, st_ref), ref_leaves)
    grads_cpp = _grads(_loss(s_cpp, st_cpp), cpp_leaves)
    for name, a, b in zip(ref_leaves, grads_cpp, grads_ref):
        assert torch.isfinite(a).all(), f"grad {name} not finite"
        _close(a, b, dtype, f"grad {name}")
    return rate, dict(zip(ref_leaves, grads_ref))


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("surrogate", SURROGATES.list())
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("kind", ["lif", "adlif"])
def test_matches_reference_every_surrogate(kind, recurrent, surrogate, dtype):
    rate, grads = _compare(kind, surrogate, recurrent=recurrent, dtype=dtype)
    assert 0.0 < rate < 1.0
    assert grads["x"].abs().sum() > 0 and grads["alpha"].abs().sum() > 0


@needs_ext
@pytest.mark.parametrize("T", [1, 2, 17])
@pytest.mark.parametrize("state", [False, True], ids=["zero_state", "state"])
@pytest.mark.parametrize("detach_reset", [False, True], ids=["reset", "detach"])
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("kind", ["lif", "adlif"])
def test_matches_reference_options(kind, recurrent, detach_reset, state, T):
    for dtype in (torch.float32, torch.float64):
        _compare(kind, "triangle", detach_reset, T=T, recurrent=recurrent, state=state,
                 dtype=dtype)


@needs_ext
@pytest.mark.parametrize("drive", [0.3, 1.2, 3.0], ids=["sparse", "mid", "dense"])
@pytest.mark.parametrize("kind", ["lif", "adlif"])
def test_recurrent_sparse_and_dense_spikes(kind, drive):
    # Low drive keeps spikes sparse (sparse recurrent sums), high drive makes them dense
    # (GEMM path); both must equal the reference.
    for dtype in (torch.float32, torch.float64):
        _compare(kind, "atan", T=20, B=4, H=37, recurrent=True, drive=drive, dtype=dtype, seed=3)


@pytest.mark.parametrize("spread", [0.1, 16.0], ids=["narrow", "wide"])
@pytest.mark.parametrize("surrogate", ["boxcar", "triangle"])
@pytest.mark.parametrize("kind", ["lif", "adlif"])
def test_recurrent_gradient_on_the_surrogate_support(kind, surrogate, spread):
    """Surrogates with compact support: the backward computes d/ds_{t-1} = gI_t V only where
    the surrogate derivative at v_{t-1} is non-zero while those entries are few (below 30 %
    of a block), else with one GEMM. Inputs far from threshold (wide spread) put few
    membranes inside the support (the masked path), near it (narrow) most (the GEMM)."""
    surr = get_surrogate(surrogate)
    for dtype in (torch.float32, torch.float64):
        leaves = _case(kind, T=30, B=6, H=70, recurrent=True, dtype=dtype, seed=4)
        with torch.no_grad():  # membranes settle around the input: 1 + spread * noise
            leaves["x"].sub_(leaves["x"].mean()).mul_(spread / leaves["x"].std()).add_(1.0)
        ref = {k: v.detach().clone().requires_grad_(True) for k, v in leaves.items()}
        s_ref, st_ref = _run(kind, ref, "torch", surr)
        s_cpp, st_cpp = _run(kind, leaves, "cpp", surr)
        assert torch.equal(s_cpp, s_ref)
        # the membrane trace the backward masks with: fraction of entries inside the support
        v = _membranes(kind, ref, surr)
        inside = (surr.derivative(v - 1.0) != 0).to(torch.float64).mean().item()
        assert (inside < 0.2) if spread > 1 else (inside > 0.35), inside
        g_ref = _grads(_loss(s_ref, st_ref), ref)
        g_cpp = _grads(_loss(s_cpp, st_cpp), leaves)
        for name, a, b in zip(ref, g_cpp, g_ref):
            _close(a, b, dtype, f"grad {name} ({dtype})")


def _membranes(kind, leaves, surr):
    """Membrane trace [T, B, H] of the reference step function."""
    p = {k: v.detach() for k, v in leaves.items()}
    out = []
    if kind == "lif":
        state = NF.LIFState(p["v0"], p["s0"])
        for x_t in p["x"]:
            _, state = NF.lif_step(x_t, state, p["alpha"], surr, 1.0, p["recurrent_weight"])
            out.append(state.v)
    else:
        state = NF.AdLIFState(p["v0"], p["w0"], p["s0"])
        for x_t in p["x"]:
            _, state = NF.adlif_step(x_t, state, p["alpha"], p["beta"], p["a"], p["b"], surr, 1.0,
                                     p["recurrent_weight"])
            out.append(state.v)
    return torch.stack(out)


@needs_ext
@pytest.mark.parametrize("kind", ["lif", "adlif"])
def test_recurrent_blocks_on_two_threads_under_inference_mode(kind):
    # Samples split between two threads, dense spikes (GEMMs in the worker thread) and
    # inference mode, which is thread-local like grad mode.
    leaves = _case(kind, T=30, B=8, H=600, recurrent=True, drive=3.0, dtype=torch.float32, seed=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.inference_mode():
            s_cpp, st_cpp = _run(kind, leaves, "cpp", "boxcar")
            s_ref, st_ref = _run(kind, leaves, "torch", "boxcar")
    finally:
        torch.set_num_threads(threads)
    assert s_ref.mean() > 0.2
    assert torch.equal(s_cpp, s_ref)
    for a, b in zip(st_cpp, st_ref):
        _close(a, b, torch.float32, "state")


@needs_ext
@pytest.mark.parametrize("kind", ["lif", "adlif"])
def test_scalar_alpha_gets_its_gradient(kind):
    _, grads = _compare(kind, "fast_sigmoid", scalar_alpha=True, recurrent=True)
    assert grads["alpha"].shape == ()


@needs_ext
def test_larger_odd_sizes_fp32():
    for kind in ("lif", "adlif"):
        for recurrent in (False, True):
            _compare(kind, "sigmoid", T=40, B=5, H=67, recurrent=recurrent, dtype=torch.float32,
                     seed=7)


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
def test_li_matches_reference(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(11, 3, 7, generator=g).to(dtype).requires_grad_(True)
    alpha = (0.5 + 0.4 * torch.rand(7, generator=g)).to(dtype).requires_grad_(True)
    v0 = torch.randn(3, 7, generator=g).to(dtype).requires_grad_(True)
    outs = {}
    for backend in ("torch", "cpp"):
        leaves = [t.detach().clone().requires_grad_(True) for t in (x, alpha, v0)]
        trace, state = NF.li_scan(leaves[0], NF.LIState(leaves[2]), alpha=leaves[1], backend=backend)
        w = torch.randn(trace.shape, generator=torch.Generator().manual_seed(2)).to(dtype)
        loss = (trace * w).sum() + state.v.square().sum()
        outs[backend] = (trace, state, torch.autograd.grad(loss, leaves))
    (t_ref, st_ref, g_ref), (t_cpp, st_cpp, g_cpp) = outs["torch"], outs["cpp"]
    torch.testing.assert_close(t_cpp, t_ref, rtol=0, atol=0)
    torch.testing.assert_close(st_cpp.v, st_ref.v, rtol=0, atol=0)
    for name, a, b in zip(("x", "alpha", "v0"), g_cpp, g_ref):
        _close(a, b, dtype, f"grad {name}")


@needs_ext
def test_inference_path_equals_training_path():
    leaves = _case("adlif", recurrent=True, T=9)
    with torch.no_grad():
        s_ng, st_ng = _run("adlif", leaves, "cpp", "boxcar")
    s_g, st_g = _run("adlif", leaves, "cpp", "boxcar")
    assert s_g.requires_grad and not s_ng.requires_grad
    assert torch.equal(s_ng, s_g)
    for a, b in zip(st_ng, st_g):
        assert torch.equal(a, b)


@needs_ext
@pytest.mark.parametrize("neuron", ["lif", "rlif", "adlif", "radlif"])
def test_snn_model_fused_equals_reference(neuron):
    models = {}
    for backend in ("torch", "cpp"):
        torch.manual_seed(0)
        m = build_model("snn", 5, 3, neuron=neuron, hidden_sizes=[9, 6], dropout=0.0,
                        backend=backend).double()
        for mod in m.modules():  # the readout's LI as well
            if hasattr(mod, "backend"):
                mod.backend = backend
        models[backend] = m
    x = 1.5 * torch.randn(2, 12, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    outs = {}
    for backend, m in models.items():
        out, rates = m(x)
        out.sum().backward()
        outs[backend] = (out, rates)
    torch.testing.assert_close(outs["cpp"][0], outs["torch"][0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(outs["cpp"][1], outs["torch"][1], rtol=0, atol=0)
    for (name, p), (_, q) in zip(models["torch"].named_parameters(), models["cpp"].named_parameters()):
        if p.grad is None:
            assert q.grad is None, name
        else:
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-10, atol=1e-12, msg=name)


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("density", [0.0, 0.04, 0.6], ids=["silent", "events", "dense"])
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("shape", [(1, 1, 37), (7, 3, 37)], ids=["T1", "T7"])
@pytest.mark.parametrize("outputs", [5, 23, 70], ids=["O5", "O23", "O70"])
def test_event_linear_matches_reference(outputs, shape, bias, density, dtype):
    g = torch.Generator().manual_seed(5)
    # Dropout-scaled spikes: values 0 or 1 / (1 - p).
    x = ((torch.rand(shape, generator=g) < density).to(dtype) / 0.9).requires_grad_(True)
    w = torch.randn(outputs, shape[-1], generator=g).to(dtype).requires_grad_(True)
    b = torch.randn(outputs, generator=g).to(dtype).requires_grad_(True) if bias else None
    leaves = [t for t in (x, w, b) if t is not None]
    gy = torch.randn(*shape[:-1], outputs, generator=g).to(dtype)
    outs = {}
    for backend in ("torch", "cpp"):
        y = NF.linear(x, w, b, backend=backend)
        outs[backend] = (y, torch.autograd.grad((y * gy).sum(), leaves))
    (y_ref, g_ref), (y_cpp, g_cpp) = outs["torch"], outs["cpp"]
    assert y_cpp.shape == y_ref.shape == (*shape[:-1], outputs)
    _close(y_cpp, y_ref, dtype, "y")
    for name, a, r in zip(("x", "weight", "bias"), g_cpp, g_ref):
        _close(a, r, dtype, f"grad {name}")
    _, sparse = torch.ops.spikekws_scan.event_linear_forward(
        x.detach().reshape(-1, shape[-1]).contiguous(), w.detach(), None)
    # the event path runs on sparse inputs, into enough outputs to repay finding the events:
    # 64, or 8 where the float events are listed with AVX-512
    min_outputs = torch.ops.spikekws_scan.event_min_outputs(x.detach())
    assert min_outputs in ((8, 64) if dtype == torch.float32 else (64,))
    # ... and from 16 rows on (fewer: transposing the weight costs more than the GEMM)
    rows = x.detach().reshape(-1, shape[-1]).shape[0]
    assert sparse == (density < 0.25 and outputs >= min_outputs and rows >= 16)


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("outputs", [20, 64, 100, 300], ids=["O20", "O64", "O100", "O300"])
def test_event_linear_sums_in_input_order(outputs, dtype):
    """The event product is bias + x[:, j] W[:, j] summed over j = 0, 1, ... in that order,
    bit for bit, for every output width (full column chunks, single vectors, scalar tail),
    for more rows than one block, and for any thread count."""
    g = torch.Generator().manual_seed(11)
    n, k = 600, 150
    x = (torch.rand(n, k, generator=g) < 0.1).to(dtype) * (1 + torch.rand(n, k, generator=g).to(dtype))
    w = torch.randn(outputs, k, generator=g).to(dtype)
    b = torch.randn(outputs, generator=g).to(dtype)
    if outputs < torch.ops.spikekws_scan.event_min_outputs(x):
        pytest.skip("this few outputs take the GEMM on this CPU and dtype")
    expected = b.expand(n, outputs).clone()
    expected_nobias = torch.zeros(n, outputs, dtype=dtype)
    for j in range(k):  # one rounded product and one rounded sum per input, as the kernel
        expected += x[:, j:j + 1] * w[:, j]
        expected_nobias += x[:, j:j + 1] * w[:, j]
    threads = torch.get_num_threads()
    try:
        for t in (1, 2):
            torch.set_num_threads(t)
            y, sparse = torch.ops.spikekws_scan.event_linear_forward(x, w, b)
            assert sparse
            assert torch.equal(y, expected), f"{t} thread(s)"
            y0, _ = torch.ops.spikekws_scan.event_linear_forward(x, w, None)
            assert torch.equal(y0, expected_nobias), f"{t} thread(s), no bias"
    finally:
        torch.set_num_threads(threads)


@needs_ext
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("n,k,o", [(1, 1, 1), (7, 3, 17), (65, 3, 17), (71, 140, 32),
                                   (72, 140, 33), (64, 40, 70), (97, 513, 100)])
def test_dense_product_matches_float64(n, k, o, bias):
    """Dense inputs (features) take the dense product (from 64 rows on, the AVX-512 kernel
    where the CPU has it): within float32 rounding of the exact sum, for tile and panel
    remainders of every size."""
    g = torch.Generator().manual_seed(n * 1000 + k + o)
    x = torch.randn(n, k, generator=g)
    w = torch.randn(o, k, generator=g)
    b = torch.randn(o, generator=g) if bias else None
    y, sparse = torch.ops.spikekws_scan.event_linear_forward(x, w, b)
    assert not sparse and y.shape == (n, o)
    exact = x.double() @ w.double().t() + (b.double() if bias else 0.0)
    scale = x.double().abs() @ w.double().abs().t() + (b.double().abs() if bias else 0.0)
    assert ((y.double() - exact).abs() <= (k + 1) * 2.0**-24 * scale).all()  # summation bound
    # a non-contiguous weight (a transposed view) gives the same result
    y2, _ = torch.ops.spikekws_scan.event_linear_forward(x, w.t().contiguous().t(), b)
    assert torch.equal(y, y2)


@needs_ext
@pytest.mark.parametrize("isa", ["avx2", "default"])
def test_event_linear_narrower_instruction_sets(isa, tmp_path):
    """The AVX2 and portable builds of the event product give the same bits as the widest
    one (SPIKEKWS_SCAN_ISA caps the instruction set the process picks)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(
        "import sys, torch\n"
        "from spikekws.neurons.functional.backends import cpp\n"
        "assert cpp.load() is not None\n"
        "g = torch.Generator().manual_seed(3)\n"
        "x = (torch.rand(700, 90, generator=g) < 0.1).float()\n"
        "w = torch.randn(333, 90, generator=g)\n"
        "b = torch.randn(333, generator=g)\n"
        "y, sparse = torch.ops.spikekws_scan.event_linear_forward(x, w, b)\n"
        "assert sparse\n"
        "torch.save(y, sys.argv[1])\n")
    outs = {}
    for name in ("native", isa):
        env = dict(os.environ)
        env.pop("SPIKEKWS_SCAN_ISA", None)
        if name != "native":
            env["SPIKEKWS_SCAN_ISA"] = name
        out = tmp_path / f"{name}.pt"
        subprocess.run([sys.executable, str(script), str(out)], check=True, env=env, timeout=300)
        outs[name] = torch.load(out)
    assert torch.equal(outs["native"], outs[isa])


@needs_ext
def test_event_linear_without_grad_and_fallbacks():
    g = torch.Generator().manual_seed(6)
    x = (torch.rand(50, 4, 64, generator=g) < 0.05).float()
    w = torch.randn(10, 64, generator=g)
    with torch.no_grad():
        y = NF.linear(x, w, backend="cpp")
    _close(y, torch.nn.functional.linear(x, w), torch.float32, "no-grad y")
    # 1-D inputs use torch's linear; so do mixed dtypes, which it rejects.
    assert torch.equal(NF.linear(x[0, 0], w, backend="cpp"), torch.nn.functional.linear(x[0, 0], w))
    with pytest.raises(RuntimeError):
        NF.linear(x.double(), w, backend="cpp")


@needs_ext
def test_event_linear_layer_keeps_state_dict_and_hooks():
    from spikekws.layers import SpikingLinear

    layer = SpikingLinear(6, 5, neuron="lif", normalization="none")
    assert set(layer.state_dict()) >= {"linear.weight"}
    seen = []
    layer.linear.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    layer(torch.randn(4, 2, 6))
    assert seen == [torch.Size([4, 2, 5])]


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_counter_dropout_mask_rate_scale_and_gradient(p, dtype):
    x = torch.ones(64, 3, 1001, dtype=dtype, requires_grad=True)
    torch.manual_seed(3)
    y = NF.dropout(x, p, backend="cpp")
    kept = y != 0
    # Rate 1 - p overall and in every one of 32 chunks (the counter mask has no drift).
    assert abs(kept.double().mean().item() - (1 - p)) < 0.005
    chunks = kept.reshape(32, -1).double().mean(1)
    assert (chunks - (1 - p)).abs().max().item() < 0.03
    assert torch.equal(y[kept], torch.full_like(y[kept], 1.0) / torch.tensor(1 - p, dtype=dtype))
    w = torch.randn(x.shape, dtype=dtype)
    (g,) = torch.autograd.grad((y * w).sum(), x)
    assert torch.equal(g, y.detach() * w)  # the same mask and scale


@needs_ext
def test_counter_dropout_is_seeded_by_torch_and_thread_independent():
    x = torch.rand(20, 7, 300)
    threads = torch.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 1):
            torch.set_num_threads(n)
            torch.manual_seed(11)
            outs.append(NF.dropout(x, 0.3, backend="cpp"))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])
    torch.manual_seed(12)
    assert not torch.equal(NF.dropout(x, 0.3, backend="cpp"), outs[0])
    # Consecutive calls draw new masks.
    torch.manual_seed(11)
    a, b = NF.dropout(x, 0.3, backend="cpp"), NF.dropout(x, 0.3, backend="cpp")
    assert not torch.equal(a, b)


def test_event_dropout_module():
    from spikekws.layers.linear import EventDropout

    x = torch.rand(5, 2, 9)
    for backend in ("torch", "cpp", "auto"):
        m = EventDropout(0.4, backend=backend)
        m.eval()
        assert m(x) is x
        m.train()
        y = m(x)
        assert y.shape == x.shape
        torch.testing.assert_close(y[y != 0], (x / 0.6)[y != 0], rtol=1e-6, atol=0)
    torch.manual_seed(0)
    ref = torch.nn.Dropout(0.4)(x)
    torch.manual_seed(0)
    assert torch.equal(EventDropout(0.4, backend="torch")(x), ref)


# --------------------------------------------------------------------------------------
# Dispatch and fallbacks
# --------------------------------------------------------------------------------------

class _OddSurrogate(Surrogate):
    """Not one of the kernels' surrogates: the cpp backend must use the reference."""

    name = "odd"

    def derivative(self, x):
        return 0.3 * torch.exp(-x.square())


def test_unknown_surrogate_falls_back_to_reference():
    _compare("lif", _OddSurrogate(), recurrent=True)
    _compare("adlif", _OddSurrogate())


def test_subclass_of_known_surrogate_is_not_taken_for_it():
    class Wider(type(get_surrogate("boxcar"))):
        def derivative(self, x):
            return 0.5 * super().derivative(x / 2)

    assert cpp.surrogate_spec(Wider()) is None
    _compare("lif", Wider())


def test_mixed_dtypes_fall_back_to_reference():
    x = 1.2 + torch.randn(6, 2, 5, dtype=torch.float64)
    alpha = torch.full((5,), 0.8)  # float32 while x is float64
    ref = NF.lif_scan(x, alpha=alpha, surrogate=get_surrogate("boxcar"), backend="torch")
    out = NF.lif_scan(x, alpha=alpha, surrogate=get_surrogate("boxcar"), backend="cpp")
    assert torch.equal(out[0], ref[0]) and torch.equal(out[1].v, ref[1].v)


def test_auto_dispatch_by_device():
    assert NF.resolve_backend("lif", "cuda") == "torch"
    assert NF.resolve_backend("if", "cpu") == "torch"  # no fused IF kernel
    assert NF.resolve_backend("lif", "cpu") == ("cpp" if _OPS is not None else "torch")
    assert set(NF.BACKENDS["auto"]) == set(NF.BACKENDS["torch"])


def test_cpp_backend_rejects_non_cpu_tensors():
    x = torch.empty(4, 2, 3, device="meta")
    with pytest.raises(ValueError, match="CPU"):
        NF.lif_scan(x, alpha=torch.full((3,), 0.9, device="meta"),
                    surrogate=get_surrogate("boxcar"), backend="cpp")


def test_failed_build_warns_once_and_falls_back(monkeypatch, caplog):
    calls = []

    def broken(verbose=False):
        calls.append(1)
        raise RuntimeError("Error building extension: no compiler")

    monkeypatch.setattr(cpp, "_build", broken)
    monkeypatch.setattr(cpp, "_ops", None)
    monkeypatch.setattr(cpp, "_tried", False)
    monkeypatch.setattr(cpp, "_error", None)
    monkeypatch.delenv(cpp.DISABLE_ENV, raising=False)
    x = 1.2 + torch.randn(5, 2, 4, dtype=torch.float64)
    kw = dict(alpha=torch.full((4,), 0.8, dtype=torch.float64), surrogate=get_surrogate("boxcar"))
    with caplog.at_level(logging.WARNING, logger="spikekws"):
        outs = [NF.lif_scan(x, backend=b, **kw) for b in ("cpp", "auto", "cpp")]
        assert NF.resolve_backend("lif", "cpu") == "torch"
    ref = NF.lif_scan(x, backend="torch", **kw)
    for out in outs:
        assert torch.equal(out[0], ref[0])
    assert len(calls) == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "could not build" in warnings[0].getMessage()
    assert "no compiler" in (cpp.build_error() or "")


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setattr(cpp, "_ops", None)
    monkeypatch.setattr(cpp, "_tried", False)
    monkeypatch.setattr(cpp, "_error", None)
    monkeypatch.setenv(cpp.DISABLE_ENV, "1")
    monkeypatch.setattr(cpp, "_build", lambda verbose=False: pytest.fail("must not build"))
    assert not cpp.available()
    assert cpp.DISABLE_ENV in (cpp.build_error() or "")


@needs_ext
def test_compiling_uses_the_reference(monkeypatch):
    # torch.compile / export do not know the custom ops: trace the reference instead.
    calls = []
    fused_apply = cpp._LIFScan.apply
    monkeypatch.setattr(cpp._LIFScan, "apply", lambda *a: calls.append(1) or fused_apply(*a))
    x = (1.0 + torch.randn(5, 2, 6)).requires_grad_(True)
    kw = dict(alpha=torch.full((6,), 0.8), surrogate=get_surrogate("boxcar"), backend="cpp")
    fused, _ = NF.lif_scan(x, **kw)
    assert len(calls) == 1
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    traced, _ = NF.lif_scan(x, **kw)
    assert len(calls) == 1
    assert torch.equal(traced, fused)


@needs_ext
@pytest.mark.parametrize("neuron", ["lif", "rlif", "adlif", "radlif"])
def test_eval_folds_batchnorm_and_equals_reference(neuron, monkeypatch):
    """In eval mode the fused path folds batch norm into the weights: same outputs and
    gradients as the reference, which normalises separately, and no batch-norm call."""
    models = {}
    for backend in ("torch", "cpp"):
        torch.manual_seed(0)
        m = build_model("snn", 5, 3, neuron=neuron, hidden_sizes=[9, 6], dropout=0.0,
                        backend=backend, bias=True).double()
        for mod in m.modules():
            if hasattr(mod, "backend"):
                mod.backend = backend
        g = torch.Generator().manual_seed(2)
        for mod in m.modules():  # non-trivial statistics and affine parameters
            if isinstance(mod, torch.nn.BatchNorm1d):
                n = mod.num_features
                mod.running_mean.copy_(torch.randn(n, generator=g, dtype=torch.float64))
                mod.running_var.copy_(0.2 + torch.rand(n, generator=g, dtype=torch.float64))
                with torch.no_grad():
                    mod.weight.copy_(0.5 + torch.rand(n, generator=g, dtype=torch.float64))
                    mod.bias.copy_(0.3 * torch.randn(n, generator=g, dtype=torch.float64))
        models[backend] = m.eval()
    calls = {"n": 0}
    real_bn = torch.nn.functional.batch_norm

    def counting_bn(*args, **kwargs):
        calls["n"] += 1
        return real_bn(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "batch_norm", counting_bn)
    x = 1.5 * torch.randn(2, 12, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    outs, bn_calls = {}, {}
    for backend, m in models.items():
        xb = x.clone().requires_grad_(True)
        before = calls["n"]
        out, rates = m(xb)
        bn_calls[backend] = calls["n"] - before
        out.sum().backward()
        outs[backend] = (out, rates, xb.grad)
    assert bn_calls == {"torch": 3, "cpp": 0}  # two layers and the readout
    torch.testing.assert_close(outs["cpp"][0], outs["torch"][0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(outs["cpp"][1], outs["torch"][1], rtol=0, atol=0)
    torch.testing.assert_close(outs["cpp"][2], outs["torch"][2], rtol=1e-9, atol=1e-12)
    for (name, p), (_, q) in zip(models["torch"].named_parameters(), models["cpp"].named_parameters()):
        if p.grad is None:
            assert q.grad is None, name
        else:
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-8, atol=1e-10, msg=name)
    # in inference the layers run as fused ops (product and scan in one): the same bits
    with torch.inference_mode():
        out_inf, rates_inf = models["cpp"](x)
    assert torch.equal(out_inf, outs["cpp"][0].detach())
    torch.testing.assert_close(rates_inf, outs["cpp"][1].detach(), rtol=1e-15, atol=0)
    # eval mode normalises separately while a forward hook watches a layer (e.g. operation
    # counting), so that the hook sees the call; training mode uses the batch statistics
    seen = []
    handle = models["cpp"].layers[0].linear.register_forward_hook(lambda *a: seen.append(1))
    before = calls["n"]
    with torch.no_grad():
        out_hooked, _ = models["cpp"](x)
    assert seen == [1] and calls["n"] - before == 1  # only the hooked layer normalises
    handle.remove()
    torch.testing.assert_close(out_hooked, outs["torch"][0].detach(), rtol=1e-10, atol=1e-12)
    before = calls["n"]
    models["cpp"].train()
    models["cpp"](x)
    assert calls["n"] - before == 3



# --------------------------------------------------------------------------------------
# Buffer pool of the kernels' outputs
# --------------------------------------------------------------------------------------

def _big_adlif_case(seed: int):
    """Inputs of an AdLIF layer whose spike output (2 MB) is a pooled block."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(40, 25, 512, generator=g) + 0.8
    p = torch.rand(4, 512, generator=g) * 0.5 + 0.3
    return x, p


def _big_adlif(seed: int, backend: str) -> torch.Tensor:
    x, p = _big_adlif_case(seed)
    with torch.no_grad():
        return NF.adlif_scan(x, None, alpha=p[0], beta=p[1], a=p[2], b=p[3],
                             surrogate=get_surrogate("boxcar"), backend=backend)[0]


@needs_ext
def test_pool_reuses_freed_blocks_without_aliasing_live_ones():
    cpp.release_memory_pool()
    try:
        first = _big_adlif(0, "cpp")
        expected = first.clone()
        second = _big_adlif(1, "cpp")  # `first` is alive: its block must not be handed out
        assert first.data_ptr() != second.data_ptr()
        assert torch.equal(first, expected)
        ptr = second.data_ptr()
        del second
        kept = cpp.memory_pool()
        assert kept["cached_bytes"] >= 40 * 25 * 512 * 4 and kept["cached_blocks"] >= 1
        third = _big_adlif(1, "cpp")
        after = cpp.memory_pool()
        assert third.data_ptr() == ptr  # the freed block came back ...
        assert after["hits"] > kept["hits"]
        assert torch.equal(third, _big_adlif(1, "torch"))  # ... holding the new result
        assert torch.equal(first, expected)
        freed = cpp.release_memory_pool()
        assert freed == after["cached_bytes"]
        assert cpp.memory_pool()["cached_bytes"] == 0
    finally:
        cpp.release_memory_pool()


@needs_ext
def test_pool_limit_and_small_requests():
    cpp.release_memory_pool()
    limit = cpp.memory_pool()["limit_bytes"]
    try:
        cpp.release_memory_pool(limit_mb=0)  # off: freed blocks go back to the system
        y = _big_adlif(0, "cpp")
        del y
        assert cpp.memory_pool()["cached_bytes"] == 0
        cpp.release_memory_pool(limit_mb=3)  # room for one 2 MB block, not two
        a, b = _big_adlif(0, "cpp"), _big_adlif(1, "cpp")
        del a, b
        info = cpp.memory_pool()
        assert info["cached_blocks"] == 1 and info["cached_bytes"] <= 3 * 2**20
        # below 1 MB the default allocator serves: nothing is kept
        cpp.release_memory_pool(limit_mb=limit / 2**20)
        small = torch.ops.spikekws_scan.li_forward(torch.randn(10, 4, 8), torch.zeros(4, 8),
                                                   torch.full((8,), 0.9))
        del small
        assert cpp.memory_pool()["cached_bytes"] == 0
        with pytest.raises(ValueError, match="limit_mb"):
            cpp.release_memory_pool(limit_mb=-1)
    finally:
        cpp.release_memory_pool(limit_mb=limit / 2**20)


@needs_ext
def test_pooled_outputs_resize_and_train(tmp_path):
    """Pooled tensors behave as any: resizable, and a training step through them matches
    the reference."""
    y = _big_adlif(0, "cpp")
    y.resize_(50, 25, 512)
    y.fill_(2.0)
    assert y.sum().item() == 2.0 * 50 * 25 * 512
    x, p = _big_adlif_case(2)
    grads = {}
    for backend in ("cpp", "torch"):
        xx = x.clone().requires_grad_(True)
        s, _ = NF.adlif_scan(xx, None, alpha=p[0], beta=p[1], a=p[2], b=p[3],
                             surrogate=get_surrogate("boxcar"), backend=backend)
        (s * torch.linspace(-1, 1, 512)).sum().backward()
        grads[backend] = xx.grad
    _close(grads["cpp"], grads["torch"], torch.float32, "grad x")


@needs_ext
def test_pool_size_from_environment(tmp_path):
    import os
    import subprocess
    import sys

    code = ("from spikekws.neurons.functional.backends import cpp\n"
            "print(cpp.memory_pool()['limit_bytes'])\n")
    for value, expected in (("0", 0), ("16", 16 * 2**20), ("junk", 1024 * 2**20)):
        env = dict(os.environ, SPIKEKWS_POOL_MB=value)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=300, check=True)
        assert int(out.stdout.split()[-1]) == expected, value
        assert ("SPIKEKWS_POOL_MB=junk is not a whole number" in out.stderr) == (value == "junk")


# --------------------------------------------------------------------------------------
# Fused layers: neuron(x W^T + b) in one op, for inference
# --------------------------------------------------------------------------------------

def _layer_case(T, M, K, H, sparse, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = ((torch.rand(T, M, K, generator=g) < 0.08).to(dtype) if sparse
         else torch.randn(T, M, K, generator=g).to(dtype))
    w = (0.3 * torch.randn(H, K, generator=g)).to(dtype)
    b = (0.1 * torch.randn(H, generator=g)).to(dtype)
    p = (0.3 + 0.5 * torch.rand(4, H, generator=g)).to(dtype)
    V = (0.1 * torch.randn(H, H, generator=g)).to(dtype)
    st = [(0.5 * torch.rand(M, H, generator=g)).to(dtype),
          (0.1 * torch.rand(M, H, generator=g)).to(dtype),
          (torch.rand(M, H, generator=g) < 0.3).to(dtype)]
    return x, w, b, p, V, st


@needs_ext
@pytest.mark.parametrize("T,M,K,H,sparse,dtype", [
    (100, 32, 140, 512, False, torch.float32),   # dense AVX-512 path, chunks of 8 steps
    (100, 32, 512, 512, True, torch.float32),    # event path
    (7, 5, 33, 19, True, torch.float32),         # few rows: GEMM path
    (9, 3, 20, 40, False, torch.float64),
    (6, 300, 48, 600, True, torch.float32),      # a step over the chunk size: chunks of 1
    (1, 70, 30, 65, False, torch.float32),       # T = 1
])
@pytest.mark.parametrize("recurrent", [False, True])
def test_fused_layer_equals_product_then_scan(T, M, K, H, sparse, dtype, recurrent):
    """The fused layer ops give the spikes and states of event_linear_forward followed by the
    scan, bit for bit (each row of the product is computed the same way)."""
    ops = torch.ops.spikekws_scan
    x, w, b, p, V, (v0, w0, s0) = _layer_case(T, M, K, H, sparse, dtype)
    rec = V if recurrent else None
    for bias in (b, None):
        y, _ = ops.event_linear_forward(x.reshape(-1, K), w, bias)
        y = y.reshape(T, M, H)
        ref = ops.adlif_forward(y, v0, w0, s0, p[0], p[1], p[2], p[3], rec, 1.0, False)
        out = ops.adlif_linear_forward(x, w, bias, v0, w0, s0, p[0], p[1], p[2], p[3], rec, 1.0)
        for i in range(3):
            assert torch.equal(out[i], ref[i]), i
        assert out[3].dtype == torch.float64 and out[3].item() == ref[0].double().sum().item()
        # batch-first features ([M, T, K] contiguous, seen time-major) are read in place
        xb = x.transpose(0, 1).contiguous().transpose(0, 1)
        assert not xb.is_contiguous() or T == 1 or M == 1
        outb = ops.adlif_linear_forward(xb, w, bias, v0, w0, s0, p[0], p[1], p[2], p[3], rec, 1.0)
        for i in range(4):
            assert torch.equal(outb[i], out[i]), i
        ref = ops.lif_forward(y, v0, s0, p[0], rec, 1.0, False)
        out = ops.lif_linear_forward(x, w, bias, v0, s0, p[0], rec, 1.0)
        assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])
        assert out[2].item() == ref[0].double().sum().item()
        assert 0 < ref[0].mean() < 1 or T * M < 50


@needs_ext
def test_fused_layer_rejects_bad_shapes():
    ops = torch.ops.spikekws_scan
    x, w, b, p, V, (v0, w0, s0) = _layer_case(5, 4, 10, 6, False, torch.float32)
    with pytest.raises(RuntimeError, match="fused layer x must be"):
        ops.lif_linear_forward(x[:, :, ::2], w[:, :5], b, v0, s0, p[0], None, 1.0)
    with pytest.raises(RuntimeError, match="fused layer weight"):
        ops.lif_linear_forward(x, w[:, :9], b, v0, s0, p[0], None, 1.0)
    with pytest.raises(RuntimeError, match="fused layer bias"):
        ops.lif_linear_forward(x, w, b[:5], v0, s0, p[0], None, 1.0)
    with pytest.raises(RuntimeError, match="states must be"):
        ops.adlif_linear_forward(x, w, b, v0[:3], w0, s0, p[0], p[1], p[2], p[3], None, 1.0)


@needs_ext
@pytest.mark.parametrize("neuron", ["lif", "adlif", "rlif", "radlif"])
def test_spiking_layer_takes_the_fused_op_in_inference_only(neuron, monkeypatch):
    from spikekws.layers.linear import SpikingLinear, project

    torch.manual_seed(0)
    layer = SpikingLinear(24, 40, neuron=neuron, backend="cpp")
    x = torch.randn(1, 6, 24) + 0.3 * torch.randn(30, 6, 24)  # slowly varying, like features
    layer.train()
    layer(x)  # batch-norm running statistics
    layer.eval()
    with torch.no_grad():
        layer.norm.norm.weight.fill_(2.0)
    calls = []
    name = "adlif_linear_scan_cpp" if "adlif" in neuron else "lif_linear_scan_cpp"
    original = getattr(cpp, name)

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(cpp, name, spy)
    with torch.inference_mode():
        s, state = layer.spikes(x)
        # the unfused path: the folded product, then the neuron
        s_ref, state_ref = layer.neuron(project(layer.linear, layer.norm, x))
    assert calls == [True]
    assert torch.equal(s, s_ref) and 0 < s.mean() < 1
    with torch.inference_mode():
        _, _, rate = layer.spikes_and_rate(x)
    assert rate.dtype == s.dtype and rate.item() == pytest.approx(s.mean().item(), rel=1e-6)
    calls.clear()
    for a, b in zip(state, state_ref):
        assert torch.equal(a, b)
    # with a gradient to record, in training mode, or with hooks: the unfused path
    s_grad, _ = layer.spikes(x)
    # a gradient to record: not even tried (nor the fold computed for it)
    assert calls == [] and s_grad.requires_grad and torch.equal(s_grad.detach(), s)
    handle = layer.neuron.register_forward_hook(lambda *a: None)
    with torch.no_grad():
        s_hooked, _ = layer.spikes(x)
    handle.remove()
    assert calls == [] and torch.equal(s_hooked, s)  # hooked neuron: not even tried
    layer.train()
    with torch.no_grad():
        layer.spikes(x)
    assert calls == []  # batch norm in training mode is not folded: not even tried


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("affine,bias", [(True, True), (False, False), (True, False)])
def test_fold_batchnorm_op_gives_the_python_bits(dtype, affine, bias):
    """The C++ fold (taken without gradients once the ops are loaded) computes the same
    operations as the torch one, so the same bits; with gradients the torch one runs."""
    from spikekws.layers import linear as L

    g = torch.Generator().manual_seed(5)
    bn = torch.nn.BatchNorm1d(37, affine=affine, eps=1e-3).to(dtype)
    bn.running_mean.copy_(torch.randn(37, generator=g, dtype=dtype))
    bn.running_var.copy_(0.1 + torch.rand(37, generator=g, dtype=dtype))
    if affine:
        with torch.no_grad():
            bn.weight.copy_(torch.randn(37, generator=g, dtype=dtype))
            bn.bias.copy_(torch.randn(37, generator=g, dtype=dtype))
    w = torch.randn(37, 3, 5, generator=g, dtype=dtype)  # conv-shaped: per output channel
    b = torch.randn(37, generator=g, dtype=dtype) if bias else None
    with torch.no_grad():
        assert L._fold_ops(w, b, bn) is not None
        wc, bc = L.fold_batchnorm(w, b, bn)
    # the torch formula, spelled out
    gam = bn.weight if affine else torch.ones(37, dtype=dtype)
    bet = bn.bias if affine else torch.zeros(37, dtype=dtype)
    scale = gam.detach() / torch.sqrt(bn.running_var + bn.eps)
    assert torch.equal(wc, w * scale.reshape(-1, 1, 1))
    assert torch.equal(bc, ((b if bias else torch.zeros(37, dtype=dtype)) - bn.running_mean) * scale + bet.detach())
    if affine:  # a gradient to record: the differentiable torch path
        assert L._fold_ops(w, b, bn) is None
        wg, _ = L.fold_batchnorm(w, b, bn)
        assert wg.requires_grad and torch.equal(wg.detach(), wc)
    with pytest.raises(RuntimeError, match="scale must be"):
        torch.ops.spikekws_scan.fold_scale(w, b, bn.running_mean, bn.running_var[:5], None)
