"""Altai-like profile (Motiv): cores of 512 inputs, weights -255..255.

Fan-in <= 512 per neuron, 9-bit signed weights, LIF/IF neurons with bit-shift leak,
feed-forward layers (no recurrent matrix declared), spiking outputs.
"""
from .base import TARGETS, ChipProfile

PROFILE = TARGETS.register("altai", ChipProfile(
    name="altai",
    description="Altai-like: 512 inputs per core, weights -255..255, LIF/IF, feed-forward",
    weight_bits=9, weight_range=(-255, 255), max_fan_in=512, threshold_bits=16,
    neurons=("lif", "if"), recurrence=False, li_readout=False, decay="shift",
))
