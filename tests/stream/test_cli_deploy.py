"""``spikekws export``, ``check-hw`` and ``stream`` on small runs in a temp folder."""
from __future__ import annotations

import contextlib
import io
import logging

import pytest
import soundfile as sf
import torch

from spikekws.cli import main
from spikekws.config import config_to_dict, load_config
from spikekws.train.checkpoint import save_checkpoint
from spikekws.train.runner import build_network

from .conftest import SR, WORDS, sentence

_LOGGER = logging.getLogger("spikekws")


@pytest.fixture(autouse=True)
def _restore_logging():
    state = (list(_LOGGER.handlers), _LOGGER.level, _LOGGER.propagate)
    yield
    _LOGGER.handlers, _LOGGER.propagate = state[0], state[2]
    _LOGGER.setLevel(state[1])


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def user_error(res, *needles):
    rc, _, err = res
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("spikekws: error: "), res
    for n in needles:
        assert n in lines[0], (n, lines[0])


def fake_run(path, overrides, in_features=16, classes=3):
    """A run directory holding an untrained model (enough for export and checks)."""
    cfg = load_config(None, ["data.name=synth", "data.root=unused", *overrides])
    torch.manual_seed(0)
    model = build_network(cfg, in_features, classes).eval()
    labels = WORDS if classes == len(WORDS) else tuple(f"w{i}" for i in range(classes))
    info = {"name": "synth", "labels": labels, "sample_rate": SR, "has_valid": True,
            "clip_seconds": 1.0, "kind": "audio", "num_channels": 0, "num_steps": 0}
    save_checkpoint(path / "checkpoints" / "best.pt",
                    {"config": config_to_dict(cfg), "info": info, "in_features": in_features,
                     "model": model.state_dict(), "epoch": 0, "history": [], "best": {}})
    return path


def test_export_nir_and_reimport(tone_run, tmp_path):
    pytest.importorskip("nir")
    from spikekws.export.nir import read_nir
    from spikekws.train.runner import load_run
    rc, out, err = run("export", tone_run.path, "--format", "nir", "--out", tmp_path / "m.nir")
    assert rc == 0, err
    assert "m.nir" in out
    _, _, model, _ = load_run(tone_run.path)
    g = read_nir(tmp_path / "m.nir")
    x = torch.randn(2, 50, 16) * 2
    for k, v in model.trace(x).items():
        torch.testing.assert_close(g.trace(x)[k], v, rtol=1e-4, atol=1e-5)


def test_export_errors(tone_run, tmp_path):
    user_error(run("export", tone_run.path, "--format", "onnx"), "ANN", "nir")
    radlif = fake_run(tmp_path / "radlif", ["model.neuron=radlif", "model.hidden_sizes=[8]"])
    user_error(run("export", radlif, "--format", "nir"), "layers.0 (radlif", "lif or rlif")
    user_error(run("export", tmp_path / "missing", "--format", "nir"), "not found")


def test_export_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    mlp = fake_run(tmp_path / "mlp", ["model.name=mlp", "model.hidden_sizes=[8]"])
    rc, out, err = run("export", mlp, "--format", "onnx")
    assert rc == 0, err
    sess = ort.InferenceSession(str(mlp / "model.onnx"))
    assert sess.run(None, {"features": torch.randn(2, 30, 16).numpy()})[0].shape == (2, 3)


def test_check_hw(tone_run, tmp_path):
    rc, out, err = run("check-hw", tone_run.path, "--target", "xylo")
    assert rc == 0, (out, err)
    assert "fits the xylo profile" in out
    rc, out, err = run("check-hw", tone_run.path, "--target", "truenorth")
    assert rc == 1
    assert "layers.0: neuron type lif is not supported by truenorth" in out
    assert "readout: non-spiking LI readout (3 classes)" in out
    big = fake_run(tmp_path / "big", ["model.neuron=radlif", "model.hidden_sizes=[600,600]"],
                   in_features=40, classes=12)
    rc, out, err = run("check-hw", big, "--target", "xylo")
    assert rc == 1
    for needle in ("input: 40 input channels exceed the 16 of xylo",
                   "model: 1200 spiking neurons exceed the 1000 of xylo",
                   "readout: 12 output neurons exceed the 8 of xylo",
                   "layers.1: neuron type radlif is not supported by xylo"):
        assert needle in out, out
    user_error(run("check-hw", tone_run.path, "--target", "spinnaker"),
               "unknown target 'spinnaker'", "altai, loihi2, truenorth, xylo")


def test_stream_file(tone_run, tmp_path):
    signal, truth = sentence(["high", "low", "mid"], seed=11)
    wav = tmp_path / "s.wav"
    sf.write(str(wav), signal, SR, subtype="FLOAT")
    rc, out, err = run("stream", tone_run.path, wav)
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert [ln.split()[2] for ln in lines[:-1]] == ["high", "low", "mid"]
    assert lines[-1].startswith("latency per 10 ms frame: median") and "real-time factor" in lines[-1]
    user_error(run("stream", tone_run.path, tmp_path / "none.wav"), "none.wav")
    user_error(run("stream", tone_run.path), "FILE or --mic")
    sf.write(str(tmp_path / "8k.wav"), signal[:8000], 8000)
    user_error(run("stream", tone_run.path, tmp_path / "8k.wav"), "8000")
    user_error(run("stream", tone_run.path, wav, "--floor-quantile", "1.5"), "floor_quantile")
    rc, out, err = run("stream", tone_run.path, wav, "--floor-quantile", "0.1")
    assert rc == 0 and [ln.split()[2] for ln in out.strip().splitlines()[:-1]] == ["high", "low", "mid"]


def test_stream_mic_without_sounddevice(tone_run, monkeypatch):
    import builtins
    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "sounddevice":
            raise ImportError("no sounddevice")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    user_error(run("stream", tone_run.path, "--mic"), "pip install sounddevice")
