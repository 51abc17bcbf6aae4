"""Folded SNN graphs: the deployment form of an SNN stack.

:func:`fold_snn` turns a trained :class:`~spikekws.models.snn.SNN` (eval mode) into a
:class:`GraphSNN`: per layer one affine map ``z = W x + b`` (BatchNorm folded in, dropout
gone), one neuron population (``lif`` with optional recurrent matrix, or ``if``) and an
``LI`` readout. It is what the NIR exporter writes, what the NIR importer rebuilds, what
chip profiles check and what the integer simulation quantises.

Dynamics are those of the kernels in :mod:`spikekws.neurons.functional` (time-first,
state explicit); with ``reset="subtract"`` (ours) a layer runs exactly
:func:`~spikekws.neurons.functional.lif_scan` / ``if_scan`` on ``gain * z``. Graphs
imported from other tools may use ``reset="value"`` (NIR's literal rule: spike when
``v > v_threshold``, then ``v = v_reset``).

BatchNorm folding (eval statistics ``mu``, ``var``, affine ``gamma``, ``beta``)::

    W' = diag(g) W,  b' = g (b - mu) + beta,   g = gamma / sqrt(var + eps)

computed in float64 and cast to the model's dtype. LayerNorm depends on the input and
cannot be folded: such models are refused.
"""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import nn

from ..neurons import functional as F
from ..neurons.surrogate import get_surrogate

_STEP = get_surrogate("boxcar")  # inference only: the Heaviside step 1[x >= 0]

RESETS = ("subtract", "value")
ADAPTIVE = ("adlif", "radlif")


class _Affine(nn.Module):
    """Input side of a graph layer: buffers ``weight`` [H, in], ``bias`` [H], ``gain`` [H]."""

    @property
    def size(self) -> int:
        return int(self.weight.shape[0])

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    def current(self, x: torch.Tensor) -> torch.Tensor:
        z = x @ self.weight.t() + self.bias
        return z if bool((self.gain == 1).all()) else z * self.gain


class GraphLayer(_Affine):
    """One spiking population fed by an affine map.

    weight: [H, in]; bias: [H]; alpha: [H] membrane decay per step (``lif``; None for
    ``if``); v_threshold, v_reset, gain: [H]; recurrent_weight: [H, H] (``V s_{t-1}``).
    ``step``/``forward`` take the layer *input* (pre-affine) ``x: [T, B, in]``.
    """

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor], neuron: str,
                 alpha: Optional[torch.Tensor] = None, v_threshold=1.0,
                 recurrent_weight: Optional[torch.Tensor] = None, reset: str = "subtract",
                 v_reset=0.0, gain=1.0, name: str = "") -> None:
        super().__init__()
        if neuron not in ("lif", "if"):
            raise ValueError(f"neuron must be 'lif' or 'if', got {neuron!r}")
        if reset not in RESETS:
            raise ValueError(f"reset must be one of {RESETS}, got {reset!r}")
        if neuron == "lif" and alpha is None:
            raise ValueError("a 'lif' layer needs alpha")
        if neuron == "if" and recurrent_weight is not None and reset == "subtract":
            raise ValueError(f"layer {name}: recurrent IF layers are not supported")
        weight = torch.as_tensor(weight)
        h = weight.shape[0]
        full = lambda v: torch.as_tensor(v, dtype=weight.dtype).expand(h).clone()  # noqa: E731
        self.neuron = neuron
        self.reset = reset
        self.name = name
        self.register_buffer("weight", weight.clone())
        self.register_buffer("bias", full(0.0) if bias is None else torch.as_tensor(bias, dtype=weight.dtype).clone())
        self.register_buffer("alpha", None if alpha is None else full(alpha))
        self.register_buffer("v_threshold", full(v_threshold))
        self.register_buffer("v_reset", full(v_reset))
        self.register_buffer("gain", full(gain))
        self.register_buffer("recurrent_weight",
                             None if recurrent_weight is None else torch.as_tensor(recurrent_weight, dtype=weight.dtype).clone())

    @property
    def recurrent(self) -> bool:
        return self.recurrent_weight is not None

    def _threshold(self):
        th = self.v_threshold
        return float(th[0]) if bool((th == th[0]).all()) else th

    def _value_step(self, z, state: F.LIFState):
        v, s = state
        if self.recurrent:
            z = z + s @ self.recurrent_weight.t()
        v = torch.where(s > 0, self.v_reset, v)
        v = v + z if self.alpha is None else self.alpha * v + (1.0 - self.alpha) * z
        s = (v > self.v_threshold).to(v.dtype)
        return s, F.LIFState(v, s)

    def forward(self, x: torch.Tensor, state: Optional[F.LIFState] = None):
        """x: [T, B, in] -> (spikes [T, B, H], LIFState)."""
        z = self.current(x)
        if self.reset == "value":
            state = F.lif_init(z[0]) if state is None else state
            out = []
            for t in range(z.shape[0]):
                s, state = self._value_step(z[t], state)
                out.append(s)
            return torch.stack(out), state
        th = self._threshold()
        backend = "auto" if isinstance(th, float) else "torch"
        if self.neuron == "if" and not self.recurrent:
            return F.if_scan(z, state, surrogate=_STEP, v_threshold=th, backend=backend)
        return F.lif_scan(z, state, alpha=self.alpha, surrogate=_STEP, v_threshold=th,
                          recurrent_weight=self.recurrent_weight, backend=backend)

    def step(self, x_t: torch.Tensor, state: Optional[F.LIFState] = None):
        """x_t: [B, in] -> (spikes [B, H], LIFState)."""
        z = self.current(x_t)
        state = F.lif_init(z) if state is None else state
        if self.reset == "value":
            return self._value_step(z, state)
        if self.neuron == "if":
            return F.if_step(z, state, _STEP, self._threshold())
        return F.lif_step(z, state, self.alpha, _STEP, self._threshold(), self.recurrent_weight)

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, neuron={self.neuron!r}, in={self.in_features}, "
                f"out={self.size}, recurrent={self.recurrent}, reset={self.reset!r}")


