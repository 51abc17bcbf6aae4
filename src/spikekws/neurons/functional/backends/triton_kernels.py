"""Triton kernels of :mod:`.triton_scan` (imported only when those scans first run: importing
triton is slow, and the interpreter reads ``TRITON_INTERPRET`` when the kernels are defined).

Equations: :mod:`spikekws.neurons.functional.lif` and :mod:`~spikekws.neurons.functional.adlif`.
"""
import triton
import triton.language as tl


@triton.jit
def _surrogate_grad(u, p1, p2, SID: tl.constexpr):
    au = tl.abs(u)
    if SID == 0:  # boxcar: p1 = width / 2, p2 = scale
        g = tl.where(au <= p1, p2 + 0.0 * u, 0.0 * u)
    elif SID == 1:  # fast sigmoid: p1 = slope
        d = 1.0 + p1 * au
        g = 1.0 / (d * d)
    elif SID == 2:  # sigmoid: k e / (1 + e)^2, e = exp(-k |u|)
        e = tl.exp(-p1 * au)
        d = 1.0 + e
        g = p1 * e / (d * d)
    elif SID == 3:  # atan: p1 = alpha / 2, p2 = pi / 2 * alpha
        z = p2 * u
        g = p1 / (1.0 + z * z)
    else:  # triangle: p1 = width
        r = 1.0 - au / p1
        g = tl.where(r > 0.0, r / p1, 0.0 * u)
    return g


@triton.jit
def scan_forward(x_ptr, v0_ptr, w0_ptr, s0_ptr, alpha_ptr, beta_ptr, a_ptr, b_ptr,
                 s_ptr, v_ptr, w_ptr, n_steps, MH, H, theta,
                 ADAPT: tl.constexpr, BLOCK: tl.constexpr):
    # x, s, v, w: [n_steps, MH]; v0, w0, s0: [MH]; parameters: [H].
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < MH
    h = offs % H
    alpha = tl.load(alpha_ptr + h, mask=mask, other=0.0)
    oma = 1.0 - alpha
    v = tl.load(v0_ptr + offs, mask=mask, other=0.0)
    s = tl.load(s0_ptr + offs, mask=mask, other=0.0)
    if ADAPT:
        beta = tl.load(beta_ptr + h, mask=mask, other=0.0)
        a = tl.load(a_ptr + h, mask=mask, other=0.0)
        b = tl.load(b_ptr + h, mask=mask, other=0.0)
        w = tl.load(w0_ptr + offs, mask=mask, other=0.0)
    for t in range(n_steps):
        x = tl.load(x_ptr + t * MH + offs, mask=mask, other=0.0)
        if ADAPT:
            w = beta * w + a * v + b * s
            v = alpha * (v - theta * s) + oma * (x - w)
            tl.store(w_ptr + t * MH + offs, w, mask=mask)
        else:
            v = alpha * (v - theta * s) + oma * x
        s = tl.where(v - theta >= 0.0, 1.0 + 0.0 * v, 0.0 * v)
        tl.store(v_ptr + t * MH + offs, v, mask=mask)
        tl.store(s_ptr + t * MH + offs, s, mask=mask)


@triton.jit
def scan_backward(gs_ptr, cur_ptr, v_ptr, w_ptr, v0_ptr, w0_ptr, s0_ptr,
                  alpha_ptr, beta_ptr, a_ptr, b_ptr, cscoef_ptr,
                  gx_ptr, cv_ptr, cw_ptr, cs_ptr, acc_ptr, n_steps, MH, H, theta, p1, p2,
                  ADAPT: tl.constexpr, SID: tl.constexpr, BLOCK: tl.constexpr):
    # Steps n_steps-1 .. 0 of the slices given; the carried gradients cv, cw, cs ([MH])
    # and the per-element parameter-gradient sums acc ([4, MH]) are read and written
    # back, so that a recurrent layer can call this one step at a time.
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < MH
    h = offs % H
    alpha = tl.load(alpha_ptr + h, mask=mask, other=0.0)
    oma = 1.0 - alpha
    cs_coef = tl.load(cscoef_ptr + h, mask=mask, other=0.0)
    cv = tl.load(cv_ptr + offs, mask=mask, other=0.0)
    cs = tl.load(cs_ptr + offs, mask=mask, other=0.0)
    s0 = tl.load(s0_ptr + offs, mask=mask, other=0.0)
    v0 = tl.load(v0_ptr + offs, mask=mask, other=0.0)
    d_alpha = tl.load(acc_ptr + offs, mask=mask, other=0.0)
    if ADAPT:
        beta = tl.load(beta_ptr + h, mask=mask, other=0.0)
        a = tl.load(a_ptr + h, mask=mask, other=0.0)
        b = tl.load(b_ptr + h, mask=mask, other=0.0)
        cw = tl.load(cw_ptr + offs, mask=mask, other=0.0)
        w0 = tl.load(w0_ptr + offs, mask=mask, other=0.0)
        d_beta = tl.load(acc_ptr + MH + offs, mask=mask, other=0.0)
        d_a = tl.load(acc_ptr + 2 * MH + offs, mask=mask, other=0.0)
        d_b = tl.load(acc_ptr + 3 * MH + offs, mask=mask, other=0.0)
    for i in range(n_steps):
        t = n_steps - 1 - i
        first = t == 0
        pmask = mask & ((offs * 0 + t) > 0)  # a block-shaped "t > 0"
        v = tl.load(v_ptr + t * MH + offs, mask=mask, other=0.0)
        # v_{t-1}: the trace, or the initial state at t = 0 (masked loads read nothing).
        vprev = tl.load(v_ptr + (t - 1) * MH + offs, mask=pmask, other=0.0)
        vprev = tl.where(first, v0, vprev)
        sprev = tl.where(first, s0, tl.where(vprev - theta >= 0.0, 1.0 + 0.0 * v, 0.0 * v))
        cur = tl.load(cur_ptr + t * MH + offs, mask=mask, other=0.0)
        gs = tl.load(gs_ptr + t * MH + offs, mask=mask, other=0.0) + cs
        gv = cv + gs * _surrogate_grad(v - theta, p1, p2, SID)
        if ADAPT:
            w = tl.load(w_ptr + t * MH + offs, mask=mask, other=0.0)
            wprev = tl.load(w_ptr + (t - 1) * MH + offs, mask=pmask, other=0.0)
            wprev = tl.where(first, w0, wprev)
            gw = cw - oma * gv
            d_alpha += gv * ((vprev - theta * sprev) - (cur - w))
            d_beta += gw * wprev
            d_a += gw * vprev
            d_b += gw * sprev
            cv = alpha * gv + a * gw
            cw = beta * gw
            cs = cs_coef * gv + b * gw
        else:
            d_alpha += gv * ((vprev - theta * sprev) - cur)
            cv = alpha * gv
            cs = cs_coef * gv
        tl.store(gx_ptr + t * MH + offs, oma * gv, mask=mask)
    tl.store(cv_ptr + offs, cv, mask=mask)
    tl.store(cs_ptr + offs, cs, mask=mask)
    tl.store(acc_ptr + offs, d_alpha, mask=mask)
    if ADAPT:
        tl.store(cw_ptr + offs, cw, mask=mask)
        tl.store(acc_ptr + MH + offs, d_beta, mask=mask)
        tl.store(acc_ptr + 2 * MH + offs, d_a, mask=mask)
        tl.store(acc_ptr + 3 * MH + offs, d_b, mask=mask)


forward = scan_forward
backward = scan_backward
