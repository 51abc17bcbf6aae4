"""Deployment: NIR export/import, ONNX export of ANN baselines, chip profiles
(:mod:`.targets`) and integer-only inference (:mod:`.integer`).

Heavy optional dependencies (``nir``, ``onnx``) are imported when used.
"""
from __future__ import annotations

from .graph import GraphLayer, GraphReadout, GraphSNN, GraphState, fold_snn

__all__ = ["GraphLayer", "GraphReadout", "GraphSNN", "GraphState", "fold_snn"]
