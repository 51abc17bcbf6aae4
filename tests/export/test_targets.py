"""Chip profiles: registry and violations naming the layer and the numbers."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from spikekws.export.graph import fold_snn
from spikekws.export.targets import get_target, list_targets
from spikekws.models import build_model


def test_registry():
    assert list_targets() == ["altai", "loihi2", "truenorth", "xylo"]
    with pytest.raises(KeyError, match=r"unknown target 'loihi'.*did you mean 'loihi2'"):
        get_target("loihi")


def test_fitting_model_has_no_violations(make_snn):
    m = make_snn("lif", hidden=(16, 12), in_features=10, classes=5, dtype=torch.float32)
    assert get_target("loihi2").check(m) == []
    assert get_target("xylo").check(m) == []
    assert get_target("xylo").check(fold_snn(m)) == []  # folded graphs too


def test_violations_name_layer_and_numbers():
    m = build_model("snn", 40, 35, neuron="rlif", hidden_sizes=[300, 256]).eval()
    tn = {(v.layer, v.rule): v.message for v in get_target("truenorth").check(m)}
    assert tn[("layers.0", "fan_in")] == \
        "fan-in 40 + 300 recurrent = 340 exceeds 256 synapses per neuron (rlif, 40->300)"
    assert "300 + 256 recurrent = 556" in tn[("layers.1", "fan_in")]
    assert ("layers.0", "distinct_weights") in tn and ("readout", "readout") in tn
    al = {(v.layer, v.rule) for v in get_target("altai").check(m)}
    assert {("layers.0", "recurrence"), ("layers.1", "recurrence"), ("layers.0", "neuron")} <= al
    assert ("layers.0", "fan_in") not in al  # 340 <= 512
    xy = {(v.layer, v.rule): v.message for v in get_target("xylo").check(m)}
    assert xy[("input", "input_channels")] == "40 input channels exceed the 16 of xylo"
    assert ("model", "neurons") not in xy  # 556 <= 1000
    assert xy[("readout", "outputs")] == "35 output neurons exceed the 8 of xylo"


def test_adaptive_neurons_suggest_lif():
    m = build_model("snn", 8, 3, neuron="adlif", hidden_sizes=[8]).eval()
    v = [v for v in get_target("xylo").check(m) if v.rule == "neuron"]
    assert len(v) == 1 and "adlif" in v[0].message and "use lif or rlif" in v[0].message
    assert [v for v in get_target("loihi2").check(m) if v.rule == "neuron"] == []


def test_integer_limits(make_snn):
    m = make_snn("lif", dtype=torch.float32)
    tight = dataclasses.replace(get_target("xylo"), threshold_bits=4, weight_range=(-100, 100))
    got = {(v.layer, v.rule): v.message for v in tight.check(m)}
    assert got[("layers.0", "weight_range")] == "weight codes reach ±127, beyond -100..100"
    assert got[("layers.0", "threshold")].startswith("integer threshold ")
    assert got[("layers.0", "threshold")].endswith("exceeds the 4-bit maximum 15")


def test_layernorm_is_reported_not_raised(make_snn):
    m = make_snn("lif", normalization="layernorm", dtype=torch.float32)
    v = [v for v in get_target("loihi2").check(m) if v.rule == "normalization"]
    assert v and "LayerNorm" in v[0].message
