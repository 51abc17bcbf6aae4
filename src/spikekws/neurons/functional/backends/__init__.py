"""Fused scan backends, picked through :data:`spikekws.neurons.functional.BACKENDS`.

``cpp``: CPU kernels from a C++ extension built on first use (:mod:`.cpp`). Modules
import nothing heavy here: the build happens at the first fused call.
"""
