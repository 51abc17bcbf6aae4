"""Loihi 2-like profile (Intel): programmable neurons, so adaptive LIF models fit.

8-bit signed weight codes (one scale per layer), 12-bit decay constants
(``v -= (v * d) >> 12``), 23-bit thresholds, up to ~1M neurons (128 cores x 8192),
fan-in bounded by synapse memory (no fixed per-neuron limit declared here).
"""
from .base import TARGETS, ChipProfile

PROFILE = TARGETS.register("loihi2", ChipProfile(
    name="loihi2",
    description="Loihi 2-like: 128 cores x 8192 neurons, 8-bit weights, 12-bit decay, "
                "programmable (adaptive) neurons",
    weight_bits=8, weight_range=(-128, 127), max_neurons=128 * 8192, threshold_bits=23,
    neurons=("lif", "rlif", "if", "adlif", "radlif"), recurrence=True, li_readout=True,
    decay="fixed12",
))
