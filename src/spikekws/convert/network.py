"""The convertible form of a feed-forward ANN: a chain of affine layers.

:func:`from_model` walks a model's ``nn.Sequential`` once on an example input and produces a
:class:`ConvertedNet`: a list of :class:`AffineLayer` (conv2d or linear) where

* every BatchNorm is folded into the affine layer before it (:func:`fold_batchnorm`);
* every parameter-free linear operation between two affine layers (average pooling,
  global average pooling, mean over frames, flatten, the ``[B, T, F] -> [B, 1, T, F]``
  adapter) becomes a *sum* (:class:`SumPool2d`, :class:`GlobalSum2d`, :class:`SumFrames`)
  in the layer's ``pre`` list, and its divisor is folded into the layer's weights. Sums
  of spikes are integers, so the integer simulation needs no division;
* ``activation`` is ``"relu"`` or ``"qcfs"`` for hidden layers (these become IF neurons)
  and ``None`` for the last layer (the non-spiking readout);
* ``post`` holds the parameter-free operations after the readout (mean over frames).

Global pooling divides by the size of the plane it averages, so a converted network is
specialised to the input shape it was converted with (``input_shape``; keyword-spotting
clips have a fixed length). Dropout is dropped (inference only). Max pooling, layer norm
and any other module raise ``ValueError``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.linear import fold_batchnorm
from ..models.ann import (QCFS, GlobalAvgPool2d, MeanOverTime, Pool2d, ToImage, qcfs)
from ..registry import Registry

CONVERTERS: Registry = Registry("converter")
"""Model name -> function(model) returning the ``nn.Sequential`` to convert."""


@CONVERTERS.register("cnn2d")
def _cnn2d_sequential(model: nn.Module) -> nn.Sequential:
    return model.sequential()


@CONVERTERS.register("mlp")
def _mlp_sequential(model: nn.Module) -> nn.Sequential:
    return model.sequential()


# --------------------------------------------------------------------------- sum operations
class SumPool2d(nn.Module):
    """Sum over non-overlapping ``k x k`` windows after zero-padding each spatial size up to a
    multiple of ``k`` (the sum form of :class:`~spikekws.models.ann.Pool2d`). Works for any
    dtype, integers included."""

    def __init__(self, kernel_size: int, pad: bool = True) -> None:
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.pad = bool(pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        h, w = x.shape[-2:]
        if self.pad:
            ph, pw = (-h) % k, (-w) % k
            if ph or pw:
                x = F.pad(x, (0, pw, 0, ph))
        else:  # nn.AvgPool2d without padding drops the incomplete windows
            x = x[..., : h - h % k, : w - w % k]
        b, c, h, w = x.shape
        return x.reshape(b, c, h // k, k, w // k, k).sum(dim=(3, 5))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"


class GlobalSum2d(nn.Module):
    """``[B, C, H, W] -> [B, C]`` (or ``[B, C, 1, 1]`` with ``keepdim``) sum over the plane."""

    def __init__(self, keepdim: bool = False) -> None:
        super().__init__()
        self.keepdim = bool(keepdim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=(2, 3), keepdim=self.keepdim)


class SumFrames(nn.Module):
    """``[B, T, C] -> [B, C]`` sum over frames."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=1)


