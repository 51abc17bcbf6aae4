"""Golden membrane traces worked out by hand from the kernel equations.

All parameters are dyadic fractions (0.5, 0.25, 0.375, ...), so every trace value below is
exactly representable and the kernels must reproduce it to rounding error.
"""
from __future__ import annotations

import math

import pytest
import torch

from spikekws.neurons import IF, LI, LIF, AdLIF, RadLIF, get_surrogate
from spikekws.neurons import functional as NF

DT = 0.01
SURR = get_surrogate("boxcar")


def _tau(alpha: float, dt: float = DT) -> float:
    """The time constant giving decay ``alpha``: alpha = exp(-dt/tau) <=> tau = -dt/ln(alpha)."""
    return -dt / math.log(alpha)


def _col(values):
    """[T] literals -> [T, 1, 1] float64 tensor."""
    return torch.tensor(values, dtype=torch.float64).reshape(-1, 1, 1)


# --------------------------------------------------------------------------------------
# LIF: v_t = alpha (v_{t-1} - theta s_{t-1}) + (1 - alpha) x_t,  s_t = 1[v_t >= theta]
# alpha = 0.5, theta = 1, x_t = 1.5 (so (1 - alpha) x = 0.75), v_0 = s_0 = 0:
#   t=1: v = 0.5*0                 + 0.75 = 0.75            s=0
#   t=2: v = 0.5*0.75              + 0.75 = 1.125           s=1
#   t=3: v = 0.5*(1.125 - 1)       + 0.75 = 0.8125          s=0
#   t=4: v = 0.5*0.8125            + 0.75 = 1.15625         s=1
#   t=5: v = 0.5*(1.15625 - 1)     + 0.75 = 0.828125        s=0
#   t=6: v = 0.5*0.828125          + 0.75 = 1.1640625       s=1
#   t=7: v = 0.5*(1.1640625 - 1)   + 0.75 = 0.83203125      s=0
#   t=8: v = 0.5*0.83203125        + 0.75 = 1.166015625     s=1
LIF_X = 1.5
LIF_V = [0.75, 1.125, 0.8125, 1.15625, 0.828125, 1.1640625, 0.83203125, 1.166015625]
LIF_S = [0, 1, 0, 1, 0, 1, 0, 1]


def test_lif_functional_golden():
    alpha = torch.tensor(0.5, dtype=torch.float64)
    x = torch.full((8, 1, 1), LIF_X, dtype=torch.float64)
    state = NF.lif_init(x[0])
    vs, ss = [], []
    for t in range(8):
        s, state = NF.lif_step(x[t], state, alpha, SURR, 1.0)
        vs.append(state.v.item())
        ss.append(s.item())
    assert vs == pytest.approx(LIF_V, abs=1e-12)
    assert ss == LIF_S
    spikes, final = NF.lif_scan(x, alpha=alpha, surrogate=SURR, v_threshold=1.0)
    assert spikes.flatten().tolist() == LIF_S
    assert final.v.item() == pytest.approx(LIF_V[-1], abs=1e-12)
    assert final.s.item() == LIF_S[-1]


def test_lif_threshold_scales_trace():
    # With theta = 2 and x = 3 every value of the theta=1, x=1.5 trace doubles.
    alpha = torch.tensor(0.5, dtype=torch.float64)
    x = torch.full((8, 1, 1), 2 * LIF_X, dtype=torch.float64)
    spikes, final = NF.lif_scan(x, alpha=alpha, surrogate=SURR, v_threshold=2.0)
    assert spikes.flatten().tolist() == LIF_S
    assert final.v.item() == pytest.approx(2 * LIF_V[-1], abs=1e-12)


def test_lif_module_golden():
    m = LIF(1, dt=DT, tau_mem=_tau(0.5), v_threshold=1.0, learn_tau=False).double()
    assert m.alpha.item() == pytest.approx(0.5, abs=1e-12)
    x = torch.full((8, 1, 1), LIF_X, dtype=torch.float64)
    state, vs = None, []
    for t in range(8):
        _, state = m.step(x[t], state)
        vs.append(state.v.item())
    assert vs == pytest.approx(LIF_V, abs=1e-9)
    spikes, final = m(x)
    assert spikes.flatten().tolist() == LIF_S
    assert final.v.item() == pytest.approx(LIF_V[-1], abs=1e-9)