class GraphReadout(_Affine):
    """Leaky-integrator readout ``v = LI(gain * (W x + b))``. x: [T, B, in] -> v [T, B, C]."""

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor], alpha: torch.Tensor,
                 gain=1.0, name: str = "readout") -> None:
        super().__init__()
        weight = torch.as_tensor(weight)
        c = weight.shape[0]
        self.name = name
        self.register_buffer("weight", weight.clone())
        self.register_buffer("bias", torch.zeros(c, dtype=weight.dtype) if bias is None
                             else torch.as_tensor(bias, dtype=weight.dtype).clone())
        self.register_buffer("alpha", torch.as_tensor(alpha, dtype=weight.dtype).expand(c).clone())
        self.register_buffer("gain", torch.as_tensor(gain, dtype=weight.dtype).expand(c).clone())

    def forward(self, x: torch.Tensor, state: Optional[F.LIState] = None):
        return F.li_scan(self.current(x), state, alpha=self.alpha, backend="auto")

    def step(self, x_t: torch.Tensor, state: Optional[F.LIState] = None):
        z = self.current(x_t)
        state = F.LIState(torch.zeros_like(z)) if state is None else state
        return F.li_step(z, state, self.alpha)


class GraphState(NamedTuple):
    """Per-layer neuron states (list of LIFState) and the readout state (LIState or None)."""

    layers: List[Optional[F.LIFState]]
    readout: Optional[F.LIState]


class GraphSNN(nn.Module):
    """A folded SNN; same interface as :class:`~spikekws.models.snn.SNN`.

    forward(x: [B, T, F]) -> (log-probabilities [B, C] (LI readout: ``log mean_t
    softmax(v_t)``) or spike counts of the last layer, firing rates [L]).
    """

    spiking = True

    def __init__(self, layers: Sequence[GraphLayer], readout: Optional[GraphReadout],
                 dt: float = 0.01) -> None:
        super().__init__()
        if not layers and readout is None:
            raise ValueError("a graph needs at least one layer or a readout")
        self.layers = nn.ModuleList(layers)
        self.readout = readout
        self.dt = float(dt)
        first = layers[0] if layers else readout
        self.input_size = first.in_features  # type: ignore[union-attr]
        self.num_classes = readout.size if readout is not None else layers[-1].size
        self.use_readout_layer = readout is not None

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"expected input [batch, time, {self.input_size}], got {list(x.shape)}")
        return x.transpose(0, 1)

    def forward(self, x: torch.Tensor):
        h = self._check(x)
        rates = []
        for layer in self.layers:
            h, _ = layer(h)
            rates.append(h.mean())
        firing_rates = torch.stack(rates) if rates else x.new_zeros(0)
        if self.readout is not None:
            v, _ = self.readout(h)
            return torch.log(torch.softmax(v, dim=-1).mean(0) + 1e-12), firing_rates
        return h.sum(0), firing_rates

    @torch.no_grad()
    def trace(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """{"layer{i}": spikes [T, B, H], "readout": membrane [T, B, C]}."""
        h = self._check(x)
        out: Dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.layers):
            h, _ = layer(h)
            out[f"layer{i}"] = h
        if self.readout is not None:
            out["readout"], _ = self.readout(h)
        return out

    def step(self, x_t: torch.Tensor, state: Optional[GraphState] = None
             ) -> Tuple[torch.Tensor, GraphState]:
        """One frame. x_t: [B, F] -> (readout membrane [B, C] or last spikes, new state)."""
        states = list(state.layers) if state is not None else [None] * len(self.layers)
        h = x_t
        for i, layer in enumerate(self.layers):
            h, states[i] = layer.step(h, states[i])
        ro = None
        if self.readout is not None:
            h, ro = self.readout.step(h, None if state is None else state.readout)
        return h, GraphState(states, ro)


