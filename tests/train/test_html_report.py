"""``spikekws report``: the HTML page references only existing, decodable images; activity
recording matches the model; energy tables appear when metrics.json has them."""
from __future__ import annotations

import base64
import io
import json
import os
from html.parser import HTMLParser
from pathlib import Path
from typing import List

import pytest
import torch
from PIL import Image

from spikekws.models import build_model
from spikekws.report.record import LayerActivity, neuron_modules, record_activity

from tinyrun import run_cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SECTIONS = ("Summary", "Training curves", "Confusion matrix", "Per-class F1", "Spike rasters",
            "Membrane potentials", "Firing-rate histograms", "Resolved config")


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: List[str] = []
        self.hrefs: List[str] = []
        self.ids: List[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.srcs.append(a.get("src") or "")
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if a.get("id"):
            self.ids.append(a["id"])


def parse(page: str) -> _Collect:
    c = _Collect()
    c.feed(page)
    return c


def decode_png(data: bytes) -> Image.Image:
    assert data.startswith(PNG_MAGIC)
    Image.open(io.BytesIO(data)).verify()
    img = Image.open(io.BytesIO(data))
    img.load()  # full decode
    assert img.width > 50 and img.height > 50
    return img


def test_report_references_only_existing_images_that_decode(tiny_run_copy, monkeypatch):
    run = tiny_run_copy
    replaced = []
    real_replace = os.replace

    def spy(src, dst, *a, **k):
        replaced.append(Path(dst).resolve())
        return real_replace(src, dst, *a, **k)

    metrics_path = run / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["test"].pop("energy", None)  # the section is tested below; here: drawn only if present
    metrics_path.write_text(json.dumps(metrics))
    monkeypatch.setattr(os, "replace", spy)
    res = run_cli(["-q", "report", run])
    assert res.rc == 0, res.err
    # every file of the report is written by an atomic rename, no temporary file is left
    written = [run / "report.html", *(run / "report").iterdir()]
    assert {p.resolve() for p in written} <= set(replaced)
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]
    assert res.out.startswith(f"wrote {run / 'report.html'} (6 figures in {run / 'report'}")
    page = (run / "report.html").read_text(encoding="utf-8")
    doc = parse(page)
    assert len(doc.srcs) == 6
    for src in doc.srcs:
        assert not src.startswith(("/", "http:", "https:", "file:", "data:")), src
        path = (run / src).resolve()
        assert path.is_file(), src
        assert run.resolve() in path.parents
        decode_png(path.read_bytes())
    # every figure written is shown, every internal link has its target
    assert sorted((run / s).resolve() for s in doc.srcs) == sorted(
        p.resolve() for p in (run / "report").iterdir())
    assert all(h.startswith("#") and h[1:] in doc.ids for h in doc.hrefs)
    for title in SECTIONS:
        assert f">{title}</h2>" in page, title
    assert "Energy and operations" not in page
    assert f"<td>accuracy</td><td>{metrics['test']['accuracy']:.4g}</td>" in page
    assert "neuron: adlif" in page  # the resolved config


def test_embedded_report_is_one_self_contained_file(tiny_run_copy):
    res = run_cli(["-q", "report", tiny_run_copy, "--embed", "--samples", "2"])
    assert res.rc == 0, res.err
    page = (tiny_run_copy / "report.html").read_text(encoding="utf-8")
    energy = json.loads((tiny_run_copy / "metrics.json").read_text())["test"].get("energy")
    if energy:  # written by ``spikekws evaluate``
        assert ">Energy and operations</h2>" in page
        for layer in energy["layers"]:
            assert f"<td>{layer['name']}</td>" in page
    srcs = parse(page).srcs
    assert len(srcs) == 6
    for src in srcs:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        decode_png(base64.b64decode(src[len(prefix):], validate=True))


def test_report_draws_energy_section_when_present(tiny_run_copy):
    path = tiny_run_copy / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["test"]["energy"] = {
        "num_samples": 3, "spiking": True, "source": "Horowitz, ISSCC 2014",
        "layers": [{"name": "layers.0.linear", "type": "Linear", "macs": 12345.0, "acs": 0.0,
                    "energy_pj_fp32": 56787.0},
                   {"name": "readout.linear", "type": "Linear", "macs": 0.0, "acs": 321.0,
                    "energy_pj_fp32": 288.9}],
        "total": {"macs": 12345.0, "acs": 321.0, "energy_pj_fp32": 57075.9},
    }
    path.write_text(json.dumps(metrics))
    res = run_cli(["-q", "report", tiny_run_copy])
    assert res.rc == 0, res.err
    page = (tiny_run_copy / "report.html").read_text(encoding="utf-8")
    assert ">Energy and operations</h2>" in page
    assert "<td>layers.0.linear</td><td>Linear</td><td>1.234e+04</td>" in page
    assert "<h3>total</h3>" in page and "<td>energy_pj_fp32</td><td>5.708e+04</td>" in page
    assert "<td>source</td><td>Horowitz, ISSCC 2014</td>" in page


def test_report_evaluates_the_split_when_metrics_lack_it(tiny_run_copy):
    (tiny_run_copy / "metrics.json").unlink()
    res = run_cli(["-q", "report", tiny_run_copy, "--split", "valid"])
    assert res.rc == 0, res.err
    metrics = json.loads((tiny_run_copy / "metrics.json").read_text())
    assert set(metrics) == {"valid"} and metrics["valid"]["num_samples"] == 3


