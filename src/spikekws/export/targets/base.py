"""Chip profiles: declared constraints and ``check(model) -> violations``.

A profile describes what a neuromorphic target can hold; :meth:`ChipProfile.check`
inspects an SNN (or :class:`~spikekws.export.graph.GraphSNN`) and lists every violation,
each naming the layer and the numbers. Integer quantities (thresholds, decay codes)
are those of :func:`spikekws.export.integer.quantize_snn` with the profile's weight bits
and decay scheme (BatchNorm folded first). The figures are public, rounded numbers for
"X-like" targets: a first-pass feasibility check, not a vendor toolchain.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, NamedTuple, Optional, Tuple

import torch
from torch import nn

from ...registry import Registry

TARGETS: Registry = Registry("target")


class Violation(NamedTuple):
    layer: str  # "layers.0", "readout", "input", "model"
    rule: str  # short key: fan_in, neurons, weight_range, ...
    message: str

    def __str__(self) -> str:
        return f"{self.layer}: {self.message}"


class LayerSpec(NamedTuple):
    """What a check needs to know about one layer."""

    name: str
    kind: str  # lif, rlif, adlif, radlif, if, li (readout)
    in_features: int
    size: int
    recurrent: bool
    bidirectional: bool
    weight: Optional[torch.Tensor]  # folded [H, in] (None when the norm cannot be folded)
    fold_error: Optional[str]


@dataclass(frozen=True)
class ChipProfile:
    """Constraints of a target (None: no limit declared)."""

    name: str
    description: str
    weight_bits: int = 8  # signed weight codes
    weight_range: Tuple[int, int] = (-128, 127)
    max_fan_in: Optional[int] = None  # synapses per neuron (feed-forward + recurrent)
    max_neurons: Optional[int] = None  # spiking neurons on the chip
    max_input_channels: Optional[int] = None
    max_outputs: Optional[int] = None  # readout / output neurons
    threshold_bits: Optional[int] = None  # unsigned integer threshold width
    neurons: Tuple[str, ...] = ("lif", "rlif", "if")
    recurrence: bool = True
    li_readout: bool = True  # a non-spiking membrane readout is available
    decay: str = "shift"  # "shift" (v -= v >> k) or "fixed12" (12-bit multiplier)
    max_distinct_weights: Optional[int] = None  # per neuron (TrueNorth axon types)
    notes: Tuple[str, ...] = field(default_factory=tuple)

    # ------------------------------------------------------------------ checks
    def check(self, model: nn.Module) -> List[Violation]:
        """Every violation of this profile by ``model`` (empty list: it fits)."""
        specs = layer_specs(model)
        out: List[Violation] = []
        first = specs[0]
        if self.max_input_channels is not None and first.in_features > self.max_input_channels:
            out.append(Violation("input", "input_channels",
                                 f"{first.in_features} input channels exceed the {self.max_input_channels} "
                                 f"of {self.name}"))
        spiking = [s for s in specs if s.kind != "li"]
        total = sum(s.size * (2 if s.bidirectional else 1) for s in spiking)
        for s in specs:
            out += self._check_layer(s)
        readout = [s for s in specs if s.kind == "li"]
        if readout:
            r = readout[0]
            if not self.li_readout:
                out.append(Violation(r.name, "readout",
                                     f"non-spiking LI readout ({r.size} classes) is not available on "
                                     f"{self.name}; train with model.options.use_readout_layer=false "
                                     "(spike-count output)"))
            outs = r.size
        else:
            outs = spiking[-1].size if spiking else 0
        if self.max_outputs is not None and outs > self.max_outputs:
            out.append(Violation(readout[0].name if readout else spiking[-1].name, "outputs",
                                 f"{outs} output neurons exceed the {self.max_outputs} of {self.name}"))
        if self.max_neurons is not None and total > self.max_neurons:
            out.append(Violation("model", "neurons",
                                 f"{total} spiking neurons exceed the {self.max_neurons} of {self.name}"))
        out += self._check_integers(model, specs)
        return out

    def _check_layer(self, s: LayerSpec) -> List[Violation]:
        out: List[Violation] = []
        label = f"{s.kind}, {s.in_features}->{s.size}"
        if s.kind != "li" and s.kind not in self.neurons:
            alt = [k for k in ("lif", "rlif") if k in self.neurons]
            hint = f" (use {' or '.join(alt)})" if s.kind in ("adlif", "radlif") and alt else ""
            out.append(Violation(s.name, "neuron",
                                 f"neuron type {s.kind} is not supported by {self.name} "
                                 f"(supported: {', '.join(self.neurons)}){hint}"))
        if s.recurrent and not self.recurrence:
            out.append(Violation(s.name, "recurrence",
                                 f"recurrent connections ({s.size}x{s.size}) are not supported by {self.name}"))
        if s.bidirectional:
            out.append(Violation(s.name, "bidirectional",
                                 "bidirectional layers need the whole utterance; no chip streams them"))
        fan_in = s.in_features + (s.size if s.recurrent else 0)
        if self.max_fan_in is not None and fan_in > self.max_fan_in:
            detail = f"{s.in_features} + {s.size} recurrent = {fan_in}" if s.recurrent else str(fan_in)
            out.append(Violation(s.name, "fan_in",
                                 f"fan-in {detail} exceeds {self.max_fan_in} synapses per neuron ({label})"))
        if s.fold_error:
            out.append(Violation(s.name, "normalization", s.fold_error))
        if self.max_distinct_weights is not None and s.weight is not None:
            from ..integer import quantize_weight
            codes, _ = quantize_weight(s.weight, self.weight_bits)
            distinct = max(int(torch.unique(row).numel()) for row in codes)
            if distinct > self.max_distinct_weights:
                out.append(Violation(s.name, "distinct_weights",
                                     f"up to {distinct} distinct {self.weight_bits}-bit weight values per "
                                     f"neuron; {self.name} allows {self.max_distinct_weights}"))
        return out

    def _check_integers(self, model: nn.Module, specs: List[LayerSpec]) -> List[Violation]:
        """Thresholds and decays after quantisation with this profile's scheme."""
        if any(s.weight is None or s.kind in ("adlif", "radlif") or s.bidirectional for s in specs):
            return []  # already reported; the integer scheme does not apply
        from ..integer import quantize_snn
        q = quantize_snn(model, input_scale=1.0, weight_bits=self.weight_bits, decay=self.decay)
        out: List[Violation] = []
        names = [s.name for s in specs]
        for spec_name, L in zip(names, q.int_layers):
            codes_max = int(L.weight.abs().max()) if L.weight.numel() else 0
            lo, hi = self.weight_range
            if codes_max > min(-lo, hi):
                out.append(Violation(spec_name, "weight_range",
                                     f"weight codes reach ±{codes_max}, beyond {lo}..{hi}"))
            if L.recurrent is not None and L.rec_shift > 0:
                out.append(Violation(spec_name, "recurrent_scale",
                                     f"recurrent weights need a {L.rec_shift}-bit left shift relative to "
                                     "the input weights (one weight scale per layer on chip)"))
            if L.threshold is not None and self.threshold_bits is not None:
                tmax = int(L.threshold.max())
                limit = 2 ** self.threshold_bits - 1
                if tmax > limit:
                    out.append(Violation(spec_name, "threshold",
                                         f"integer threshold {tmax} exceeds the {self.threshold_bits}-bit "
                                         f"maximum {limit}"))
        return out


