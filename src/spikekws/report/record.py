"""Recording spikes and membrane potentials of a model without changing it.

Forward hooks on the neuron modules capture each layer's input current ``[T, B, H]`` and
emitted spikes; the membrane trace is then replayed step by step with the neuron's own
``step`` (the reference kernel), so models and fused scans need no recording mode.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
from torch import nn

from ..neurons.modules import LI, NEURONS

log = logging.getLogger("spikekws.report")


@dataclass
class LayerActivity:
    """Activity of one neuron population for a batch, time-first.

    name: module path (``layers.0.neuron``); spikes: [T, B, H] (None for a non-spiking
    readout); v: membrane potential [T, B, H]; v_threshold: firing threshold (None for LI).
    """

    name: str
    spikes: Optional[torch.Tensor]
    v: torch.Tensor
    v_threshold: Optional[float]

    @property
    def rates(self) -> Optional[torch.Tensor]:
        """Per-neuron firing rate per sample: [B, H] (spikes per step)."""
        return None if self.spikes is None else self.spikes.float().mean(0)


def _neuron_classes() -> tuple:
    return tuple(NEURONS.get(n) for n in NEURONS.list())


def neuron_modules(model: nn.Module) -> Dict[str, nn.Module]:
    """Spiking neuron modules and leaky-integrator readouts of ``model`` by module path."""
    spiking = _neuron_classes()
    found: Dict[str, nn.Module] = {}
    for name, m in model.named_modules():
        if isinstance(m, spiking) or isinstance(m, LI):
            found[name] = m
    return found


@torch.no_grad()
def _replay(module: nn.Module, current: torch.Tensor) -> torch.Tensor:
    """Membrane [T, B, H] from the neuron's ``step`` over the recorded input current."""
    state = None
    vs: List[torch.Tensor] = []
    for t in range(current.shape[0]):
        _, state = module.step(current[t], state)
        vs.append(state.v)
    return torch.stack(vs)


@torch.no_grad()
def record_activity(model: nn.Module, x: torch.Tensor, membrane: bool = True
                    ) -> Dict[str, LayerActivity]:
    """Run ``model(x)`` once in eval mode and return the activity of every neuron module.

    x: the model's input (``[B, T, F]`` for the built-in models). Bidirectional layers run
    the reversed sequence as extra batch entries; only the forward direction is kept.
    Returns {} for a model without neuron modules (the ANN baselines).
    """
    modules = neuron_modules(model)
    batch = x.shape[0]
    captured: Dict[str, tuple] = {}

    def hook(name):
        def _hook(module, inputs, output):
            current = inputs[0].detach()
            first = output[0] if isinstance(output, tuple) else output
            captured[name] = (current[:, :batch], first.detach()[:, :batch])
        return _hook

    handles = [m.register_forward_hook(hook(n)) for n, m in modules.items()]
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    out: Dict[str, LayerActivity] = {}
    for name, m in modules.items():
        if name not in captured:
            continue
        current, first = captured[name]
        if isinstance(m, LI):
            out[name] = LayerActivity(name, None, first.float().cpu(), None)
            continue
        v = torch.zeros(0)
        if membrane and hasattr(m, "step"):
            try:
                v = _replay(m, current).float().cpu()
            except (RuntimeError, ValueError, TypeError) as e:  # a layout step() cannot take
                log.debug("no membrane trace for %s: %s", name, e)
        out[name] = LayerActivity(name, first.float().cpu(), v, float(getattr(m, "v_threshold", 1.0)))
    return out