def test_lif_module_per_neuron_alpha():
    # Two neurons: alpha 0.5 (trace above) and alpha 0.75 with x = 1:
    #   v = 0.25, 0.4375, 0.578125, 0.68359375 (= 1 - 0.75^t), never reaching theta = 1.
    m = LIF(2, dt=DT, tau_mem=(_tau(0.5), _tau(0.75)), learn_tau=False).double()
    with torch.no_grad():
        m.tau_mem.copy_(torch.tensor([_tau(0.5), _tau(0.75)], dtype=torch.float64))
    x = torch.tensor([LIF_X, 1.0], dtype=torch.float64).expand(4, 1, 2)
    state, v0, v1 = None, [], []
    for t in range(4):
        _, state = m.step(x[t], state)
        v0.append(state.v[0, 0].item())
        v1.append(state.v[0, 1].item())
    assert v0 == pytest.approx(LIF_V[:4], abs=1e-9)
    assert v1 == pytest.approx([0.25, 0.4375, 0.578125, 0.68359375], abs=1e-9)


# --------------------------------------------------------------------------------------
# adLIF:  w_t = beta w_{t-1} + a v_{t-1} + b s_{t-1}
#         v_t = alpha (v_{t-1} - theta s_{t-1}) + (1 - alpha)(x_t - w_t),  s_t = 1[v_t >= theta]
# alpha = beta = 0.5, a = 0.25, b = 0.5, theta = 1, x_t = 3, v_0 = w_0 = s_0 = 0:
#   t=1: w = 0                                   = 0
#        v = 0.5*0 + 0.5*(3 - 0)                 = 1.5          s=1
#   t=2: w = 0.5*0 + 0.25*1.5 + 0.5*1            = 0.875
#        v = 0.5*(1.5 - 1) + 0.5*(3 - 0.875)     = 1.3125       s=1
#   t=3: w = 0.5*0.875 + 0.25*1.3125 + 0.5       = 1.265625
#        v = 0.5*0.3125 + 0.5*(3 - 1.265625)     = 1.0234375    s=1
#   t=4: w = 0.5*1.265625 + 0.25*1.0234375 + 0.5 = 1.388671875
#        v = 0.5*0.0234375 + 0.5*(3 - 1.388671875) = 0.8173828125  s=0
#   t=5: w = 0.5*1.388671875 + 0.25*0.8173828125 + 0 = 0.898681640625
#        v = 0.5*0.8173828125 + 0.5*(3 - 0.898681640625) = 1.4593505859375  s=1
#   t=6: w = 0.5*0.898681640625 + 0.25*1.4593505859375 + 0.5 = 1.314178466796875
#        v = 0.5*0.4593505859375 + 0.5*(3 - 1.314178466796875) = 1.0725860595703125  s=1
ADLIF_PARAMS = dict(alpha=0.5, beta=0.5, a=0.25, b=0.5)
ADLIF_X = 3.0
ADLIF_W = [0.0, 0.875, 1.265625, 1.388671875, 0.898681640625, 1.314178466796875]
ADLIF_V = [1.5, 1.3125, 1.0234375, 0.8173828125, 1.4593505859375, 1.0725860595703125]
ADLIF_S = [1, 1, 1, 0, 1, 1]

# Resonant case (a < 0): alpha = beta = 0.5, a = -0.5, b = 0.5, theta = 1, x_t = 1:
#   t=1: w = 0;                                   v = 0.5*(1 - 0)          = 0.5     s=0
#   t=2: w = 0.5*0 - 0.5*0.5          = -0.25;    v = 0.25 + 0.5*1.25      = 0.875   s=0
#   t=3: w = -0.125 - 0.4375          = -0.5625;  v = 0.4375 + 0.5*1.5625  = 1.21875 s=1
#   t=4: w = -0.28125 - 0.609375 + 0.5 = -0.390625
#        v = 0.5*(1.21875 - 1) + 0.5*1.390625                            = 0.8046875  s=0
#   t=5: w = -0.1953125 - 0.40234375  = -0.59765625
#        v = 0.40234375 + 0.5*1.59765625                                = 1.201171875 s=1
ADLIF_NEG_PARAMS = dict(alpha=0.5, beta=0.5, a=-0.5, b=0.5)
ADLIF_NEG_W = [0.0, -0.25, -0.5625, -0.390625, -0.59765625]
ADLIF_NEG_V = [0.5, 0.875, 1.21875, 0.8046875, 1.201171875]
ADLIF_NEG_S = [0, 0, 1, 0, 1]


