"""Synaptic operation and energy accounting, measured with forward hooks over a data split.

For every weight layer the counter records, per forward call, the products it performs:

- **MAC** (multiply-accumulate) when its input is real-valued: the first layer on audio
  features, every layer of a non-spiking model (``model.spiking == False``), the per-step
  attention scale of a causal :class:`~spikekws.models.spikescr.SpikeAttentionProduct`.
- **AC** (accumulate only) when its input is binary spikes in a spiking model: a spike
  adds one weight to each target, so ACs = the products whose input is non-zero, i.e.
  fan-out ops x measured input spike rate. Counted exactly from the non-zero pattern:
  ``nnz(x) * out_features`` for ``nn.Linear``; for ``nn.Conv1d``/``nn.Conv2d`` the
  convolution of the non-zero mask with an all-ones kernel (borders and groups exact).
- **Recurrent spiking neurons** (RLIF, RadLIF: ``recurrent_weight`` with zero diagonal):
  each spike at step ``t < T`` reaches the other ``H - 1`` neurons at ``t + 1``:
  ``ACs = nnz(s[:-1]) * (H - 1)``.
- **Spike attention** (``Q K^T`` then ``(Q K^T) V``, no softmax): every query spike
  accumulates each visible key (``n_t`` keys), every value spike is added into each query
  that sees it; both are ACs. Dense counts assume real-valued operands (same structure).
- ``nn.RNN``/``nn.GRU``/``nn.LSTM``: ``gates * H * (in + H)`` MACs per step and direction.

Not counted (state this when quoting figures): batch norm (folded into the weights at
inference), neuron membrane updates, softmax/readout non-linearities, element-wise gates of
the light GRU, and memory traffic, which often dominates on real hardware.

Energy per operation (45 nm CMOS, 0.9 V; Horowitz, "Computing's energy problem (and what
we can do about it)", ISSCC 2014, the figures used by most SNN energy estimates):

========  ==============================  ====================================
format    MAC (mult + add)                AC (add)
========  ==============================  ====================================
fp32      4.6 pJ = 3.7 (mult) + 0.9 (add)  0.9 pJ
int8      0.23 pJ = 0.2 (mult) + 0.03 (add) 0.03 pJ
========  ==============================  ====================================

All figures in the report are per sample (totals over the split divided by its size).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

ENERGY_PJ: Dict[str, Dict[str, float]] = {
    "fp32": {"mac": 4.6, "ac": 0.9},
    "int8": {"mac": 0.23, "ac": 0.03},
}
SOURCE = ("Horowitz, ISSCC 2014, 45 nm: fp32 mult 3.7 + add 0.9 pJ; int8 mult 0.2 + add 0.03 pJ")

_RNN_GATES = {nn.RNN: 1, nn.GRU: 3, nn.LSTM: 4}


def _is_binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


class _Counter:
    def __init__(self, name: str, kind: str) -> None:
        self.name, self.kind = name, kind
        self.macs = 0.0
        self.acs = 0.0
        self.dense = 0.0
        self.nnz = 0.0
        self.numel = 0.0
        self.spiking_input: Optional[bool] = None

    def add(self, dense: float, active: float, spiking: bool, nnz: float, numel: float) -> None:
        self.dense += dense
        if spiking:
            self.acs += active
        else:
            self.macs += dense
        self.nnz += nnz
        self.numel += numel
        self.spiking_input = spiking if self.spiking_input in (None, spiking) else False


def _conv_products(module: nn.Module, mask: torch.Tensor) -> float:
    """Number of (input element, weight) products with a non-zero input (``mask`` 0/1)."""
    ones = torch.ones_like(module.weight)
    conv = F.conv1d if isinstance(module, nn.Conv1d) else F.conv2d
    return float(conv(mask, ones, None, module.stride, module.padding, module.dilation,
                      module.groups).sum())


class OperationCounter:
    """Context manager: hooks every countable module of ``model`` and accumulates counts.

    >>> with OperationCounter(model) as counter:
    ...     model(x)
    >>> counter.layers()
    """

    def __init__(self, model: nn.Module) -> None:
        from ..models.spikescr import SpikeAttentionProduct
        from ..neurons.modules import IF, _SpikingNeuron

        self.model = model
        self.spiking = bool(getattr(model, "spiking", True))
        self.counters: "OrderedDict[str, _Counter]" = OrderedDict()
        self.neurons: "OrderedDict[str, List[float]]" = OrderedDict()  # name -> [spikes, numel]
        self._handles: List[Any] = []
        self._attention = SpikeAttentionProduct
        for name, m in model.named_modules():
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, SpikeAttentionProduct)) or \
                    type(m) in _RNN_GATES:
                self._handles.append(m.register_forward_hook(self._weight_hook(name)))
            elif isinstance(m, (_SpikingNeuron, IF)):
                self._handles.append(m.register_forward_hook(self._neuron_hook(name)))

    # ------------------------------------------------------------------ hooks
    def _counter(self, name: str, module: nn.Module) -> _Counter:
        if name not in self.counters:
            self.counters[name] = _Counter(name or "<model>", type(module).__name__)
        return self.counters[name]

    def _weight_hook(self, name: str):
        def hook(module, inputs, output):
            with torch.no_grad():
                self._count(name, module, inputs, output)
        return hook

    def _count(self, name: str, m: nn.Module, inputs, output) -> None:
        c = self._counter(name, m)
        x = inputs[0]
        nnz, numel = float((x != 0).sum()), float(x.numel())
        if isinstance(m, self._attention):
            self._count_attention(c, m, *inputs[:3])
            return
        if type(m) in _RNN_GATES:
            seq = output[0]
            batch_first = m.batch_first
            steps = seq.shape[1] if batch_first else seq.shape[0]
            batch = seq.shape[0] if batch_first else seq.shape[1]
            dirs = 2 if m.bidirectional else 1
            ops = _RNN_GATES[type(m)] * m.hidden_size * (m.input_size + m.hidden_size)
            c.add(float(ops * steps * batch * dirs), 0.0, False, nnz, numel)
            return
        spiking = self.spiking and _is_binary(x)
        if isinstance(m, nn.Linear):
            dense = numel * m.out_features
            active = nnz * m.out_features
        else:  # Conv1d / Conv2d
            dense = _conv_products(m, torch.ones_like(x))
            active = _conv_products(m, (x != 0).to(x.dtype)) if spiking else dense
        c.add(dense, active, spiking, nnz, numel)

    def _count_attention(self, c: _Counter, m: nn.Module, q, k, v) -> None:
        steps, d = q.shape[-2], q.shape[-1]
        lead = q.numel() // (steps * d)  # batch x heads
        t = torch.arange(steps, dtype=torch.float64)
        n_keys = t + 1 if m.causal else torch.full((steps,), float(steps), dtype=torch.float64)
        n_queries = steps - t if m.causal else torch.full((steps,), float(steps), dtype=torch.float64)
        q_spikes = (q != 0).double().sum(dim=-1).reshape(-1, steps).sum(0)  # per query step
        v_spikes = (v != 0).double().sum(dim=-1).reshape(-1, steps).sum(0)  # per key step
        dense = 2.0 * lead * d * float(n_keys.sum())  # QK^T and (QK^T)V have equal counts
        active = float((q_spikes * n_keys).sum() + (v_spikes * n_queries).sum())
        spiking = self.spiking and _is_binary(q) and _is_binary(k) and _is_binary(v)
        nnz = float((q != 0).sum() + (k != 0).sum() + (v != 0).sum())
        c.add(dense, active if spiking else dense, spiking, nnz, float(3 * q.numel()))
        if m.causal:  # the per-step scale 1/n_t cannot be folded into the following norm
            c.macs += float(lead * steps * d)
            c.dense += float(lead * steps * d)

    def _neuron_hook(self, name: str):
        def hook(module, inputs, output):
            with torch.no_grad():
                s = output[0] if isinstance(output, tuple) else output
                rec = self.neurons.setdefault(name, [0.0, 0.0])
                rec[0] += float(s.sum())
                rec[1] += float(s.numel())
                w = getattr(module, "recurrent_weight", None)
                if w is not None and s.shape[0] > 1:
                    h = w.shape[0]
                    c = self._counter(f"{name}.recurrent", module)
                    c.kind = f"{type(module).__name__}.recurrent"
                    prev = s[:-1]
                    nnz, numel = float((prev != 0).sum()), float(prev.numel())
                    spiking = self.spiking and _is_binary(prev)
                    c.add(numel * (h - 1), nnz * (h - 1), spiking, nnz, numel)
        return hook

    # ------------------------------------------------------------------ results
    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> "OperationCounter":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def report(self, num_samples: int) -> Dict[str, Any]:
        """Per-sample operation counts and energy (see :func:`energy_report`)."""
        n = max(int(num_samples), 1)
        layers = []
        for c in self.counters.values():
            row = {"name": c.name, "type": c.kind, "macs": c.macs / n, "acs": c.acs / n,
                   "dense_ops": c.dense / n,
                   "input_rate": c.nnz / c.numel if c.numel else 0.0,
                   "spiking_input": bool(c.spiking_input)}
            for fmt, e in ENERGY_PJ.items():
                row[f"energy_pj_{fmt}"] = row["macs"] * e["mac"] + row["acs"] * e["ac"]
            layers.append(row)
        total = {k: sum(r[k] for r in layers) for k in ("macs", "acs", "dense_ops")}
        for fmt, e in ENERGY_PJ.items():
            total[f"energy_pj_{fmt}"] = sum(r[f"energy_pj_{fmt}"] for r in layers)
            # the same network with every product a MAC (what a non-spiking run would cost)
            total[f"dense_energy_pj_{fmt}"] = total["dense_ops"] * e["mac"]
        neurons = [{"name": name, "firing_rate": s / m if m else 0.0}
                   for name, (s, m) in self.neurons.items()]
        return {"num_samples": int(num_samples), "spiking": self.spiking,
                "energy_per_op_pj": ENERGY_PJ, "source": SOURCE,
                "layers": layers, "neurons": neurons, "total": total}


@torch.no_grad()
def energy_report(model: nn.Module, X: torch.Tensor, device: Any = "cpu",
                  batch_size: int = 256) -> Dict[str, Any]:
    """Run ``model`` (eval mode) over ``X: [N, T, F]`` and count operations per sample.

    Returns ``{"num_samples", "timesteps", "spiking", "energy_per_op_pj", "source",
    "layers": [{name, type, macs, acs, dense_ops, input_rate, spiking_input,
    energy_pj_fp32, energy_pj_int8}], "neurons": [{name, firing_rate}], "total": {...}}``.
    """
    if X.dim() != 3:
        raise ValueError(f"X must be [samples, time, features], got shape {list(X.shape)}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    model.eval()
    with OperationCounter(model) as counter:
        for i in range(0, len(X), int(batch_size)):
            model(X[i:i + int(batch_size)].to(device))
    rep = counter.report(len(X))
    rep["timesteps"] = int(X.shape[1])
    return rep


def energy_table(rep: Dict[str, Any]) -> str:
    """Markdown table of a :func:`energy_report` (per sample)."""
    lines = ["| layer | type | input | input rate | MACs | ACs | fp32 nJ | int8 nJ |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rep["layers"]:
        lines.append(f"| {r['name']} | {r['type']} | {'spikes' if r['spiking_input'] else 'real'} | "
                     f"{r['input_rate']:.3f} | {r['macs']:.4g} | {r['acs']:.4g} | "
                     f"{r['energy_pj_fp32'] / 1e3:.4g} | {r['energy_pj_int8'] / 1e3:.4g} |")
    t = rep["total"]
    lines.append(f"| **total** | | | | {t['macs']:.4g} | {t['acs']:.4g} | "
                 f"{t['energy_pj_fp32'] / 1e3:.4g} | {t['energy_pj_int8'] / 1e3:.4g} |")
    return "\n".join(lines)
