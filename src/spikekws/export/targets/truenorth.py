"""TrueNorth-like profile (IBM): 4096 cores of 256 axons x 256 neurons.

Fan-in <= 256 per neuron (one core's axons), 9-bit signed weights but only 4 distinct
values per neuron (one per axon type), linear (not exponential) leak, so only IF
neurons map exactly; outputs are spikes (no analog membrane readout).
"""
from .base import TARGETS, ChipProfile

PROFILE = TARGETS.register("truenorth", ChipProfile(
    name="truenorth",
    description="TrueNorth-like: 256 fan-in per core, 4 weight values per neuron, 9-bit "
                "weights, IF neurons, spiking outputs",
    weight_bits=9, weight_range=(-255, 255), max_fan_in=256, max_neurons=4096 * 256,
    threshold_bits=18, neurons=("if",), recurrence=True, li_readout=False, decay="shift",
    max_distinct_weights=4,
))
