"""Contract every registered spiking neuron must meet (parametrised over ``NEURONS``)."""
from __future__ import annotations

import pytest
import torch

from spikekws.neurons import NEURONS, build_neuron
from spikekws.neurons import functional as NF

NAMES = NEURONS.list()
H, T, B = 6, 16, 3


def _make(name: str, seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_neuron(name, H, dt=0.01, **kwargs).double()


def _input(seed: int = 1, batch: int = B, steps: int = T) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # Mean drive above threshold plus noise: every neuron type spikes sometimes, not always.
    return 1.5 + torch.randn(steps, batch, H, generator=g, dtype=torch.float64)


def _state_fields(state):
    return tuple(state) if isinstance(state, tuple) else (state,)


def _assert_states_equal(a, b, **tol):
    fa, fb = _state_fields(a), _state_fields(b)
    assert type(a) is type(b)
    assert len(fa) == len(fb)
    for x, y in zip(fa, fb):
        torch.testing.assert_close(x, y, **tol)


def test_registry_is_not_empty():
    assert {"lif", "rlif", "adlif", "radlif", "if"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_scan_equals_loop_of_step(name):
    m = _make(name)
    x = _input()
    spikes, state = m(x)
    assert spikes.shape == x.shape and spikes.dtype == torch.float64
    st = None
    outs = []
    for t in range(T):
        s_t, st = m.step(x[t], st)
        outs.append(s_t)
    torch.testing.assert_close(spikes, torch.stack(outs), rtol=0, atol=1e-12)
    _assert_states_equal(state, st, rtol=0, atol=1e-12)
    # Spikes are binary.
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("name", NAMES)
def test_zero_input_gives_no_spikes_and_zero_state(name):
    m = _make(name)
    x = torch.zeros(T, B, H, dtype=torch.float64)
    spikes, state = m(x)
    assert spikes.abs().sum().item() == 0.0
    for f in _state_fields(state):
        assert f.shape == (B, H)
        assert f.abs().sum().item() == 0.0


@pytest.mark.parametrize("name", NAMES)
def test_gradients_finite_and_nonzero(name):
    m = _make(name)
    x = _input().requires_grad_(True)
    spikes, _ = m(x)
    rate = spikes.mean().item()
    assert 0.0 < rate < 1.0, f"{name}: test input should make some (not all) spikes, rate={rate}"
    w = torch.randn(spikes.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    (spikes * w).sum().backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0
    trainable = [(n, p) for n, p in m.named_parameters() if p.requires_grad]
    for pname, p in trainable:
        assert p.grad is not None, f"{name}.{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}.{pname} gradient not finite"
        assert p.grad.abs().sum() > 0, f"{name}.{pname} gradient is zero"


@pytest.mark.parametrize("name", NAMES)
def test_state_is_explicit_and_starts_at_zero(name):
    m = _make(name)
    x = _input()
    full, full_state = m(x)
    k = T // 2 - 1
    first, mid_state = m(x[:k])
    second, end_state = m(x[k:], mid_state)
    torch.testing.assert_close(torch.cat([first, second]), full, rtol=0, atol=1e-12)
    _assert_states_equal(end_state, full_state, rtol=0, atol=1e-12)
    # Passing an explicit all-zero state is the same as passing none.
    zero_state = type(mid_state)(*(torch.zeros_like(f) for f in _state_fields(mid_state)))
    again, again_state = m(x, zero_state)
    torch.testing.assert_close(again, full, rtol=0, atol=0)
    _assert_states_equal(again_state, full_state, rtol=0, atol=0)
    # A non-zero initial state does matter (the state argument is really used).
    fields = [torch.zeros_like(f) for f in _state_fields(mid_state)]
    fields[0] = torch.full_like(fields[0], 0.6)  # membrane potential v
    hot = type(mid_state)(*fields)
    _, hot_state = m(x[:1], hot)
    _, cold_state = m(x[:1])
    assert not torch.equal(hot_state[0], cold_state[0])


@pytest.mark.parametrize("name", NAMES)
def test_module_holds_no_batch_size_or_state(name):
    m = _make(name)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x5 = _input(seed=3, batch=5)
    s1, st1 = m(x5[:, :1])
    s5, st5 = m(x5)
    assert s1.shape == (T, 1, H) and s5.shape == (T, 5, H)
    torch.testing.assert_close(s5[:, :1], s1, rtol=0, atol=0)
    for f1, f5 in zip(_state_fields(st1), _state_fields(st5)):
        assert f1.shape == (1, H) and f5.shape == (5, H)
        torch.testing.assert_close(f5[:1], f1, rtol=0, atol=1e-12)
    # Batch 1 again after batch 5 gives the same result, and nothing was stored.
    s1b, _ = m(x5[:, :1])
    torch.testing.assert_close(s1b, s1, rtol=0, atol=0)
    after = m.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), f"{name}: forward changed {k}"


def _recurrent_module(name: str):
    m = _make(name)
    if getattr(m, "recurrent_weight", None) is None:
        try:
            m = _make(name, recurrent=True)
        except TypeError:
            return None
    return m if getattr(m, "recurrent_weight", None) is not None else None


@pytest.mark.parametrize("name", NAMES)
def test_recurrent_diagonal_has_no_effect(name):
    m = _recurrent_module(name)
    if m is None:
        pytest.skip(f"{name} has no recurrent weights")
    x = _input()
    base, base_state = m(x)
    assert base.sum() > 0
    with torch.no_grad():
        m.recurrent_weight.add_(torch.eye(H, dtype=torch.float64) * 7.0)
    diag, diag_state = m(x)
    torch.testing.assert_close(diag, base, rtol=0, atol=0)
    _assert_states_equal(diag_state, base_state, rtol=0, atol=0)
    # The off-diagonal entries are used.
    with torch.no_grad():
        m.recurrent_weight.add_(torch.ones(H, H, dtype=torch.float64) * 3.0)
    off, off_state = m(x)
    assert not torch.allclose(off_state[0], base_state[0])
    # And the self-connection receives no gradient.
    m.zero_grad()
    spikes, _ = m(x)
    spikes.sum().backward()
    g = m.recurrent_weight.grad
    assert g is not None
    assert g.diagonal().abs().max().item() == 0.0


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("backend", sorted(NF.BACKENDS))
def test_backend_matches_torch_reference(name, backend):
    ref = _make(name, seed=4)
    other = _make(name, seed=4, backend=backend)
    other.load_state_dict(ref.state_dict())
    x1 = _input(seed=6).requires_grad_(True)
    x2 = x1.detach().clone().requires_grad_(True)
    s_ref, st_ref = ref(x1)
    s_oth, st_oth = other(x2)
    torch.testing.assert_close(s_oth, s_ref)
    _assert_states_equal(st_oth, st_ref)
    w = torch.randn(s_ref.shape, dtype=torch.float64)
    (s_ref * w).sum().backward()
    (s_oth * w).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad)
    for (n, p), (_, q) in zip(ref.named_parameters(), other.named_parameters()):
        if p.requires_grad:
            torch.testing.assert_close(q.grad, p.grad, msg=f"{name}.{n}")
