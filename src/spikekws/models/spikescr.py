"""SpikeSCR-style spiking global-local hybrid (Wang et al. 2024).

Wiring (time-first ``[T, B, D]`` inside; one batch-first adapter in :meth:`SpikeSCR._check`)::

    x [T, B, F] --Conv1d(time)--BN--> u_0 --LIF--> s_0                     (SpikingEmbedding)
    for each block:                                                      (SpikeSCRBlock)
        u <- u + Drop(SSA(s))        global: spiking self-attention over time
        s <- LIF(u)
        u <- u + Drop(DSConv(s))     local: spiking depthwise-separable conv over time
        s <- LIF(u)
    readout: LI membrane over Linear(s) ("li", log-probabilities) or Linear(mean_t s) ("mean")

Residuals are **membrane shortcuts** (MS-ResNet / spike-driven transformer style): the
shortcut adds real-valued branch outputs to the real-valued stream ``u`` that feeds the
next neuron, never spikes to spikes. So every weight layer after the embedding receives
binary spikes (accumulate-only on neuromorphic hardware), unlike SEW-style ``s + f(s)``
residuals whose sums are no longer binary.

Spiking self-attention (SSA, per head, no softmax)::

    Q, K, V = LIF(BN(W_q s)), LIF(BN(W_k s)), LIF(BN(W_v s))         binary [T, d]
    A_t     = (1 / n_t) * sum_{tau in N(t)} (Q_t . K_tau) V_tau          integer sums of spikes
    out     = BN(W_o LIF(BN(A)))

``N(t)`` is every step (``causal=False``) or the steps ``tau <= t`` (``causal=True``) and
``n_t = |N(t)|``: dividing by the number of visible keys keeps the attention scale independent
of the sequence length, which matters when a model is distilled to fewer time steps.

Firing rates: one per entry of ``model.layers`` (embedding, then each block), the mean spike
probability over all neurons of that layer and all steps.
"""
from __future__ import annotations

import logging
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import LIReadout, build_norm
from ..neurons.modules import NEURONS, build_neuron
from . import MODELS

log = logging.getLogger("spikekws.models")

# Recurrent neurons have a non-recurrent counterpart used in the hybrid's feed-forward blocks.
_NON_RECURRENT = {"rlif": "lif", "radlif": "adlif"}
_READOUTS = ("li", "mean")


