"""Xylo Audio-like profile (SynSense): one small recurrent LIF network.

<= 16 input channels (the on-chip audio front-end's filter bank), <= 1000 hidden
neurons, <= 8 output neurons, int8 weights, bit-shift decay (``v -= v >> k``), 16-bit
signed thresholds (15 bits of magnitude), no non-leaky IF and no adaptive neurons.
"""
from .base import TARGETS, ChipProfile

PROFILE = TARGETS.register("xylo", ChipProfile(
    name="xylo",
    description="Xylo Audio-like: <=16 inputs, <=1000 hidden LIF neurons, <=8 outputs, int8 "
                "weights, bit-shift decay",
    weight_bits=8, weight_range=(-128, 127), max_neurons=1000, max_input_channels=16,
    max_outputs=8, threshold_bits=15, neurons=("lif", "rlif"), recurrence=True,
    li_readout=True, decay="shift",
))
