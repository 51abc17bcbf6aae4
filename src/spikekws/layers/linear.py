"""Fully connected spiking layers (time-first tensors ``[T, B, F]``)."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn

from ..neurons import functional as NF
from ..neurons.functional.backends import needs_grad
from ..neurons.modules import LI, build_neuron

_NORMS = ("batchnorm", "layernorm", "none")


class _TimeNorm(nn.Module):
    """Applies a per-feature norm to ``[T, B, H]`` by folding time into the batch."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b, h = x.shape
        return self.norm(x.reshape(t * b, h)).reshape(t, b, h)


def _fused(backend: str, x: torch.Tensor) -> bool:
    if backend == "auto":
        backend = NF.resolve_backend("linear", x.device.type)
    return backend != "torch"


def _fold_ops(weight: torch.Tensor, bias: Optional[torch.Tensor], bn: nn.Module):
    """The C++ ops for folding when they are already loaded and nothing needs a gradient."""
    if weight.device.type != "cpu" or weight.dtype not in (torch.float32, torch.float64):
        return None
    from ..neurons.functional.backends import cpp, needs_grad
    ops = cpp.loaded()
    if ops is None or needs_grad((weight, bias, bn.weight, bn.bias)):
        return None
    return ops


def fold_batchnorm(weight: torch.Tensor, bias: Optional[torch.Tensor],
                   bn: nn.modules.batchnorm._BatchNorm) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BatchNorm into the affine layer (conv or linear) that feeds it.

    ``bn(W x + b) = W' x + b'`` with ``W' = W * g``, ``b' = (b - mean) * g + beta`` and
    ``g = gamma / sqrt(running_var + eps)`` per output channel (dim 0 of ``weight``).
    Differentiable in the parameters; computed in ``weight``'s dtype.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm without running statistics "
                         "(track_running_stats=False)")
    if weight.shape[0] != bn.num_features:
        raise ValueError(f"BatchNorm over {bn.num_features} features follows a layer with "
                         f"{weight.shape[0]} outputs")
    var = bn.running_var.to(weight.dtype)
    mean = bn.running_mean.to(weight.dtype)
    gamma = bn.weight.to(weight.dtype) if bn.weight is not None else torch.ones_like(var)
    g = gamma / torch.sqrt(var + bn.eps)
    ops = _fold_ops(weight, bias, bn)
    if ops is not None:  # the same elementwise operations in C++, one call instead of four
        return ops.fold_scale(weight, bias, mean, g,
                              None if bn.bias is None else bn.bias.to(weight.dtype))
    beta = bn.bias.to(weight.dtype) if bn.bias is not None else torch.zeros_like(var)
    b = bias if bias is not None else torch.zeros_like(mean)
    w = weight * g.reshape(-1, *([1] * (weight.dim() - 1)))
    return w, (b - mean) * g + beta


