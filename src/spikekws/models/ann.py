"""Non-spiking baselines: ``mlp``, ``rnn``, ``gru``, ``ligru`` and the 2D CNN ``cnn2d``.

They accept the factory arguments the runner passes to every model (``neuron``,
``surrogate``, … are spiking-only and ignored here) and return ``(logits [B, C],
firing_rates [0])`` so that the trainer, evaluation and CLI treat them like the SNNs.

Feed-forward models (``mlp``, ``cnn2d``) keep all their layers in one ``nn.Sequential``
(:meth:`sequential`) built only from modules that :mod:`spikekws.convert` can turn into
integrate-and-fire layers: affine layers, batch norms (folded), ReLU or :class:`QCFS`,
average pooling, flatten/mean adapters and dropout.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from . import MODELS

log = logging.getLogger("spikekws.models")

# Options the runner passes to every model that only mean something for spiking models.
SPIKING_ONLY_OPTIONS = frozenset({
    "neuron", "surrogate", "threshold", "v_threshold", "dt", "tau_mem", "tau_adapt", "a_range",
    "b_range", "learn_tau", "detach_reset", "backend", "use_readout_layer", "recurrent",
})

_NORMS = ("batchnorm", "layernorm", "none")


def _reject_unknown(model: str, options: Dict[str, Any], allowed: Sequence[str]) -> None:
    ignored = sorted(k for k in options if k in SPIKING_ONLY_OPTIONS)
    unknown = sorted(k for k in options if k not in SPIKING_ONLY_OPTIONS)
    if unknown:
        raise TypeError(f"unexpected option(s) {', '.join(map(repr, unknown))} for the non-spiking "
                        f"model {model!r} (allowed: {', '.join(sorted(allowed))})")
    if ignored:
        log.debug("model %s ignores spiking-only options: %s", model, ", ".join(ignored))


def _positive_ints(name: str, values: Sequence[int], allow_empty: bool = True) -> List[int]:
    try:
        out = [int(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a list of positive integers, got {values!r}") from None
    if any(v <= 0 for v in out) or (not out and not allow_empty):
        raise ValueError(f"{name} must be a list of positive integers, got {list(values)!r}")
    return out


def _check_dropout(dropout: float) -> float:
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    return float(dropout)


# --------------------------------------------------------------------------- building blocks
class LastDimBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the last dimension of ``[..., C]`` (leading dims folded into the batch)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        shape = x.shape
        return super().forward(x.reshape(-1, shape[-1])).reshape(shape)


def build_norm(kind: str, size: int) -> nn.Module:
    """Per-feature norm acting on the last dimension: batchnorm, layernorm or none."""
    if kind == "batchnorm":
        return LastDimBatchNorm(size)
    if kind == "layernorm":
        return nn.LayerNorm(size)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"normalization must be one of {', '.join(_NORMS)}; got {kind!r}")


class _FloorSTE(torch.autograd.Function):
    """floor in the forward pass, identity (straight-through) gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad


def qcfs(x: torch.Tensor, lam: torch.Tensor, levels: int, shift: float = 0.5) -> torch.Tensor:
    """Quantisation-clip-floor-shift activation (Bu et al., ICLR 2022).

    ``qcfs(x) = lam * clamp(floor(x * L / lam + shift) / L, 0, 1)`` with ``L = levels``; the
    floor has a straight-through gradient, so ``lam`` (the clip value) is learned. An IF
    neuron with threshold ``lam`` whose membrane starts at ``lam / 2`` reproduces it after
    ``L`` time steps of a constant input current.
    """
    y = _FloorSTE.apply(x * (levels / lam) + shift) / levels
    return torch.clamp(y, 0.0, 1.0) * lam


