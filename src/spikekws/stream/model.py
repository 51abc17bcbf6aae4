"""Stateful frame-by-frame wrapper around a trained SNN (neuron state persists)."""
from __future__ import annotations

from typing import List, NamedTuple, Optional

import torch
from torch import nn

from ..neurons import functional as F
from ..neurons.surrogate import get_surrogate


class _Folded(NamedTuple):
    """Per-layer constants for fast stepping (BatchNorm folded, decays precomputed)."""

    kind: str  # lif, adlif, if
    weight: torch.Tensor  # [in, H] (transposed for addmm)
    bias: torch.Tensor
    threshold: float
    alpha: Optional[torch.Tensor] = None
    beta: Optional[torch.Tensor] = None
    a: Optional[torch.Tensor] = None
    b: Optional[torch.Tensor] = None
    rec: Optional[torch.Tensor] = None


_STEP = get_surrogate("boxcar")  # forward only: the Heaviside step


class StreamingSNN:
    """``step(x_t: [B, F]) -> readout membrane [B, C]`` with the state kept between calls.

    Works for :class:`~spikekws.models.snn.SNN` (any unidirectional neuron type, adLIF and
    RadLIF included: nothing is exported) and :class:`~spikekws.export.graph.GraphSNN`.
    The per-frame membrane ``v_t`` is what the offline readout averages
    (``mean_t softmax(v_t)``), so ``softmax(v_t)`` is the frame posterior.

    With ``fold=True`` (default) an SNN's BatchNorms are folded into the weights and the
    decays, adaptation constants and zero-diagonal recurrent matrices computed once, so a
    step is a few small matrix products and the kernels' ``*_step`` functions; outputs
    then equal the module's up to float rounding. ``fold=False`` calls the modules.
    """

    def __init__(self, model: nn.Module, fold: bool = True) -> None:
        from ..export.graph import GraphSNN
        from ..models.snn import SNN
        if not isinstance(model, (SNN, GraphSNN)):
            raise TypeError(f"streaming needs a spiking SNN model, got {type(model).__name__}")
        if isinstance(model, SNN):
            if any(layer.bidirectional for layer in model.layers):
                raise ValueError("a bidirectional model needs the whole utterance; it cannot stream")
            if model.readout is None:
                raise ValueError("streaming needs an LI readout (use_readout_layer=true)")
        self.model = model.eval()
        self._folded: Optional[List[_Folded]] = None
        if fold and isinstance(model, SNN):
            self._folded = self._fold(model)
        self.reset()

    @staticmethod
    @torch.no_grad()
    def _fold(model: nn.Module) -> Optional[List[_Folded]]:
        from ..export.graph import fold_affine, neuron_kind
        out: List[_Folded] = []
        try:
            for layer in model.layers:
                w, b = fold_affine(layer.linear, layer.norm)
                n = layer.neuron
                kind = neuron_kind(n)
                if kind in ("lif", "rlif"):
                    out.append(_Folded("lif", w.t().contiguous(), b, n.v_threshold,
                                       alpha=n.alpha.detach(), rec=_rec(n)))
                elif kind in ("adlif", "radlif"):
                    a, bb = n._ab()
                    out.append(_Folded("adlif", w.t().contiguous(), b, n.v_threshold,
                                       alpha=n.alpha.detach(), beta=n.beta.detach(),
                                       a=a.detach(), b=bb.detach(), rec=_rec(n)))
                elif kind == "if":
                    out.append(_Folded("if", w.t().contiguous(), b, n.v_threshold))
                else:
                    return None
            w, b = fold_affine(model.readout.linear, model.readout.norm)
            out.append(_Folded("li", w.t().contiguous(), b, 0.0, alpha=model.readout.li.alpha.detach()))
        except ValueError:  # e.g. LayerNorm: step through the modules instead
            return None
        return out

    def reset(self) -> None:
        n = len(self.model.layers) + 1
        self._states: List[Optional[tuple]] = [None] * n
        self._graph_state = None

    @torch.no_grad()
    def step(self, x_t: torch.Tensor) -> torch.Tensor:
        from ..export.graph import GraphSNN
        if isinstance(self.model, GraphSNN):
            v, self._graph_state = self.model.step(x_t, self._graph_state)
            return v
        if self._folded is not None:
            return self._step_folded(x_t)
        h = x_t
        for i, layer in enumerate(self.model.layers):
            h, self._states[i] = layer.step(h, self._states[i])
        ro = self.model.readout
        z = ro.norm(ro.linear(h).unsqueeze(0)).squeeze(0)
        v, self._states[-1] = ro.li.step(z, self._states[-1])
        return v

    def _step_folded(self, x_t: torch.Tensor) -> torch.Tensor:
        h = x_t
        st = self._states
        for i, L in enumerate(self._folded):  # type: ignore[arg-type]
            z = torch.addmm(L.bias, h, L.weight)
            if L.kind == "lif":
                h, st[i] = F.lif_step(z, st[i] if st[i] is not None else F.lif_init(z), L.alpha,
                                      _STEP, L.threshold, L.rec)
            elif L.kind == "adlif":
                h, st[i] = F.adlif_step(z, st[i] if st[i] is not None else F.adlif_init(z), L.alpha,
                                        L.beta, L.a, L.b, _STEP, L.threshold, L.rec)
            elif L.kind == "if":
                h, st[i] = F.if_step(z, st[i] if st[i] is not None else F.lif_init(z), _STEP,
                                     L.threshold)
            else:
                h, st[i] = F.li_step(z, st[i] if st[i] is not None else F.LIState(torch.zeros_like(z)),
                                     L.alpha)
        return h

    @torch.no_grad()
    def run(self, frames: torch.Tensor) -> torch.Tensor:
        """frames: [T, F] -> membranes [T, C] (state carried on)."""
        return torch.stack([self.step(f.unsqueeze(0))[0] for f in frames]) if len(frames) else \
            torch.zeros(0, self.model.num_classes)


def _rec(neuron: nn.Module) -> Optional[torch.Tensor]:
    w = neuron._rec()
    return None if w is None else w.detach().clone()


__all__ = ["StreamingSNN"]