def _time_conv(conv: nn.Conv1d, x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """1-D convolution over time of ``x: [T, B, C]`` -> ``[T, B, C']``, zero-padded by
    ``left``/``right`` steps (symmetric padding is left to the conv, so operation counters
    see only real products)."""
    h = x.permute(1, 2, 0)
    if left != right:
        h = F.pad(h, (left, right))
    return conv(h).permute(2, 0, 1)


def _conv_padding(kernel_size: int, causal: bool) -> Tuple[int, int]:
    return (kernel_size - 1, 0) if causal else ((kernel_size - 1) // 2, kernel_size // 2)


class _RateMeter:
    """Accumulates spike counts of several neuron groups into one firing rate."""

    def __init__(self) -> None:
        self.total: Optional[torch.Tensor] = None
        self.count = 0

    def add(self, s: torch.Tensor) -> torch.Tensor:
        t = s.sum()
        self.total = t if self.total is None else self.total + t
        self.count += s.numel()
        return s

    def rate(self) -> torch.Tensor:
        assert self.total is not None
        return self.total / self.count


class SpikeAttentionProduct(nn.Module):
    """``A = (1/n_t) (Q K^T ⊙ M) V`` per head, no softmax.

    q, k, v: [B, heads, T, d] (spikes) -> [B, heads, T, d]. ``M`` is all ones, or lower
    triangular when ``causal``. A module of its own so that operation counters
    (:mod:`spikekws.train.energy`) can see its inputs.
    """

    def __init__(self, causal: bool = False) -> None:
        super().__init__()
        self.causal = bool(causal)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        steps = q.shape[-2]
        scores = q @ k.transpose(-2, -1)  # [B, h, T, T]: coincidence counts
        if self.causal:
            mask = torch.ones(steps, steps, dtype=torch.bool, device=q.device).tril()
            scores = scores.masked_fill(~mask, 0.0)
            n_keys = torch.arange(1, steps + 1, device=q.device, dtype=q.dtype).unsqueeze(-1)
        else:
            n_keys = torch.full((steps, 1), float(steps), device=q.device, dtype=q.dtype)
        return (scores @ v) / n_keys

    def extra_repr(self) -> str:
        return f"causal={self.causal}"


class SpikingSelfAttention(nn.Module):
    """Spike-driven multi-head self-attention over time. s: [T, B, D] spikes -> [T, B, D] real."""

    def __init__(self, dim: int, heads: int, neuron: str, normalization: str, causal: bool,
                 meter_neurons: bool = True, **neuron_kwargs) -> None:
        super().__init__()
        self.dim, self.heads = dim, heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.q_norm = build_norm(normalization, dim)
        self.k_norm = build_norm(normalization, dim)
        self.v_norm = build_norm(normalization, dim)
        self.q_lif = build_neuron(neuron, dim, **neuron_kwargs)
        self.k_lif = build_neuron(neuron, dim, **neuron_kwargs)
        self.v_lif = build_neuron(neuron, dim, **neuron_kwargs)
        self.product = SpikeAttentionProduct(causal)
        self.attn_norm = build_norm(normalization, dim)
        self.attn_lif = build_neuron(neuron, dim, **neuron_kwargs)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.proj_norm = build_norm(normalization, dim)

    def _heads(self, s: torch.Tensor) -> torch.Tensor:
        t, b, _ = s.shape
        return s.reshape(t, b, self.heads, self.dim // self.heads).permute(1, 2, 0, 3)

    def forward(self, s: torch.Tensor, meter: _RateMeter) -> torch.Tensor:
        t, b, _ = s.shape
        q = meter.add(self.q_lif(self.q_norm(self.q(s)))[0])
        k = meter.add(self.k_lif(self.k_norm(self.k(s)))[0])
        v = meter.add(self.v_lif(self.v_norm(self.v(s)))[0])
        a = self.product(self._heads(q), self._heads(k), self._heads(v))  # [B, h, T, d]
        a = a.permute(2, 0, 1, 3).reshape(t, b, self.dim)
        z = meter.add(self.attn_lif(self.attn_norm(a))[0])
        return self.proj_norm(self.proj(z))


class SpikingDSConv(nn.Module):
    """Spiking depthwise-separable convolution over time.

    s: [T, B, D] spikes -> depthwise Conv1d (kernel ``kernel_size``, one filter per channel)
    -> BN -> LIF -> pointwise Linear -> BN -> [T, B, D] real. ``causal`` pads only the past.
    """

    def __init__(self, dim: int, kernel_size: int, neuron: str, normalization: str, causal: bool,
                 **neuron_kwargs) -> None:
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.pad = _conv_padding(self.kernel_size, causal)
        self.depthwise = nn.Conv1d(dim, dim, self.kernel_size, groups=dim, bias=False,
                                   padding=self.pad[0] if self.pad[0] == self.pad[1] else 0)
        self.dw_norm = build_norm(normalization, dim)
        self.dw_lif = build_neuron(neuron, dim, **neuron_kwargs)
        self.pointwise = nn.Linear(dim, dim, bias=False)
        self.pw_norm = build_norm(normalization, dim)

    def forward(self, s: torch.Tensor, meter: _RateMeter) -> torch.Tensor:
        h = _time_conv(self.depthwise, s, *self.pad)
        z = meter.add(self.dw_lif(self.dw_norm(h))[0])
        return self.pw_norm(self.pointwise(z))


class SpikingEmbedding(nn.Module):
    """x: [T, B, F] features -> (u_0 [T, B, D] membrane stream, s_0 spikes, firing rate)."""

    def __init__(self, in_features: int, dim: int, kernel_size: int, neuron: str,
                 normalization: str, causal: bool, **neuron_kwargs) -> None:
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.pad = _conv_padding(self.kernel_size, causal)
        self.conv = nn.Conv1d(in_features, dim, self.kernel_size, bias=False,
                              padding=self.pad[0] if self.pad[0] == self.pad[1] else 0)
        self.norm = build_norm(normalization, dim)
        self.lif = build_neuron(neuron, dim, **neuron_kwargs)

    def forward(self, x: torch.Tensor):
        u = self.norm(_time_conv(self.conv, x, *self.pad))
        s, _ = self.lif(u)
        return u, s, s.mean()


class SpikeSCRBlock(nn.Module):
    """Global (SSA) then local (DSConv) branch, each with a membrane shortcut.

    (u, s) -> (u', s', firing rate): ``u`` real [T, B, D], ``s = LIF(u)`` spikes.
    """

    def __init__(self, dim: int, heads: int, kernel_size: int, neuron: str, normalization: str,
                 causal: bool, dropout: float, **neuron_kwargs) -> None:
        super().__init__()
        self.attn = SpikingSelfAttention(dim, heads, neuron, normalization, causal, **neuron_kwargs)
        self.mid_lif = build_neuron(neuron, dim, **neuron_kwargs)
        self.conv = SpikingDSConv(dim, kernel_size, neuron, normalization, causal, **neuron_kwargs)
        self.out_lif = build_neuron(neuron, dim, **neuron_kwargs)
        self.dropout = nn.Dropout(dropout)

    def forward(self, u: torch.Tensor, s: torch.Tensor):
        meter = _RateMeter()
        u = u + self.dropout(self.attn(s, meter))
        s = meter.add(self.mid_lif(u)[0])
        u = u + self.dropout(self.conv(s, meter))
        s = meter.add(self.out_lif(u)[0])
        return u, s, meter.rate()


class SpikeSCR(nn.Module):
    """Spiking global-local hybrid for keyword spotting (see the module docstring).

    forward(x: [B, T, F]) -> (out [B, C], firing_rates [1 + depth]); ``out`` holds
    log-probabilities (``readout="li"``) or logits (``readout="mean"``).
    """

    spiking = True

    def __init__(self, in_features: int, num_classes: int, dim: int = 128, depth: int = 2,
                 heads: int = 4, kernel_size: int = 7, embed_kernel: int = 3, causal: bool = False,
                 readout: str = "li", neuron: str = "lif", normalization: str = "batchnorm",
                 dropout: float = 0.1, norm_momentum: float = 0.1, **neuron_kwargs) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("num_classes", num_classes),
                            ("dim", dim), ("depth", depth), ("heads", heads),
                            ("kernel_size", kernel_size), ("embed_kernel", embed_kernel)):
            if isinstance(value, bool) or int(value) != value or int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        if readout not in _READOUTS:
            raise ValueError(f"readout must be one of {', '.join(_READOUTS)}; got {readout!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if not 0.0 < float(norm_momentum) <= 1.0:
            raise ValueError(f"norm_momentum must be in (0, 1], got {norm_momentum}")
        build_norm(normalization, 1)  # validate early
        neuron = neuron.lower()
        NEURONS.get(neuron)
        if neuron in _NON_RECURRENT:
            log.warning("spikescr: its blocks are feed-forward; using neuron %r instead of the "
                        "recurrent %r", _NON_RECURRENT[neuron], neuron)
            neuron = _NON_RECURRENT[neuron]
        self.in_features, self.num_classes = int(in_features), int(num_classes)
        self.dim, self.depth, self.heads = int(dim), int(depth), int(heads)
        self.causal, self.readout_kind, self.neuron = bool(causal), readout, neuron
        kw = dict(neuron=neuron, normalization=normalization, causal=self.causal)
        self.embed = SpikingEmbedding(self.in_features, self.dim, embed_kernel, **kw, **neuron_kwargs)
        self.blocks = nn.ModuleList(
            SpikeSCRBlock(self.dim, self.heads, kernel_size, dropout=float(dropout), **kw, **neuron_kwargs)
            for _ in range(self.depth))
        # One entry per firing rate (the model contract: rates.numel() == len(model.layers)).
        self.layers = nn.ModuleList([self.embed, *self.blocks])
        self.li_readout: Optional[LIReadout] = None
        self.linear_readout: Optional[nn.Linear] = None
        if readout == "li":
            self.li_readout = LIReadout(self.dim, self.num_classes, normalization=normalization,
                                        dt=neuron_kwargs.get("dt", 0.01),
                                        tau_mem=neuron_kwargs.get("tau_mem", (0.05, 0.25)))
        else:
            self.linear_readout = nn.Linear(self.dim, self.num_classes)
        # Norms after sparse spike inputs see variances that shrink by orders of magnitude
        # while training; a slow running average (the stacks' 0.05) keeps a stale estimate
        # for many epochs on small datasets and breaks evaluation.
        for m in self.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.momentum = float(norm_momentum)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.in_features:
            raise ValueError(f"expected input [batch, time, {self.in_features}], got {list(x.shape)}")
        return x.transpose(0, 1)  # the one batch-first -> time-first adapter

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        u, s, r = self.embed(self._check(x))
        rates: List[torch.Tensor] = [r]
        for block in self.blocks:
            u, s, r = block(u, s)
            rates.append(r)
        if self.li_readout is not None:
            out = self.li_readout(s)
        else:
            out = self.linear_readout(s.mean(0))
        return out, torch.stack(rates)


@MODELS.register("spikescr")
def build_spikescr(
    in_features: int,
    num_classes: int,
    hidden_sizes: Sequence[int] = (128, 128),
    dim: Optional[int] = None,
    depth: Optional[int] = None,
    heads: int = 4,
    kernel_size: int = 7,
    embed_kernel: int = 3,
    causal: bool = False,
    readout: str = "li",
    neuron: str = "lif",
    dropout: float = 0.1,
    normalization: str = "batchnorm",
    bidirectional: bool = False,
    threshold: Optional[float] = None,
    norm_momentum: float = 0.1,
    **neuron_kwargs,
) -> SpikeSCR:
    """Factory (``model.name=spikescr``).

    ``hidden_sizes`` (``model.hidden_sizes``) gives width and depth: ``[D] * N`` means
    ``dim=D, depth=N``; ``model.options.dim``/``depth`` take precedence. Other options
    (``model.options.*``): ``heads``, ``kernel_size`` (depthwise conv over time),
    ``embed_kernel``, ``causal``, ``readout`` (``li`` or ``mean``), ``norm_momentum``
    (batch-norm running-average momentum, default 0.1), ``threshold``, and the neuron
    arguments (``dt``, ``tau_mem``, ``learn_tau``, ``detach_reset``, ``backend``, ...).
    ``model.neuron`` applies to every neuron; recurrent ones (rlif, radlif) are replaced by
    their feed-forward counterparts (lif, adlif) with a warning.
    """
    if bidirectional:
        raise ValueError("spikescr does not take bidirectional=true: its attention already sees "
                         "the whole sequence (set causal=false/true instead)")
    sizes = [int(h) for h in hidden_sizes]
    if dim is None:
        if not sizes or len(set(sizes)) != 1:
            raise ValueError(f"spikescr has one width: hidden_sizes must repeat one size "
                             f"(got {sizes}); or set model.options.dim")
        dim = sizes[0]
    if depth is None:
        depth = max(len(sizes), 1)
    if threshold is not None:
        neuron_kwargs["v_threshold"] = threshold
    return SpikeSCR(in_features, num_classes, dim=dim, depth=depth, heads=heads,
                    kernel_size=kernel_size, embed_kernel=embed_kernel, causal=causal,
                    readout=readout, neuron=neuron, normalization=normalization, dropout=dropout,
                    norm_momentum=norm_momentum, **neuron_kwargs)
