"""Spiking layers: weighted input -> normalisation -> neuron scan, and readouts."""
from .linear import LIReadout, SpikingLinear, build_norm

__all__ = ["SpikingLinear", "LIReadout", "build_norm"]
