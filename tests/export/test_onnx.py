"""ONNX export of the ANN baselines, checked with onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from spikekws.export.onnx import export_onnx, time_is_dynamic
from spikekws.models import build_model

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.mark.parametrize("name", ["mlp", "cnn2d", "rnn", "gru", "ligru"])
def test_onnxruntime_matches_torch(tmp_path, name):
    torch.manual_seed(0)
    model = build_model(name, 20, 4, hidden_sizes=[] if name == "cnn2d" else [16, 16]).eval()
    path = export_onnx(model, tmp_path / f"{name}.onnx", in_features=20, num_frames=12)
    sess = ort.InferenceSession(str(path))
    lengths = (12, 21) if time_is_dynamic(model) else (12,)
    for t in lengths:
        x = torch.randn(3, t, 20)
        got = sess.run(None, {"features": x.numpy()})[0]
        with torch.no_grad():
            want = model(x)[0].numpy()
        assert got.shape == (3, 4)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert time_is_dynamic(model) == (name in ("mlp", "rnn", "gru"))


def test_spiking_models_are_refused(tmp_path):
    m = build_model("snn", 8, 3, neuron="lif", hidden_sizes=[4]).eval()
    with pytest.raises(ValueError, match="nir"):
        export_onnx(m, tmp_path / "x.onnx", 8)