def layer_specs(model: nn.Module) -> List[LayerSpec]:
    """LayerSpec per spiking layer and the readout of an SNN or GraphSNN."""
    from ...models.snn import SNN
    from ..graph import GraphSNN, fold_affine, neuron_kind
    specs: List[LayerSpec] = []
    if isinstance(model, GraphSNN):
        for i, L in enumerate(model.layers):
            kind = ("rlif" if L.recurrent else "lif") if L.neuron == "lif" else L.neuron
            specs.append(LayerSpec(f"layers.{i}", kind, L.in_features, L.size, L.recurrent, False,
                                   L.weight.detach(), None))
        if model.readout is not None:
            r = model.readout
            specs.append(LayerSpec("readout", "li", r.in_features, r.size, False, False,
                                   r.weight.detach(), None))
        return specs
    if not isinstance(model, SNN):
        raise TypeError(f"model must be a spikekws SNN or GraphSNN, got {type(model).__name__}")

    def folded(linear, norm):
        try:
            return fold_affine(linear, norm)[0], None
        except ValueError as e:
            return None, str(e)

    for i, layer in enumerate(model.layers):
        kind = neuron_kind(layer.neuron)
        w, err = folded(layer.linear, layer.norm)
        specs.append(LayerSpec(f"layers.{i}", kind, layer.in_features, layer.hidden_size,
                               kind in ("rlif", "radlif"), layer.bidirectional, w, err))
    if model.readout is not None:
        w, err = folded(model.readout.linear, model.readout.norm)
        specs.append(LayerSpec("readout", "li", model.readout.linear.in_features,
                               model.readout.linear.out_features, False, False, w, err))
    return specs


def get_target(name: str) -> ChipProfile:
    """The registered profile ``name`` (KeyError listing the targets)."""
    from . import _load_all
    _load_all()
    return TARGETS.get(name)


__all__ = ["ChipProfile", "Violation", "LayerSpec", "TARGETS", "layer_specs", "get_target"]