@pytest.mark.parametrize("argv, needle", [
    (["report", "{tmp}/missing"], "run directory not found"),
    (["report", "{tmp}"], "is not a spikekws run directory (no config.yaml)"),
    (["report", "{run}", "--samples", "0"], "samples must be a positive integer"),
])
def test_report_user_errors_are_one_line(tiny_run_copy, tmp_path, argv, needle):
    argv = [a.format(tmp=tmp_path / "empty", run=tiny_run_copy) for a in argv]
    (tmp_path / "empty").mkdir()
    res = run_cli(["-q", *argv])
    assert res.rc == 2
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spikekws: error: ") and needle in lines[0], res.err


def test_report_rejects_metrics_without_confusion_matrix(tiny_run_copy):
    (tiny_run_copy / "metrics.json").write_text('{"test": {"accuracy": 0.5}}')
    res = run_cli(["-q", "report", tiny_run_copy])
    assert res.rc == 2
    assert "'test' entry has no confusion_matrix; run spikekws evaluate" in res.err


def test_report_rejects_malformed_history(tiny_run_copy):
    with open(tiny_run_copy / "history.jsonl", "a") as f:
        f.write('{"epoch": 4, "train_loss": \n')
    res = run_cli(["-q", "report", tiny_run_copy])
    assert res.rc == 2
    assert "history.jsonl:4 is not valid JSON" in res.err


# --------------------------------------------------------------------------- recording
def _spiking_model(bidirectional=False):
    torch.manual_seed(0)
    return build_model("snn", 6, 3, neuron="radlif", hidden_sizes=[8, 5], dropout=0.3,
                       normalization="none", bidirectional=bidirectional, threshold=0.05).eval()


def test_recorded_activity_matches_the_model():
    model = _spiking_model()
    x = torch.randn(4, 20, 6) * 3
    with torch.no_grad():
        out_before, rates = model(x)
    acts = record_activity(model, x)
    assert list(acts) == ["layers.0.neuron", "layers.1.neuron", "readout.li"]
    assert all(not m._forward_hooks for m in model.modules())
    with torch.no_grad():
        h = x.transpose(0, 1)
        for i, layer in enumerate(model.layers):
            s, _ = layer.spikes(h)
            a = acts[f"layers.{i}.neuron"]
            assert torch.equal(a.spikes, s)
            assert a.v.shape == s.shape == (20, 4, layer.hidden_size)
            # replayed membrane explains every spike: s_t = H(v_t - threshold)
            assert torch.equal((a.v >= a.v_threshold).float(), a.spikes)
            assert torch.allclose(a.spikes.mean(), rates[i])
            h = s
        v, _ = model.readout.membrane(h)
        assert torch.allclose(acts["readout.li"].v, v)
        assert acts["readout.li"].spikes is None
        assert torch.equal(model(x)[0], out_before)
    assert 0 < float(acts["layers.0.neuron"].spikes.mean()) < 1  # the check above is not vacuous
    assert acts["layers.0.neuron"].rates.shape == (4, 8)


def test_recording_keeps_the_forward_direction_of_bidirectional_layers():
    model = _spiking_model(bidirectional=True)
    x = torch.randn(2, 10, 6) * 3
    acts = record_activity(model, x)
    with torch.no_grad():
        s, _ = model.layers[0].spikes(x.transpose(0, 1))
    assert torch.equal(acts["layers.0.neuron"].spikes, s[..., :8])  # forward half


def test_non_spiking_models_record_nothing():
    model = build_model("mlp", 6, 3).eval()
    assert neuron_modules(model) == {}
    assert record_activity(model, torch.randn(2, 10, 6)) == {}


def test_activity_plots_decode(tmp_path):
    from spikekws.report.plots import plot_membranes, plot_rasters, plot_rate_histograms
    model = _spiking_model()
    x = torch.randn(3, 25, 6) * 3
    acts = list(record_activity(model, x).values())
    plot_rasters(x.numpy(), acts, ["a", "b", "c"], tmp_path / "r.png")
    plot_membranes(acts, ["a", "b", "c"], tmp_path / "m.png", true_class=[0, 1, 2])
    plot_rate_histograms(acts, tmp_path / "h.png", 3)
    for name in ("r.png", "m.png", "h.png"):
        decode_png((tmp_path / name).read_bytes())


def test_layer_activity_rates():
    s = torch.zeros(4, 2, 3)
    s[:2, 0, 1] = 1
    a = LayerActivity("x", s, torch.zeros_like(s), 1.0)
    assert a.rates.tolist() == [[0.0, 0.5, 0.0], [0.0, 0.0, 0.0]]


def test_membrane_plot_prefers_neurons_that_are_neither_silent_nor_saturated():
    import numpy as np
    from spikekws.report.plots import pick_neurons
    s = np.zeros((10, 5))
    s[:, 0] = 1  # saturated
    s[:3, 1] = 1
    s[:1, 3] = 1
    assert pick_neurons(s, 2) == [1, 3]
    assert pick_neurons(s, 5) == [1, 3, 2, 4, 0]
