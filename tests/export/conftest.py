"""Small SNNs with non-trivial BatchNorm statistics and busy neurons."""
from __future__ import annotations

import pytest
import torch

from spikekws.models import build_model


def busy_snn(neuron: str = "lif", hidden=(16, 12), in_features: int = 10, classes: int = 5,
             readout: bool = True, normalization: str = "batchnorm", seed: int = 0,
             dtype=torch.float64):
    """An eval-mode SNN whose layers fire often (BN gain 3) on ``torch.randn`` input."""
    torch.manual_seed(seed)
    m = build_model("snn", in_features, classes, neuron=neuron, hidden_sizes=list(hidden),
                    use_readout_layer=readout, normalization=normalization, bias=True)
    m.train()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                mod.momentum = 1.0  # running statistics := those of the batch below
                mod.weight.mul_(3.0)
                mod.bias.add_(1.0)
        m(torch.randn(16, 30, in_features) * 2 + 0.5)  # statistics away from (0, 1)
    return m.eval().to(dtype)


@pytest.fixture
def make_snn():
    return busy_snn
