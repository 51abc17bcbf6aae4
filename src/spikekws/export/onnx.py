"""ONNX export of the ANN baselines (models/ann.py: mlp, cnn2d, rnn, gru, ligru).

The graph takes features ``x: [batch, time, features]`` (float32) and returns the model's first output ``[batch, classes]`` (log-probabilities or scores);
the firing-rate output of the training API is dropped. ``batch`` is always dynamic;
``time`` is dynamic for mlp, rnn and gru, but fixed to ``num_frames`` for ligru (its
Python time loop is unrolled by tracing) and cnn2d (its pooling pads to a multiple of the
pool size, computed from the traced shape). Uses ``torch.onnx.export`` with
the TorchScript-based exporter (no ``onnxscript`` needed); checking the file needs the
``onnx`` package and running it ``onnxruntime``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

log = logging.getLogger("spikekws")
PathLike = Union[str, Path]


class _FirstOutput(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out[0] if isinstance(out, (tuple, list)) else out


def time_is_dynamic(model: nn.Module) -> bool:
    """Whether the traced graph is valid for any number of frames (see module docstring)."""
    from ..models.ann import CNN2d, LiGRULayer
    return not isinstance(model, CNN2d) and not any(isinstance(m, LiGRULayer) for m in model.modules())


def export_onnx(model: nn.Module, path: PathLike, in_features: int, num_frames: int = 101,
                opset: int = 17) -> Path:
    """Write ``model`` (an ANN baseline, eval mode) to ``path``; returns the path."""
    if getattr(model, "spiking", False):
        raise ValueError(f"ONNX export is for the ANN baselines; {type(model).__name__} is "
                         "spiking: use --format nir")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    dummy = torch.zeros(1, int(num_frames), int(in_features))
    axes = {0: "batch", 1: "time"} if time_is_dynamic(model) else {0: "batch"}
    if 1 not in axes:
        log.warning("%s: the ONNX graph accepts exactly %d frames", type(model).__name__, num_frames)
    with torch.no_grad():
        torch.onnx.export(_FirstOutput(model).eval(), (dummy,), str(path), input_names=["features"],
                          output_names=["scores"], opset_version=opset, dynamo=False,
                          dynamic_axes={"features": axes,
                                        "scores": {0: "batch"}})
    log.info("wrote ONNX model to %s", path)
    return path


def export_run_onnx(run_dir: PathLike, out: Optional[PathLike] = None,
                    checkpoint: str = "best") -> Path:
    """Export a trained ANN run to ``out`` (default ``RUN/model.onnx``)."""
    from ..train.runner import load_run
    _, _, model, ckpt = load_run(run_dir, checkpoint)
    return export_onnx(model, Path(run_dir) / "model.onnx" if out is None else out,
                       int(ckpt["in_features"]))


__all__ = ["export_onnx", "export_run_onnx", "time_is_dynamic"]