def fold_norm(linear: nn.Linear, norm: nn.Module, dtype: Optional[torch.dtype] = None
              ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weight ``[out, in]`` and bias ``[out]`` of ``norm(linear(x))`` for a layer's norm
    (``_TimeNorm`` around batch norm, or ``nn.Identity``): eval batch norm folded in by
    :func:`fold_batchnorm`, computed in ``dtype`` (default: the weight's) and returned in
    the weight's dtype. A norm that depends on the input (LayerNorm) raises ValueError."""
    out_dtype = linear.weight.dtype
    dtype = dtype or out_dtype
    w = linear.weight.to(dtype)
    b = linear.bias.to(dtype) if linear.bias is not None else None
    inner = getattr(norm, "norm", norm)
    if isinstance(inner, nn.BatchNorm1d):
        w, b = fold_batchnorm(w, b, inner)
    elif isinstance(inner, nn.Identity):
        b = b if b is not None else torch.zeros(w.shape[0], dtype=dtype, device=w.device)
    else:
        raise ValueError(f"normalization {type(inner).__name__} cannot be folded into the "
                         "weights (it depends on the input); train with "
                         "model.normalization=batchnorm or none to export")
    return w.to(out_dtype), b.to(out_dtype)


def _hooked(*modules: nn.Module) -> bool:
    """Whether calling these modules would run forward hooks (theirs or global ones)."""
    from torch.nn.modules import module as _m
    if _m._global_forward_hooks or _m._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in modules)


def folded_weights(linear: nn.Linear, norm: nn.Module, x: torch.Tensor
                   ) -> Optional[Tuple[torch.Tensor, Optional[torch.Tensor]]]:
    """(weight, bias) of ``norm(linear(.))`` as one affine map where :func:`project` would
    fold it (eval batch norm with running statistics, fused backend, no hooks) or where there
    is no norm; None otherwise."""
    if _hooked(linear, norm):
        return None
    if isinstance(norm, nn.Identity):
        return linear.weight, linear.bias
    bn = norm.norm if isinstance(norm, _TimeNorm) else None
    if (not isinstance(bn, nn.BatchNorm1d) or bn.training or bn.running_mean is None
            or bn.running_var is None or not _fused(getattr(linear, "backend", "torch"), x)
            or _hooked(bn)):
        return None
    return fold_norm(linear, norm)


def project(linear: nn.Linear, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``norm(linear(x))`` for x ``[T, B, in]``.

    In eval mode, on a fused backend, batch norm with running statistics is an affine map
    per output; it is folded into the weights (:func:`fold_norm`) so that inference runs
    one product and no normalisation pass. The result equals the unfolded one to
    rounding. The torch backend (the reference) always normalises separately, and so does
    every backend while forward hooks are registered on the modules (operation counting,
    activation capture), which would otherwise not see their calls.
    """
    wb = folded_weights(linear, norm, x)
    if wb is None or isinstance(norm, nn.Identity):
        return norm(linear(x))
    return NF.linear(x, *wb, backend=linear.backend)


def build_norm(kind: str, size: int) -> nn.Module:
    if kind == "batchnorm":
        return _TimeNorm(nn.BatchNorm1d(size, momentum=0.05))
    if kind == "layernorm":
        return _TimeNorm(nn.LayerNorm(size))
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"normalization must be one of {', '.join(_NORMS)}; got {kind!r}")


class EventLinear(nn.Linear):
    """``nn.Linear`` whose product runs on a neuron backend (``"auto"``, ``"cpp"``,
    ``"torch"``, ...): fused backends sum only the weights of non-zero inputs when the input
    is sparse (spikes), and fall back to the dense product otherwise."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 backend: str = "auto") -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.backend = backend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return NF.linear(x, self.weight, self.bias, backend=self.backend)


class EventDropout(nn.Dropout):
    """``nn.Dropout`` whose training-mode mask comes from a neuron backend: fused backends
    draw it from a counter-based generator seeded by torch's (see
    :func:`spikekws.neurons.functional.dropout`); ``"torch"`` is ``nn.Dropout`` itself."""

    def __init__(self, p: float = 0.5, backend: str = "auto") -> None:
        super().__init__(p)
        self.backend = backend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or self.inplace:
            return super().forward(x)
        return NF.dropout(x, self.p, backend=self.backend)


class SpikingLinear(nn.Module):
    """``spikes = neuron(norm(W x))`` then dropout.

    x: [T, B, in_features] -> spikes: [T, B, out] where ``out = hidden_size`` or
    ``2 * hidden_size`` when ``bidirectional`` (the backward direction shares W and
    runs on the time-reversed input, as in sparch).
    """

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        neuron: str = "lif",
        normalization: str = "batchnorm",
        bias: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        **neuron_kwargs,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_features = int(in_features)
        self.hidden_size = int(hidden_size)
        self.bidirectional = bool(bidirectional)
        self.linear = EventLinear(self.in_features, self.hidden_size, bias=bias,
                                  backend=neuron_kwargs.get("backend", "auto"))
        self.norm = build_norm(normalization, self.hidden_size)
        self.neuron = build_neuron(neuron, self.hidden_size, **neuron_kwargs)
        self.dropout = EventDropout(dropout, backend=neuron_kwargs.get("backend", "auto"))

    @property
    def out_features(self) -> int:
        return self.hidden_size * (2 if self.bidirectional else 1)

    def _fused(self, x: torch.Tensor, state=None):
        """(spikes, state, rate) from the neuron's fused layer op, or None where it does not
        apply (training, a gradient to record, hooks, an unfoldable norm, ...)."""
        if (self.bidirectional or not hasattr(self.neuron, "fused_linear")
                or not self.neuron._fused_backend(x)
                or needs_grad((x, *self.parameters()))):
            return None  # before folding: project() would fold a second time
        wb = folded_weights(self.linear, self.norm, x)
        return self.neuron.fused_linear(x, *wb, state) if wb is not None else None

    def spikes_and_rate(self, x: torch.Tensor, state=None):
        """(spikes, final state, firing rate = the mean of the spikes), without dropout."""
        out = self._fused(x, state)
        if out is not None:
            return out
        s, state = self.spikes(x, state)
        return s, state, s.mean()

    def spikes(self, x: torch.Tensor, state=None):
        """Like :meth:`forward` without dropout: the emitted spikes (for firing rates).

        In inference on the C++ backend the product and the neuron run as one fused op
        (:meth:`~spikekws.neurons.modules.LIF.fused_linear`), with the same result."""
        out = self._fused(x, state)
        if out is not None:
            return out[0], out[1]
        if self.bidirectional:
            x = torch.cat([x, x.flip(0)], dim=1)
        s, state = self.neuron(project(self.linear, self.norm, x), state)
        if self.bidirectional:
            fwd, bwd = s.chunk(2, dim=1)
            s = torch.cat([fwd, bwd.flip(0)], dim=2)
        return s, state

    def forward(self, x: torch.Tensor, state=None):
        """x: [T, B, in] -> (spikes [T, B, out], final neuron state)."""
        s, state = self.spikes(x, state)
        return self.dropout(s), state

    def step(self, x_t: torch.Tensor, state=None):
        """One time step for streaming (unidirectional only). x_t: [B, in]."""
        if self.bidirectional:
            raise ValueError("a bidirectional layer needs the whole sequence; it cannot stream")
        if isinstance(self.norm, _TimeNorm):
            z = project(self.linear, self.norm, x_t.unsqueeze(0)).squeeze(0)
        else:
            z = self.norm(self.linear(x_t))
        return self.neuron.step(z, state)


class LIReadout(nn.Module):
    """Leaky-integrator readout: ``v = LI(norm(W x))``; class scores from the membrane.

    The output is ``log(mean_t softmax(v_t))`` ([B, C], log-probabilities): the sparch
    "summed softmax over time" rule, normalised so it can feed ``nll_loss`` or
    ``cross_entropy`` directly (log_softmax of log-probabilities is the identity).
    """

    def __init__(self, in_features: int, num_classes: int, normalization: str = "batchnorm",
                 bias: bool = False, dt: float = 0.01, tau_mem=(0.05, 0.25),
                 backend: str = "auto") -> None:
        super().__init__()
        self.linear = EventLinear(in_features, num_classes, bias=bias, backend=backend)
        self.norm = build_norm(normalization, num_classes)
        self.li = LI(num_classes, dt=dt, tau_mem=tau_mem, backend=backend)

    def membrane(self, x: torch.Tensor, state=None):
        """x: [T, B, in] -> (v [T, B, C], state)."""
        return self.li(project(self.linear, self.norm, x), state)

    def forward(self, x: torch.Tensor, state=None) -> torch.Tensor:
        v, _ = self.membrane(x, state)
        return torch.log(torch.softmax(v, dim=-1).mean(0) + 1e-12)