@pytest.mark.parametrize("params,x_val,ws,vs,ss", [
    (ADLIF_PARAMS, ADLIF_X, ADLIF_W, ADLIF_V, ADLIF_S),
    (ADLIF_NEG_PARAMS, 1.0, ADLIF_NEG_W, ADLIF_NEG_V, ADLIF_NEG_S),
], ids=["spike-adaptation", "resonant"])
def test_adlif_functional_golden(params, x_val, ws, vs, ss):
    p = {k: torch.tensor(v, dtype=torch.float64) for k, v in params.items()}
    n = len(vs)
    x = torch.full((n, 1, 1), x_val, dtype=torch.float64)
    state = NF.adlif_init(x[0])
    got_v, got_w, got_s = [], [], []
    for t in range(n):
        s, state = NF.adlif_step(x[t], state, p["alpha"], p["beta"], p["a"], p["b"], SURR, 1.0)
        got_v.append(state.v.item())
        got_w.append(state.w.item())
        got_s.append(s.item())
    assert got_w == pytest.approx(ws, abs=1e-12)
    assert got_v == pytest.approx(vs, abs=1e-12)
    assert got_s == ss
    spikes, final = NF.adlif_scan(x, surrogate=SURR, v_threshold=1.0, **p)
    assert spikes.flatten().tolist() == ss
    assert final.v.item() == pytest.approx(vs[-1], abs=1e-12)
    assert final.w.item() == pytest.approx(ws[-1], abs=1e-12)


@pytest.mark.parametrize("cls", [AdLIF, RadLIF])
def test_adlif_module_golden(cls):
    m = cls(1, dt=DT, tau_mem=_tau(0.5), tau_adapt=_tau(0.5), learn_tau=False).double()
    with torch.no_grad():
        m.a.fill_(0.25)
        m.b.fill_(0.5)
    assert m.alpha.item() == pytest.approx(0.5, abs=1e-12)
    assert m.beta.item() == pytest.approx(0.5, abs=1e-12)
    x = torch.full((6, 1, 1), ADLIF_X, dtype=torch.float64)
    state, vs, ws = None, [], []
    for t in range(6):
        _, state = m.step(x[t], state)
        vs.append(state.v.item())
        ws.append(state.w.item())
    assert vs == pytest.approx(ADLIF_V, abs=1e-9)
    assert ws == pytest.approx(ADLIF_W, abs=1e-9)
    spikes, _ = m(x)
    assert spikes.flatten().tolist() == ADLIF_S


def test_adlif_module_clamps_a_and_b():
    # a is clamped to [-1, 1] and b to [0, 2]: a = 5 acts as a = 1, b = -3 as b = 0.
    # alpha = beta = 0.5, x = 1, theta = 1:
    #   t=1: w = 0;                  v = 0.5*1          = 0.5   s=0
    #   t=2: w = 0 + 1*0.5 = 0.5;    v = 0.25 + 0.5*0.5 = 0.5   s=0
    #   t=3: w = 0.25 + 0.5 = 0.75;  v = 0.25 + 0.5*0.25 = 0.375 s=0
    m = AdLIF(1, dt=DT, tau_mem=_tau(0.5), tau_adapt=_tau(0.5), learn_tau=False).double()
    with torch.no_grad():
        m.a.fill_(5.0)
        m.b.fill_(-3.0)
    x = torch.ones(3, 1, 1, dtype=torch.float64)
    state, vs, ws = None, [], []
    for t in range(3):
        _, state = m.step(x[t], state)
        vs.append(state.v.item())
        ws.append(state.w.item())
    assert ws == pytest.approx([0.0, 0.5, 0.75], abs=1e-9)
    assert vs == pytest.approx([0.5, 0.5, 0.375], abs=1e-9)


# --------------------------------------------------------------------------------------
# IF (reset by subtraction): v_t = v_{t-1} - theta s_{t-1} + x_t,  s_t = 1[v_t >= theta]
# theta = 1, x_t = 0.375, v_0 = s_0 = 0:
#   t=1: 0.375   t=2: 0.75   t=3: 1.125 (s=1)
#   t=4: 1.125 - 1 + 0.375 = 0.5   t=5: 0.875   t=6: 1.25 (s=1)
#   t=7: 1.25 - 1 + 0.375 = 0.625  t=8: 1.0 (s=1: v = theta fires)
# Spike count 3 = floor(8 * 0.375 / 1).
IF_X = 0.375
IF_V = [0.375, 0.75, 1.125, 0.5, 0.875, 1.25, 0.625, 1.0]
IF_S = [0, 0, 1, 0, 0, 1, 0, 1]


