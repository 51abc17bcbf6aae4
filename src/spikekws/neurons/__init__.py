"""Spiking neurons: kernels (``functional``), modules and surrogate gradients."""
from .modules import IF, LI, LIF, NEURONS, RLIF, AdLIF, RadLIF, build_neuron
from .surrogate import SURROGATES, Surrogate, get_surrogate

__all__ = ["IF", "LI", "LIF", "RLIF", "AdLIF", "RadLIF", "NEURONS", "SURROGATES", "Surrogate",
           "build_neuron", "get_surrogate"]