# --------------------------------------------------------------------------- network
@dataclass
class AffineLayer:
    """One conv2d/linear layer of a converted network (BN and pooling divisors folded).

    ``pre`` maps the previous layer's output (or the network input) to this layer's input;
    ``activation`` is ``"relu"``, ``"qcfs"`` or ``None`` (readout). After
    :func:`~spikekws.convert.quantize.quantize`, ``qweight`` holds int8 weights with
    ``weight == qweight * wscale`` (``wscale`` per output channel, equal entries when
    quantised per tensor).
    """

    kind: str
    weight: torch.Tensor
    bias: torch.Tensor
    pre: List[nn.Module] = field(default_factory=list)
    activation: Optional[str] = None
    stride: Tuple[int, int] = (1, 1)
    padding: Any = (0, 0)
    dilation: Tuple[int, int] = (1, 1)
    groups: int = 1
    qcfs_lambda: Optional[float] = None
    qcfs_levels: int = 0
    in_max: int = 1  # largest spike sum one input of this layer can see in one step
    qweight: Optional[torch.Tensor] = None
    wscale: Optional[torch.Tensor] = None
    name: str = ""

    @property
    def spiking(self) -> bool:
        return self.activation is not None

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    def channel_shape(self) -> Tuple[int, ...]:
        """Shape that broadcasts a per-output-channel vector against this layer's output."""
        return (-1, 1, 1) if self.kind == "conv2d" else (-1,)

    def apply_pre(self, h: torch.Tensor) -> torch.Tensor:
        for op in self.pre:
            h = op(h)
        return h

    def linear_part(self, h: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``W h`` without bias (``h`` already through ``pre``)."""
        w = self.weight if weight is None else weight
        w = w.to(h.dtype)
        if self.kind == "conv2d":
            return F.conv2d(h, w, None, self.stride, self.padding, self.dilation, self.groups)
        return F.linear(h, w)

    def activate(self, z: torch.Tensor) -> torch.Tensor:
        if self.activation == "relu":
            return torch.relu(z)
        if self.activation == "qcfs":
            lam = torch.tensor(float(self.qcfs_lambda), dtype=z.dtype, device=z.device)
            return qcfs(z, lam, self.qcfs_levels)
        return z

    def to(self, device: Any) -> "AffineLayer":
        moved = {k: getattr(self, k).to(device) for k in ("weight", "bias", "qweight", "wscale")
                 if getattr(self, k) is not None}
        return replace(self, **moved)


@dataclass
class ConvertedNet:
    """A feed-forward ANN as a chain of :class:`AffineLayer` (see the module docstring).

    ``input_scale`` is set by quantisation: the input is then rounded to ``int8`` steps of
    that (power-of-two) size before the first layer.
    """

    layers: List[AffineLayer]
    post: List[nn.Module]
    input_shape: Tuple[int, ...]
    input_scale: Optional[float] = None

    @property
    def quantized(self) -> bool:
        return self.layers[0].qweight is not None

    @property
    def spiking_layers(self) -> List[AffineLayer]:
        return [layer for layer in self.layers if layer.spiking]

    def check_input(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != tuple(self.input_shape):
            raise ValueError(f"this converted network expects inputs [batch, "
                             f"{', '.join(map(str, self.input_shape))}] (the shape it was "
                             f"converted with; pooling divisors are folded for it), got "
                             f"{list(x.shape)}")

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """Integer input codes in [-127, 127] (requires ``input_scale``)."""
        if self.input_scale is None:
            raise ValueError("the network has no input quantisation; call quantize() with "
                             "calibration data first")
        return torch.clamp(torch.round(x / self.input_scale), -127, 127)

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """The analog input of the first layer: ``x``, or its int8 quantisation (dequantised)."""
        self.check_input(x)
        if self.input_scale is None:
            return x
        return self.quantize_input(x) * self.input_scale

    @torch.no_grad()
    def forward(self, x: torch.Tensor, return_preactivations: bool = False):
        """ANN inference: x [B, *input_shape] -> logits [B, C] (and the pre-activations of
        every spiking layer when ``return_preactivations``)."""
        h = self.prepare_input(x)
        pre_acts = []
        for layer in self.layers:
            z = layer.linear_part(layer.apply_pre(h))
            z = z + layer.bias.to(h.dtype).reshape(layer.channel_shape())
            if layer.spiking:
                pre_acts.append(z)
            h = layer.activate(z)
        for op in self.post:
            h = op(h)
        return (h, pre_acts) if return_preactivations else h

    __call__ = forward

    def to(self, device: Any) -> "ConvertedNet":
        return replace(self, layers=[layer.to(device) for layer in self.layers])

    def clone(self) -> "ConvertedNet":
        return copy.deepcopy(self)

    def describe(self) -> List[Dict[str, Any]]:
        rows = []
        for layer in self.layers:
            rows.append({"name": layer.name, "kind": layer.kind, "shape": list(layer.weight.shape),
                         "pre": [type(op).__name__ for op in layer.pre],
                         "activation": layer.activation})
        return rows


# --------------------------------------------------------------------------- conversion
_IDENTITY = (nn.Dropout, nn.Dropout2d, nn.Identity)


def _pair(v: Any) -> Tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def to_sequential(model: nn.Module, name: Optional[str] = None) -> nn.Sequential:
    """The ``nn.Sequential`` of a convertible model (by registry ``name`` when given)."""
    if name is not None:
        if name not in CONVERTERS:
            raise ValueError(f"model {name!r} cannot be converted to a spiking network "
                             f"(convertible: {', '.join(CONVERTERS.list())})")
        return CONVERTERS.get(name)(model)
    if isinstance(model, nn.Sequential):
        return model
    if hasattr(model, "sequential"):
        return model.sequential()
    raise ValueError(f"{type(model).__name__} cannot be converted to a spiking network: only "
                     f"feed-forward models ({', '.join(CONVERTERS.list())}) or an nn.Sequential")


@torch.no_grad()
def from_model(model: nn.Module, example: torch.Tensor, name: Optional[str] = None) -> ConvertedNet:
    """Fold a trained feed-forward model into a :class:`ConvertedNet`.

    ``example``: one input batch ``[B, T, F]`` with the shape the converted network will see
    (needed to know the divisors of global pooling).
    """
    seq = to_sequential(model, name)
    was_training = model.training
    model.eval()
    try:
        return _fold(seq, example)
    finally:
        model.train(was_training)


def _fold(seq: nn.Sequential, example: torch.Tensor) -> ConvertedNet:
    x = example.detach()
    layers: List[AffineLayer] = []
    current: Optional[AffineLayer] = None
    pending: List[nn.Module] = []
    divisor = 1
    in_max = 1  # first layer: analog input
    post: List[nn.Module] = []

    def close(activation: Optional[str]) -> None:
        nonlocal current
        assert current is not None
        current.activation = activation
        layers.append(current)
        current = None

    for idx, m in enumerate(seq):
        name = f"{idx}:{type(m).__name__}"
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if current is not None:
                raise ValueError(f"module {name} follows an affine layer without an activation "
                                 f"in between; merge them before conversion")
            w = m.weight.detach().float().clone() / divisor
            b = m.bias.detach().float().clone() if m.bias is not None else torch.zeros(w.shape[0])
            kw: Dict[str, Any] = {}
            if isinstance(m, nn.Conv2d):
                if m.padding_mode != "zeros":
                    raise ValueError(f"{name}: only zero padding can be converted "
                                     f"(padding_mode={m.padding_mode!r})")
                padding = m.padding if isinstance(m.padding, str) else _pair(m.padding)
                kw = dict(kind="conv2d", stride=_pair(m.stride), padding=padding,
                          dilation=_pair(m.dilation), groups=int(m.groups))
            else:
                kw = dict(kind="linear")
            current = AffineLayer(weight=w, bias=b, pre=pending, in_max=in_max, name=name, **kw)
            pending, divisor = [], 1
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            if current is None:
                raise ValueError(f"{name}: a BatchNorm must directly follow a conv/linear layer "
                                 f"to be folded")
            current.weight, current.bias = fold_batchnorm(current.weight, current.bias, m)
        elif isinstance(m, nn.ReLU):
            if current is None:
                raise ValueError(f"{name}: an activation must follow a conv/linear layer")
            close("relu")
            in_max = 1
        elif isinstance(m, QCFS):
            if current is None:
                raise ValueError(f"{name}: an activation must follow a conv/linear layer")
            current.qcfs_lambda = float(m.clip_value())
            current.qcfs_levels = m.levels
            close("qcfs")
            in_max = 1
        elif isinstance(m, _IDENTITY):
            pass
        elif current is not None and not (isinstance(m, MeanOverTime) and idx == len(seq) - 1):
            raise ValueError(f"{name}: between a conv/linear layer and its activation only a "
                             f"BatchNorm can be converted")
        elif isinstance(m, ToImage):
            pending.append(ToImage())
        elif isinstance(m, Pool2d) or isinstance(m, nn.AvgPool2d):
            if isinstance(m, Pool2d):
                if m.mode != "avg":
                    raise ValueError(f"{name}: max pooling has no exact spiking equivalent; train "
                                     f"the model with model.options.pool=avg to convert it")
                k, pad = m.kernel_size, True
            else:
                k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
                if (_pair(m.kernel_size) != (k, k) or _pair(m.stride or k) != (k, k)
                        or _pair(m.padding) != (0, 0) or m.ceil_mode or m.divisor_override):
                    raise ValueError(f"{name}: only non-overlapping square average pooling "
                                     f"without padding can be converted")
                pad = False
            pending.append(SumPool2d(k, pad))
            divisor *= k * k
            in_max *= k * k
        elif isinstance(m, (nn.MaxPool2d, nn.AdaptiveMaxPool2d)):
            raise ValueError(f"{name}: max pooling has no exact spiking equivalent; use average "
                             f"pooling (model.options.pool=avg)")
        elif isinstance(m, GlobalAvgPool2d) or (isinstance(m, nn.AdaptiveAvgPool2d)
                                                and _pair(m.output_size) == (1, 1)):
            n = int(x.shape[-2] * x.shape[-1])
            pending.append(GlobalSum2d(keepdim=isinstance(m, nn.AdaptiveAvgPool2d)))
            divisor *= n
            in_max *= n
        elif isinstance(m, nn.Flatten):
            pending.append(copy.deepcopy(m))
        elif isinstance(m, MeanOverTime):
            n = int(x.shape[1])
            if current is not None:
                post.append(MeanOverTime())  # after the readout: average its scores
            else:
                pending.append(SumFrames())
                divisor *= n
                in_max *= n
        else:
            raise ValueError(f"{name}: no spiking equivalent for {type(m).__name__} (convertible: "
                             f"Conv2d, Linear, BatchNorm, ReLU, QCFS, average pooling, dropout)")
        x = m(x)

    if current is None:
        raise ValueError("the last module to convert must be the (linear) readout layer, "
                         "not an activation")
    if pending:
        raise ValueError("parameter-free modules after the readout are not supported: "
                         + ", ".join(type(m).__name__ for m in pending))
    close(None)
    if not any(layer.spiking for layer in layers):
        raise ValueError("the model has no hidden layer with an activation: nothing to convert")
    return ConvertedNet(layers=layers, post=post, input_shape=tuple(example.shape[1:]))


__all__ = ["AffineLayer", "ConvertedNet", "CONVERTERS", "SumPool2d", "GlobalSum2d", "SumFrames",
           "fold_batchnorm", "from_model", "to_sequential"]