class QCFS(nn.Module):
    """:func:`qcfs` with a learned clip value ``lam`` (one per layer)."""

    def __init__(self, levels: int, init: float = 4.0) -> None:
        super().__init__()
        if int(levels) != levels or levels < 1:
            raise ValueError(f"qcfs levels must be a positive integer, got {levels!r}")
        if not init > 0:
            raise ValueError(f"qcfs_init (the initial clip value) must be > 0, got {init}")
        self.levels = int(levels)
        self.lam = nn.Parameter(torch.tensor(float(init)))

    def clip_value(self) -> torch.Tensor:
        return self.lam.clamp(min=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return qcfs(x, self.clip_value(), self.levels)

    def extra_repr(self) -> str:
        return f"levels={self.levels}"


def _activation(levels: int, init: float) -> nn.Module:
    return QCFS(levels, init) if levels else nn.ReLU()


class ToImage(nn.Module):
    """``[B, T, F] -> [B, 1, T, F]``: a feature sequence as a one-channel image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1)


class Pool2d(nn.Module):
    """Non-overlapping ``k x k`` pooling (``avg`` or ``max``) of ``[B, C, H, W]``.

    Each spatial size is zero-padded at the end up to a multiple of ``k`` so that every
    window is complete: any input size works (output ``ceil(size / k)``) and average pooling
    always divides by ``k * k`` — which lets the converter turn it into a sum of spike
    counts with the ``1 / k**2`` folded into the next layer's weights. Zero padding is
    neutral for max pooling too, since it follows a ReLU.
    """

    def __init__(self, kernel_size: int = 2, mode: str = "avg") -> None:
        super().__init__()
        if int(kernel_size) != kernel_size or kernel_size < 1:
            raise ValueError(f"pool_size must be a positive integer, got {kernel_size!r}")
        if mode not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max'; got {mode!r}")
        self.kernel_size = int(kernel_size)
        self.mode = mode

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        ph, pw = (-x.shape[-2]) % k, (-x.shape[-1]) % k
        return F.pad(x, (0, pw, 0, ph)) if ph or pw else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pad(x)
        k = self.kernel_size
        return F.avg_pool2d(x, k) if self.mode == "avg" else F.max_pool2d(x, k)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, mode={self.mode!r}"


class GlobalAvgPool2d(nn.Module):
    """``[B, C, H, W] -> [B, C]`` (mean over the whole time-frequency plane)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class MeanOverTime(nn.Module):
    """``[B, T, C] -> [B, C]``: frame-wise scores averaged over the utterance."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


# --------------------------------------------------------------------------- models
class _ANN(nn.Module):
    """Shared input check and the (empty) firing-rate output of non-spiking models."""

    spiking = False

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        if int(in_features) <= 0 or int(num_classes) <= 0:
            raise ValueError(f"in_features and num_classes must be positive, got "
                             f"{in_features} and {num_classes}")
        self.in_features = int(in_features)
        self.num_classes = int(num_classes)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.in_features:
            raise ValueError(f"expected input [batch, time, {self.in_features}], "
                             f"got {list(x.shape)}")
        return x

    def _no_rates(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(0)


class MLP(_ANN):
    """Frame-wise MLP: ``[Linear -> norm -> ReLU|QCFS -> dropout] * n -> Linear``, scores
    averaged over frames. forward(x: [B, T, F]) -> (logits [B, C], firing_rates [0])."""

    def __init__(self, in_features: int, num_classes: int, hidden_sizes: Sequence[int] = (128, 128),
                 dropout: float = 0.1, normalization: str = "batchnorm", bias: bool = True,
                 qcfs: int = 0, qcfs_init: float = 4.0) -> None:
        super().__init__(in_features, num_classes)
        hidden = _positive_ints("hidden_sizes", hidden_sizes)
        dropout = _check_dropout(dropout)
        layers: List[nn.Module] = []
        size = self.in_features
        for h in hidden:
            layers += [nn.Linear(size, h, bias=bias), build_norm(normalization, h),
                       _activation(qcfs, qcfs_init)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            size = h
        layers += [nn.Linear(size, self.num_classes), MeanOverTime()]
        self.net = nn.Sequential(*layers)

    def sequential(self) -> nn.Sequential:
        return self.net

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.net(self._check(x)), self._no_rates(x)


class CNN2d(_ANN):
    """2D CNN on a feature "image" ``[B, 1, T, F]`` (MFCC or log-mel frames).

    ``[conv3x3 -> BN -> ReLU|QCFS -> pool -> dropout]`` per entry of ``channels``, global
    average pooling, ``[Linear -> BN -> ReLU|QCFS -> dropout]`` per entry of
    ``hidden_sizes``, and a linear classifier. Any input length and feature count work.
    ``pool="avg"`` (default) keeps the network convertible to a spiking one; ``"max"`` is
    offered for the ANN baseline only. ``qcfs=L > 0`` replaces every ReLU by a QCFS
    activation with ``L`` levels and a learned clip value per layer.
    """

    def __init__(self, in_features: int, num_classes: int, channels: Sequence[int] = (16, 32, 64),
                 kernel_size: int = 3, pool: str = "avg", pool_size: int = 2,
                 hidden_sizes: Sequence[int] = (), dropout: float = 0.1,
                 normalization: str = "batchnorm", qcfs: int = 0, qcfs_init: float = 4.0) -> None:
        super().__init__(in_features, num_classes)
        chans = _positive_ints("channels", channels, allow_empty=False)
        hidden = _positive_ints("hidden_sizes", hidden_sizes)
        dropout = _check_dropout(dropout)
        if int(kernel_size) != kernel_size or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
        if normalization not in ("batchnorm", "none"):
            raise ValueError(f"normalization must be batchnorm or none for cnn2d; got {normalization!r}")
        if int(qcfs) != qcfs or qcfs < 0:
            raise ValueError(f"qcfs must be 0 (ReLU) or a positive number of levels, got {qcfs!r}")
        Pool2d(pool_size, pool)  # validate even when pool_size == 1 adds no pooling
        use_bn = normalization == "batchnorm"
        layers: List[nn.Module] = [ToImage()]
        c_in = 1
        for c in chans:
            layers.append(nn.Conv2d(c_in, c, int(kernel_size), padding=int(kernel_size) // 2,
                                    bias=not use_bn))
            if use_bn:
                layers.append(nn.BatchNorm2d(c))
            layers.append(_activation(int(qcfs), qcfs_init))
            if pool_size != 1:
                layers.append(Pool2d(pool_size, pool))
            if dropout:
                layers.append(nn.Dropout(dropout))
            c_in = c
        layers.append(GlobalAvgPool2d())
        for h in hidden:
            layers.append(nn.Linear(c_in, h, bias=not use_bn))
            if use_bn:
                layers.append(LastDimBatchNorm(h))
            layers.append(_activation(int(qcfs), qcfs_init))
            if dropout:
                layers.append(nn.Dropout(dropout))
            c_in = h
        layers.append(nn.Linear(c_in, self.num_classes))
        self.net = nn.Sequential(*layers)
        self.pool = pool
        self.qcfs_levels = int(qcfs)

    def sequential(self) -> nn.Sequential:
        return self.net

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.net(self._check(x)), self._no_rates(x)


def ligru_scan(wx: torch.Tensor, recurrent: nn.Linear) -> torch.Tensor:
    """Light GRU recurrence over ``wx: [B, T, 2H]`` (feed-forward parts of the candidate and
    the update gate) -> ``h: [B, T, H]``, starting from ``h = 0``::

        z_t = sigmoid(wz_t + Uz h_{t-1});  c_t = relu(wa_t + Ua h_{t-1})
        h_t = z_t * h_{t-1} + (1 - z_t) * c_t
    """
    a, z = wx.chunk(2, dim=-1)
    h = wx.new_zeros(a.shape[0], a.shape[-1])
    out = []
    for t in range(wx.shape[1]):
        ua, uz = recurrent(h).chunk(2, dim=-1)
        zt = torch.sigmoid(z[:, t] + uz)
        h = zt * h + (1.0 - zt) * torch.relu(a[:, t] + ua)
        out.append(h)
    return torch.stack(out, dim=1)


class LiGRULayer(nn.Module):
    """Light GRU layer (Ravanelli et al. 2018, as in sparch): no reset gate, ReLU candidate,
    normalisation of the feed-forward currents. x: [B, T, in] -> [B, T, H or 2H]."""

    def __init__(self, in_features: int, hidden_size: int, normalization: str = "batchnorm",
                 bidirectional: bool = False) -> None:
        super().__init__()
        self.hidden_size = int(hidden_size)
        self.bidirectional = bool(bidirectional)
        self.linear = nn.Linear(in_features, 2 * self.hidden_size, bias=normalization == "none")
        self.norm = build_norm(normalization, 2 * self.hidden_size)
        self.recurrent = nn.Linear(self.hidden_size, 2 * self.hidden_size, bias=False)
        nn.init.orthogonal_(self.recurrent.weight)

    @property
    def out_features(self) -> int:
        return self.hidden_size * (2 if self.bidirectional else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bidirectional:
            x = torch.cat([x, x.flip(1)], dim=0)
        h = ligru_scan(self.norm(self.linear(x)), self.recurrent)
        if self.bidirectional:
            fwd, bwd = h.chunk(2, dim=0)
            h = torch.cat([fwd, bwd.flip(1)], dim=-1)
        return h


class _TorchRecurrentLayer(nn.Module):
    """``nn.RNN`` / ``nn.GRU`` (one layer, batch-first) returning only the output sequence."""

    def __init__(self, kind: str, in_features: int, hidden_size: int, bidirectional: bool,
                 nonlinearity: str) -> None:
        super().__init__()
        if kind == "rnn":
            self.rnn: nn.Module = nn.RNN(in_features, hidden_size, batch_first=True,
                                         bidirectional=bidirectional, nonlinearity=nonlinearity)
        else:
            self.rnn = nn.GRU(in_features, hidden_size, batch_first=True, bidirectional=bidirectional)
        self.out_features = hidden_size * (2 if bidirectional else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


class RecurrentANN(_ANN):
    """Stack of recurrent layers (``rnn``, ``gru`` or ``ligru``), each followed by a
    per-feature norm and dropout, then a frame-wise linear readout averaged over time."""

    def __init__(self, in_features: int, num_classes: int, cell: str = "gru",
                 hidden_sizes: Sequence[int] = (128, 128), dropout: float = 0.1,
                 normalization: str = "batchnorm", bidirectional: bool = False,
                 nonlinearity: str = "tanh") -> None:
        super().__init__(in_features, num_classes)
        if cell not in ("rnn", "gru", "ligru"):
            raise ValueError(f"cell must be rnn, gru or ligru; got {cell!r}")
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be tanh or relu; got {nonlinearity!r}")
        hidden = _positive_ints("hidden_sizes", hidden_sizes, allow_empty=False)
        dropout = _check_dropout(dropout)
        build_norm(normalization, 1)  # validate early
        self.cell = cell
        layers: List[nn.Module] = []
        norms: List[nn.Module] = []
        size = self.in_features
        for h in hidden:
            if cell == "ligru":
                layer: nn.Module = LiGRULayer(size, h, normalization, bidirectional)
                out = layer.out_features
                norms.append(nn.Identity())  # the light GRU normalises its own currents
            else:
                layer = _TorchRecurrentLayer(cell, size, h, bidirectional, nonlinearity)
                out = layer.out_features
                norms.append(build_norm(normalization, out))
            layers.append(layer)
            size = out
        self.layers = nn.ModuleList(layers)
        self.norms = nn.ModuleList(norms)
        self.dropout = nn.Dropout(dropout)
        self.readout = nn.Linear(size, self.num_classes)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        h = self._check(x)
        for layer, norm in zip(self.layers, self.norms):
            h = self.dropout(norm(layer(h)))
        return self.readout(h).mean(dim=1), self._no_rates(x)


# --------------------------------------------------------------------------- registry
_COMMON = ("hidden_sizes", "dropout", "normalization", "bidirectional")


def _feed_forward_bidirectional(model: str, bidirectional: bool) -> None:
    if bidirectional:
        raise ValueError(f"bidirectional=True applies to recurrent models; {model!r} is feed-forward")


@MODELS.register("mlp")
def build_mlp(in_features: int, num_classes: int, hidden_sizes: Sequence[int] = (128, 128),
              dropout: float = 0.1, normalization: str = "batchnorm", bidirectional: bool = False,
              bias: bool = True, qcfs: int = 0, qcfs_init: float = 4.0, **options: Any) -> MLP:
    _reject_unknown("mlp", options, _COMMON + ("bias", "qcfs", "qcfs_init"))
    _feed_forward_bidirectional("mlp", bidirectional)
    return MLP(in_features, num_classes, hidden_sizes, dropout, normalization, bias, qcfs, qcfs_init)


@MODELS.register("cnn2d")
def build_cnn2d(in_features: int, num_classes: int, hidden_sizes: Sequence[int] = (),
                dropout: float = 0.1, normalization: str = "batchnorm", bidirectional: bool = False,
                channels: Sequence[int] = (16, 32, 64), kernel_size: int = 3, pool: str = "avg",
                pool_size: int = 2, qcfs: int = 0, qcfs_init: float = 4.0, **options: Any) -> CNN2d:
    _reject_unknown("cnn2d", options, _COMMON + ("channels", "kernel_size", "pool", "pool_size",
                                                 "qcfs", "qcfs_init"))
    _feed_forward_bidirectional("cnn2d", bidirectional)
    return CNN2d(in_features, num_classes, channels, kernel_size, pool, pool_size, hidden_sizes,
                 dropout, normalization, qcfs, qcfs_init)


def _recurrent_factory(cell: str):
    def factory(in_features: int, num_classes: int, hidden_sizes: Sequence[int] = (128, 128),
                dropout: float = 0.1, normalization: str = "batchnorm", bidirectional: bool = False,
                nonlinearity: str = "tanh", **options: Any) -> RecurrentANN:
        allowed = _COMMON + (("nonlinearity",) if cell == "rnn" else ())
        if cell != "rnn" and nonlinearity != "tanh":
            options = dict(options, nonlinearity=nonlinearity)
        _reject_unknown(cell, options, allowed)
        return RecurrentANN(in_features, num_classes, cell, hidden_sizes, dropout, normalization,
                            bidirectional, nonlinearity)

    factory.__name__ = f"build_{cell}"
    factory.__doc__ = f"Recurrent ANN baseline with {cell} layers (see :class:`RecurrentANN`)."
    return factory


build_rnn = MODELS.register("rnn", _recurrent_factory("rnn"))
build_gru = MODELS.register("gru", _recurrent_factory("gru"))
build_ligru = MODELS.register("ligru", _recurrent_factory("ligru"))

__all__ = ["MLP", "CNN2d", "RecurrentANN", "LiGRULayer", "QCFS", "qcfs", "ligru_scan", "Pool2d",
           "GlobalAvgPool2d", "MeanOverTime", "ToImage", "LastDimBatchNorm", "SPIKING_ONLY_OPTIONS"]
