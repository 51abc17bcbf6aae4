"""Operation and energy accounting on hand-computable models."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from spikekws.models import build_model
from spikekws.models.spikescr import SpikeAttentionProduct
from spikekws.neurons.modules import IF, LIF
from spikekws.train.energy import ENERGY_PJ, energy_report, energy_table


class TinySNN(nn.Module):
    """fc1 (real features -> 3 IF neurons) -> fc2 (spikes -> 2 outputs)."""

    spiking = True

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2, 3, bias=False)
        self.neuron = IF(3, v_threshold=1.0, backend="torch")
        self.fc2 = nn.Linear(3, 2, bias=False)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
            self.fc2.weight.fill_(0.5)

    def forward(self, x):  # x: [B, T, 2]
        s, _ = self.neuron(self.fc1(x.transpose(0, 1)))
        return self.fc2(s).sum(0), s.mean().reshape(1)


def test_linear_macs_and_acs_by_hand():
    # Constant currents 1.0, 0.5, 0 into IF neurons (threshold 1) for T=4 steps:
    # neuron 0 fires every step (4 spikes), neuron 1 every second step (2), neuron 2 never.
    x = torch.tensor([[1.0, 0.5]]).repeat(4, 1).unsqueeze(0)  # [1, 4, 2]
    x = torch.cat([x, x])  # two identical samples: figures are per sample
    rep = energy_report(TinySNN(), x, batch_size=1)
    fc1, fc2 = rep["layers"]
    assert fc1["name"] == "fc1" and not fc1["spiking_input"]
    assert fc1["macs"] == 4 * 2 * 3 and fc1["acs"] == 0
    assert fc2["name"] == "fc2" and fc2["spiking_input"]
    assert fc2["macs"] == 0 and fc2["acs"] == 6 * 2  # 6 spikes x fan-out 2
    assert fc2["dense_ops"] == 4 * 3 * 2
    assert fc2["input_rate"] == pytest.approx(6 / 12)
    assert rep["neurons"] == [{"name": "neuron", "firing_rate": pytest.approx(0.5)}]
    tot = rep["total"]
    assert tot["energy_pj_fp32"] == pytest.approx(24 * 4.6 + 12 * 0.9)
    assert tot["energy_pj_int8"] == pytest.approx(24 * 0.23 + 12 * 0.03)
    assert tot["dense_energy_pj_fp32"] == pytest.approx((24 + 24) * 4.6)
    assert rep["num_samples"] == 2 and rep["timesteps"] == 4
    assert ENERGY_PJ == {"fp32": {"mac": 4.6, "ac": 0.9}, "int8": {"mac": 0.23, "ac": 0.03}}
    table = energy_table(rep)
    assert "| fc2 | Linear | spikes | 0.500 | 0 | 12 |" in table


def test_non_spiking_model_counts_macs_even_on_binary_inputs():
    model = TinySNN()
    model.spiking = False
    x = torch.tensor([[1.0, 0.5]]).repeat(4, 1).unsqueeze(0)
    rep = energy_report(model, x)
    assert [r["acs"] for r in rep["layers"]] == [0, 0]
    assert [r["macs"] for r in rep["layers"]] == [24, 24]


class ConvNet(nn.Module):
    spiking = True

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 3, padding=1, bias=False)

    def forward(self, x):  # [B, T, 1]
        return self.conv(x.transpose(1, 2)).sum(-1), x.new_zeros(0)


def test_conv_counts_exact_at_borders():
    x = torch.tensor([1.0, 0.0, 1.0, 1.0]).reshape(1, 4, 1)
    (row,) = energy_report(ConvNet(), x)["layers"]
    # inputs at positions 0, 2, 3 reach 2, 3 and 2 outputs; dense: 2 + 3 + 3 + 2 products
    assert row["acs"] == 7 and row["dense_ops"] == 10 and row["macs"] == 0


@pytest.mark.parametrize("causal,acs,dense,macs", [(False, 6, 8, 0), (True, 4, 8, 2)])
def test_attention_product_counts(causal, acs, dense, macs):
    class Att(nn.Module):
        spiking = True

        def __init__(self):
            super().__init__()
            self.product = SpikeAttentionProduct(causal)

        def forward(self, x):  # [1, 2, 3] -> q, k, v over T=2 steps with d=1
            q, k, v = (x[..., i].reshape(1, 1, 2, 1) for i in range(3))
            return self.product(q, k, v).reshape(1, 2), x.new_zeros(0)

    # q = [1, 0], k = [1, 1], v = [1, 1]
    x = torch.tensor([[[1.0, 1.0, 1.0], [0.0, 1.0, 1.0]]])
    (row,) = energy_report(Att(), x)["layers"]
    # non-causal: the q spike meets 2 keys, each of 2 v spikes reaches 2 queries: 2 + 4
    # causal: the q spike at t=0 meets 1 key; v at t=0 reaches 2 queries, v at t=1 one: 1 + 3;
    # dense: 3 visible pairs x 2 products + 2 MACs of the per-step scale 1/n_t
    assert (row["acs"], row["dense_ops"], row["macs"]) == (acs, dense, macs)


def test_recurrent_neuron_counts_spikes_times_fan_out():
    class Rec(nn.Module):
        spiking = True

        def __init__(self):
            super().__init__()
            self.neuron = LIF(4, recurrent=True, tau_mem=0.05, backend="torch")

        def forward(self, x):
            s, _ = self.neuron(x.transpose(0, 1))
            return s.sum(0), s.mean().reshape(1)

    torch.manual_seed(0)
    model = Rec()
    x = torch.rand(2, 6, 4) * 6
    with torch.no_grad():
        s, _ = model.neuron(x.transpose(0, 1))
    rep = energy_report(model, x)
    (row,) = rep["layers"]
    assert row["name"] == "neuron.recurrent"
    assert s[:-1].sum() > 0
    assert row["acs"] == pytest.approx(float(s[:-1].sum()) * 3 / 2)
    assert row["dense_ops"] == 5 * 4 * 3


def test_spikescr_layers_after_embedding_see_spikes():
    torch.manual_seed(0)
    model = build_model("spikescr", 6, 3, hidden_sizes=[8], heads=2)
    rep = energy_report(model, torch.randn(3, 10, 6) * 3)
    kinds = {r["name"]: r["spiking_input"] for r in rep["layers"]}
    assert kinds.pop("embed.conv") is False
    assert kinds and all(kinds.values()), kinds
    assert rep["layers"][0]["macs"] == 10 * 6 * 8 * 3 - 2 * 6 * 8  # kernel 3, two border taps


def test_bad_input():
    with pytest.raises(ValueError, match="X"):
        energy_report(TinySNN(), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="batch_size"):
        energy_report(TinySNN(), torch.zeros(1, 4, 2), batch_size=0)


@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_snn_in_eval_mode_counts_every_layer_on_every_backend(backend):
    """The fused path folds batch norm into the weights in eval mode; while the counter's
    hooks are on, every layer must still be seen: the first layer's MACs on the real-valued
    features are T * in * hidden per sample whatever the backend."""
    torch.manual_seed(0)
    model = build_model("snn", 6, 3, neuron="radlif", hidden_sizes=[64, 64], backend=backend)
    for m in model.modules():
        if hasattr(m, "backend"):
            m.backend = backend
    model.eval()
    x = torch.randn(2, 9, 6)
    rep = energy_report(model, x)
    rows = {r["name"]: r for r in rep["layers"]}
    assert rows["layers.0.linear"]["macs"] == 9 * 6 * 64
    assert rows["layers.1.linear"]["spiking_input"] and rows["readout.linear"]["spiking_input"]
    assert rep["total"]["macs"] == 9 * 6 * 64