# --------------------------------------------------------------------------- folding
def fold_affine(linear: nn.Linear, norm: nn.Module) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weight [out, in] and bias [out] of ``norm(linear(x))`` (eval BatchNorm folded, in
    float64, detached); see :func:`spikekws.layers.linear.fold_norm`."""
    from ..layers.linear import fold_norm
    with torch.no_grad():
        return fold_norm(linear, norm, dtype=torch.float64)


def neuron_kind(neuron: nn.Module) -> str:
    """Registry name of a neuron module: lif, rlif, adlif, radlif or if."""
    from ..neurons.modules import IF, LIF, AdLIF
    if isinstance(neuron, AdLIF):
        return "radlif" if neuron.recurrent else "adlif"
    if isinstance(neuron, LIF):
        return "rlif" if neuron.recurrent else "lif"
    if isinstance(neuron, IF):
        return "if"
    return type(neuron).__name__.lower()


@torch.no_grad()
def fold_snn(model: nn.Module) -> GraphSNN:
    """:class:`GraphSNN` computing what ``model.eval()`` computes (BN folded).

    Raises ValueError for what no deployment graph here represents: adaptive neurons
    (adLIF, RadLIF), bidirectional layers, LayerNorm.
    """
    from ..models.snn import SNN
    if isinstance(model, GraphSNN):
        return model
    if not isinstance(model, SNN):
        raise TypeError(f"model must be a spikekws SNN (models/snn.py) or GraphSNN, got "
                        f"{type(model).__name__}")
    layers: List[GraphLayer] = []
    dt = 0.01
    for i, layer in enumerate(model.layers):
        kind = neuron_kind(layer.neuron)
        where = f"layers.{i} ({kind}, {layer.in_features}->{layer.hidden_size})"
        if kind in ADAPTIVE:
            raise ValueError(
                f"{where}: adaptive neurons ({kind}) have no NIR node (exporting them as plain LIF "
                "would change the model); "
                "train with model.neuron=lif or rlif to export")
        if kind not in ("lif", "rlif", "if"):
            raise ValueError(f"{where}: neuron type {kind!r} cannot be exported")
        if layer.bidirectional:
            raise ValueError(f"{where}: bidirectional layers need the whole sequence and cannot "
                             "be exported; train with model.bidirectional=false")
        try:
            w, b = fold_affine(layer.linear, layer.norm)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        nrn = layer.neuron
        if kind == "if":
            layers.append(GraphLayer(w, b, "if", None, nrn.v_threshold, name=f"layer{i}"))
            continue
        dt = nrn.dt
        rec = nrn._rec()
        layers.append(GraphLayer(w, b, "lif", nrn.alpha.detach(), nrn.v_threshold,
                                 None if rec is None else rec.detach(), name=f"layer{i}"))
    readout = None
    if model.readout is not None:
        try:
            w, b = fold_affine(model.readout.linear, model.readout.norm)
        except ValueError as e:
            raise ValueError(f"readout: {e}") from None
        dt = model.readout.li.dt
        readout = GraphReadout(w, b, model.readout.li.alpha.detach())
    return GraphSNN(layers, readout, dt=dt).eval()


__all__ = ["GraphLayer", "GraphReadout", "GraphSNN", "GraphState", "fold_snn", "fold_affine",
           "neuron_kind"]
