"""ANN -> SNN conversion: BN folding, int8 quantisation, threshold calibration, IF simulation.

Typical use::

    from spikekws.convert import from_model, quantize, calibrate, build_snn, simulate
    net = from_model(model, x_cal)                     # BN and pooling divisors folded
    qnet = quantize(net, per_channel=True, calibration=x_cal)   # int8 weights and input
    thresholds = calibrate(qnet, x_cal, method="mse", timesteps=100)
    snn = build_snn(qnet, thresholds, shift=False)
    result = simulate(snn, x_test, timesteps=100)      # or simulate_integer(...)
    logits = result.outputs

:func:`convert_run` runs the whole table for a trained run (``spikekws convert RUN``).
"""
from __future__ import annotations

from .calibrate import (CALIBRATIONS, calibrate, clip_floor, collect_preactivations,
                        thresholds_from_samples)
from .network import (CONVERTERS, AffineLayer, ConvertedNet, fold_batchnorm, from_model,
                      to_sequential)
from .quantize import dequantize, input_scale_for, quantize, quantize_tensor
from .simulate import (SimulationResult, SpikingNet, build_snn, if_spike_counts, simulate,
                       simulate_integer)


def convert_run(*args, **kwargs):
    """See :func:`spikekws.convert.runner.convert_run` (imported lazily)."""
    from .runner import convert_run as _convert_run
    return _convert_run(*args, **kwargs)


__all__ = [
    "CALIBRATIONS", "CONVERTERS", "AffineLayer", "ConvertedNet", "SimulationResult", "SpikingNet",
    "build_snn", "calibrate", "clip_floor", "collect_preactivations", "convert_run", "dequantize",
    "fold_batchnorm", "from_model", "if_spike_counts", "input_scale_for", "quantize",
    "quantize_tensor", "simulate", "simulate_integer", "thresholds_from_samples", "to_sequential",
]
