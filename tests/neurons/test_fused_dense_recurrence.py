"""Recurrent fused scans in the dense-spike regime, where the recurrence is one GEMM per
block of samples run on worker threads (regression: the GEMM saw a weight that requires
grad on a thread whose grad mode is on, and training stopped with a RuntimeError)."""
from __future__ import annotations

import pytest
import torch

from spikekws.models import build_model
from spikekws.neurons.functional.backends import cpp

needs_ext = pytest.mark.skipif(
    cpp.load() is None, reason=f"fused C++ kernels could not be built: {cpp.build_error()}")


@needs_ext
@pytest.mark.parametrize("neuron", ["rlif", "radlif"])
def test_dense_recurrent_training_step_matches_reference(neuron):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        grads, rates = {}, {}
        for backend in ("cpp", "torch"):
            torch.manual_seed(0)
            model = build_model("snn", 12, 5, neuron=neuron, hidden_sizes=[128], dropout=0.0,
                                normalization="none", threshold=0.05, backend=backend)
            x = torch.randn(64, 50, 12, generator=torch.Generator().manual_seed(1)) * 20 + 40
            out, r = model(x)
            out.sum().backward()
            rates[backend] = r.detach()
            grads[backend] = {n: p.grad.clone() for n, p in model.named_parameters()}
        assert rates["cpp"][0] > 0.2  # dense: the GEMM path of the recurrence ran
        torch.testing.assert_close(rates["cpp"], rates["torch"])
        for name, g in grads["torch"].items():
            torch.testing.assert_close(grads["cpp"][name], g, rtol=1e-4, atol=1e-5,
                                       msg=f"gradient of {name}")
    finally:
        torch.set_num_threads(threads)