def test_if_functional_golden():
    x = torch.full((8, 1, 1), IF_X, dtype=torch.float64)
    state = NF.LIFState(torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64))
    vs, ss = [], []
    for t in range(8):
        s, state = NF.if_step(x[t], state, SURR, 1.0)
        vs.append(state.v.item())
        ss.append(s.item())
    assert vs == IF_V  # exact: only dyadic additions
    assert ss == IF_S
    spikes, final = NF.if_scan(x, surrogate=SURR, v_threshold=1.0)
    assert spikes.flatten().tolist() == IF_S
    assert final.v.item() == IF_V[-1]


def test_if_module_golden():
    m = IF(1, v_threshold=1.0)
    x = torch.full((8, 1, 1), IF_X, dtype=torch.float64)
    state, vs = None, []
    for t in range(8):
        _, state = m.step(x[t], state)
        vs.append(state.v.item())
    assert vs == IF_V
    spikes, _ = m(x)
    assert spikes.flatten().tolist() == IF_S


@pytest.mark.parametrize("theta", [1.0, 0.5, 2.0])
@pytest.mark.parametrize("steps", [1, 5, 8, 16])
def test_if_spike_count_property(theta, steps):
    # Constant input x >= 0 from v_0 = 0: count = min(floor(T x / theta), T).
    xs = [k / 16 * theta for k in range(0, 41)]  # 0 .. 2.5 theta in dyadic steps
    x = torch.tensor(xs, dtype=torch.float64).expand(steps, 1, len(xs))
    spikes, _ = NF.if_scan(x, surrogate=SURR, v_threshold=theta)
    counts = spikes.sum(0).flatten().tolist()
    expected = [min(math.floor(steps * xv / theta), steps) for xv in xs]
    assert counts == expected
    m = IF(len(xs), v_threshold=theta)
    assert m(x)[0].sum(0).flatten().tolist() == expected


# --------------------------------------------------------------------------------------
# LI: v_t = alpha v_{t-1} + (1 - alpha) x_t, v_0 = 0.
#   alpha = 0.5,  x = 1:  v = 0.5, 0.75, 0.875, 0.9375, 0.96875, 0.984375 (= 1 - 0.5^t)
#   alpha = 0.75, x_t = 4, 0, 0, 0, 0, 0 (a pulse): v = 1, 0.75, 0.5625, 0.421875,
#   0.31640625, 0.2373046875 (= 0.75^(t-1))
LI_V_STEP = [0.5, 0.75, 0.875, 0.9375, 0.96875, 0.984375]
LI_V_PULSE = [1.0, 0.75, 0.5625, 0.421875, 0.31640625, 0.2373046875]


def test_li_functional_golden():
    alpha = torch.tensor([0.5, 0.75], dtype=torch.float64)
    x = torch.zeros(6, 1, 2, dtype=torch.float64)
    x[:, 0, 0] = 1.0
    x[0, 0, 1] = 4.0
    v, final = NF.li_scan(x, alpha=alpha)
    assert v[:, 0, 0].tolist() == pytest.approx(LI_V_STEP, abs=1e-12)
    assert v[:, 0, 1].tolist() == pytest.approx(LI_V_PULSE, abs=1e-12)
    assert final.v[0].tolist() == pytest.approx([LI_V_STEP[-1], LI_V_PULSE[-1]], abs=1e-12)
    st = NF.LIState(torch.zeros(1, 2, dtype=torch.float64))
    for t in range(6):
        v_t, st = NF.li_step(x[t], st, alpha)
    torch.testing.assert_close(v_t, v[-1])


def test_li_module_golden():
    m = LI(2, dt=DT, tau_mem=(_tau(0.5), _tau(0.75)), learn_tau=False).double()
    with torch.no_grad():
        m.tau_mem.copy_(torch.tensor([_tau(0.5), _tau(0.75)], dtype=torch.float64))
    torch.testing.assert_close(m.alpha, torch.tensor([0.5, 0.75], dtype=torch.float64))
    x = torch.zeros(6, 1, 2, dtype=torch.float64)
    x[:, 0, 0] = 1.0
    x[0, 0, 1] = 4.0
    v, _ = m(x)
    assert v[:, 0, 0].tolist() == pytest.approx(LI_V_STEP, abs=1e-9)
    assert v[:, 0, 1].tolist() == pytest.approx(LI_V_PULSE, abs=1e-9)
    state = None
    for t in range(3):
        v_t, state = m.step(x[t], state)
    assert v_t[0].tolist() == pytest.approx([LI_V_STEP[2], LI_V_PULSE[2]], abs=1e-9)
