"""``spikekws report RUN``: one self-contained HTML page for a trained run.

Writes ``RUN/report.html`` and its figures in ``RUN/report/`` (or, with ``embed=True``,
the figures inside the page as data URIs): training curves from ``history.jsonl``,
confusion matrix and per-class F1 from ``metrics.json`` (the split is evaluated first when
it is missing), spike rasters and membrane traces of a few samples, per-neuron firing-rate
histograms, the energy/operations table when ``metrics.json`` has one, and the config.
"""
from __future__ import annotations

import base64
import html
import json
import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import yaml

from ..config.schema import atomic_write_text

log = logging.getLogger("spikekws.report")

PathLike = Union[str, Path]

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
img{max-width:100%;height:auto;border:1px solid #eee}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.85em}
.muted{color:#777;font-size:.9em}
nav a{margin-right:1em}
"""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None


def read_history(run_dir: Path) -> List[Dict[str, Any]]:
    """Rows of ``history.jsonl``; a malformed line raises ValueError naming it."""
    path = run_dir / "history.jsonl"
    if not path.is_file():
        return []
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError as e:
            raise ValueError(f"{path}:{i} is not valid JSON: {e}") from None
    return rows


def find_energy(metrics: Dict[str, Any], split: str) -> Optional[Dict[str, Any]]:
    """The "energy" section of metrics.json: per split (``metrics[split]["energy"]``) or at
    the top level (``metrics["energy"]``, possibly keyed by split)."""
    split_rep = metrics.get(split)
    if isinstance(split_rep, dict) and isinstance(split_rep.get("energy"), dict):
        return split_rep["energy"]
    top = metrics.get("energy")
    if isinstance(top, dict):
        if isinstance(top.get(split), dict):
            return top[split]
        return top
    return None


# ----------------------------------------------------------------------------- html bits
def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return _esc(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) for x in v):
        return ", ".join(_fmt(x) for x in v)
    if isinstance(v, (dict, list, tuple)):
        return _esc(json.dumps(v))
    return _esc(v)


def _kv_table(rows: Sequence[Tuple[str, Any]]) -> str:
    body = "".join(f"<tr><td>{_esc(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in rows)
    return f"<table><tr><th>metric</th><th>value</th></tr>{body}</table>"


def _records_table(records: Sequence[Dict[str, Any]]) -> str:
    cols: List[str] = []
    for r in records:
        cols += [k for k in r if k not in cols]
    head = "".join(f"<th>{_esc(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c, ''))}</td>" for c in cols) + "</tr>"
                   for r in records)
    return f"<table><tr>{head}</tr>{body}</table>"


def energy_html(energy: Dict[str, Any]) -> str:
    """Tables for an energy section: list-of-dict entries as tables, the rest as key/value."""
    parts, scalars = [], []
    for key, value in energy.items():
        if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            parts.append(f"<h3>{_esc(key)}</h3>{_records_table(value)}")
        elif isinstance(value, dict) and value and all(not isinstance(v, (dict, list))
                                                       for v in value.values()):
            parts.append(f"<h3>{_esc(key)}</h3>{_kv_table(list(value.items()))}")
        else:
            scalars.append((key, value))
    head = _kv_table(scalars) if scalars else ""
    return head + "".join(parts)


class _Figures:
    """Saves figures under ``folder`` and returns <img> tags (relative path or data URI)."""

    def __init__(self, run_dir: Path, folder: Path, embed: bool) -> None:
        self.run_dir, self.folder, self.embed = run_dir, folder, embed
        self.paths: List[Path] = []
        self.timings: Dict[str, float] = {}

    def add(self, name: str, draw, *args, **kwargs) -> str:
        path = self.folder / f"{name}.png"
        t0 = time.perf_counter()
        draw(*args, path=path, **kwargs)
        self.timings[name] = time.perf_counter() - t0
        self.paths.append(path)
        if self.embed:
            src = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
        else:
            src = path.relative_to(self.run_dir).as_posix()
        return f'<p><img src="{_esc(src)}" alt="{_esc(name)}"></p>'


# ----------------------------------------------------------------------------- activity
def _sample_activity(run_dir: Path, split: str, checkpoint: str, samples: int, hist_samples: int,
                     device: str, progress: bool):
    """Features of a few clips of ``split`` and the recorded activity of the model on them."""
    from torch.utils.data import Subset

    from ..train.runner import (build_data, build_frontend, build_info, extract_features,
                                load_run, resolve_device)
    from .record import record_activity

    cfg, info, model, _ = load_run(run_dir, checkpoint)
    dev = resolve_device(device)
    data = build_data(cfg, split)
    n = len(data)
    if n == 0:
        raise ValueError(f"the {split} split of {cfg.data.name} at {cfg.data.root} is empty")
    k = min(max(hist_samples, samples), n)
    # evenly spread clips (deterministic), so the few shown are not all one class
    idx = sorted({int(i) for i in torch.linspace(0, n - 1, k).round().long().tolist()})
    data_info = build_info(cfg)
    frontend = build_frontend(cfg, data_info.sample_rate, data_info.kind).to(dev)
    X, y = extract_features(Subset(data, idx), frontend, dev, cfg.train.eval_batch_size,
                            progress, f"features {split} (report)")
    model.to(dev)
    acts = record_activity(model, X[:samples].to(dev), membrane=True)
    hist_acts = acts
    if len(X) > samples:
        hist_acts = record_activity(model, X.to(dev), membrane=False)
    with torch.no_grad():
        model.eval()
        out, _ = model(X[:samples].to(dev))
    preds = out.argmax(1).cpu().tolist()
    labels = list(info["labels"])
    titles = [f"#{idx[j]}: {labels[int(y[j])]} \u2192 {labels[preds[j]]}" for j in range(min(samples, len(X)))]
    return X[:samples].numpy(), y[:samples].tolist(), acts, hist_acts, len(X), titles


# ----------------------------------------------------------------------------- page
def write_html_report(run_dir: PathLike, split: str = "test", checkpoint: str = "best",
                      samples: int = 3, hist_samples: int = 64, embed: bool = False,
                      device: str = "cpu", progress: bool = False) -> Dict[str, Any]:
    """Write ``RUN/report.html``; returns {"path", "figures", "timings", "seconds"}.

    Evaluates ``split`` first (writing metrics.json and report.md) when metrics.json has
    no entry for it. ``samples`` clips get rasters and membrane traces; ``hist_samples``
    clips feed the firing-rate histograms.
    """
    from ..train.report import plot_confusion, plot_history

    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    if not (run_dir / "config.yaml").is_file():
        raise ValueError(f"{run_dir} is not a spikekws run directory (no config.yaml)")
    for name, value in (("samples", samples), ("hist_samples", hist_samples)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    metrics_path = run_dir / "metrics.json"
    metrics = _read_json(metrics_path) if metrics_path.is_file() else {}
    if not isinstance(metrics, dict):
        raise ValueError(f"{metrics_path} must hold a JSON object")
    if split not in metrics:
        from ..train.runner import evaluate_run
        log.info("metrics.json has no %r entry: evaluating the %s split first", split, split)
        evaluate_run(run_dir, split=split, checkpoint=checkpoint, device=device, progress=progress)
        metrics = _read_json(metrics_path)
    rep = metrics[split]
    if not isinstance(rep, dict) or not isinstance(rep.get("confusion_matrix"), list):
        raise ValueError(f"{metrics_path}: the {split!r} entry has no confusion_matrix; "
                         f"run spikekws evaluate {run_dir} --split {split} again")
    history = read_history(run_dir)
    config_text = (run_dir / "config.yaml").read_text(encoding="utf-8")
    cfg = yaml.safe_load(config_text) or {}

    figs = _Figures(run_dir, run_dir / "report", embed)
    labels = rep.get("labels") or [str(i) for i in range(len(rep["confusion_matrix"]))]
    sections: List[Tuple[str, str, str]] = []  # (anchor, title, body)

    model_cfg = cfg.get("model", {}) if isinstance(cfg, dict) else {}
    rates = rep.get("firing_rates") or []
    summary = [("dataset", f"{rep.get('dataset')} ({rep.get('root')})"), ("split", split),
               ("checkpoint", f"{rep.get('checkpoint')} (epoch {rep.get('epoch')})"),
               ("model", f"{model_cfg.get('name')} / {model_cfg.get('neuron')} "
                         f"{model_cfg.get('hidden_sizes')}"),
               ("parameters", rep.get("num_params")), ("samples", rep.get("num_samples")),
               ("accuracy", rep.get("accuracy")), ("F1 micro", rep.get("f1_micro")),
               ("F1 macro", rep.get("f1_macro"))]
    summary += [(f"firing rate layer {i}", r) for i, r in enumerate(rates)]
    if history:
        best = max(history, key=lambda h: h.get("valid_acc", float("-inf")))
        summary.append(("best valid accuracy", f"{best.get('valid_acc', float('nan')):.4f} "
                                               f"(epoch {best.get('epoch')})"))
    sections.append(("summary", "Summary", _kv_table(summary)))

    if history:
        body = figs.add("training_curves", lambda path: plot_history(history, path))
        sections.append(("training", "Training curves", body +
                         '<p class="muted">Firing rates: mean spikes per neuron and step on the '
                         'validation split, per spiking layer.</p>'))
    cm_title = f"{rep.get('dataset')} / {split}: accuracy {rep.get('accuracy', 0):.2%}"
    body = figs.add("confusion", lambda path: plot_confusion(rep["confusion_matrix"], labels,
                                                             path, cm_title))
    sections.append(("confusion", "Confusion matrix", body))
    if rep.get("f1_per_class"):
        from .plots import plot_f1
        body = figs.add("f1_per_class", lambda path: plot_f1(rep["f1_per_class"], labels, path,
                                                            f"per-class F1 ({split})"))
        sections.append(("f1", "Per-class F1", body))

    feats, ys, acts, hist_acts, n_hist, titles = _sample_activity(
        run_dir, split, checkpoint, samples, hist_samples, device, progress)
    if any(a.spikes is not None for a in acts.values()):
        from .plots import plot_membranes, plot_rasters, plot_rate_histograms
        act_list, hist_list = list(acts.values()), list(hist_acts.values())
        body = figs.add("spike_raster", lambda path: plot_rasters(feats, act_list, titles, path))
        sections.append(("raster", "Spike rasters", body + '<p class="muted">Titles: clip index: '
                         'true \u2192 predicted class. Number: the layer\'s mean firing rate.</p>'))
        body = figs.add("membrane", lambda path: plot_membranes(act_list, titles, path, ys))
        sections.append(("membrane", "Membrane potentials", body + '<p class="muted">Spiking '
                         'layers: the most active neurons of each clip, dashed: threshold. '
                         'Readout: every class, red: the true class.</p>'))
        body = figs.add("firing_rates", lambda path: plot_rate_histograms(hist_list, path, n_hist))
        sections.append(("rates", "Firing-rate histograms", body))
    else:
        sections.append(("raster", "Spiking activity",
                         "<p>This model has no spiking layers (ANN baseline).</p>"))

    energy = find_energy(metrics, split)
    if energy:
        sections.append(("energy", "Energy and operations", energy_html(energy)))
    sections.append(("config", "Resolved config", f"<pre>{_esc(config_text)}</pre>"))

    nav = "".join(f'<a href="#{a}">{_esc(t)}</a>' for a, t, _ in sections)
    body = "".join(f'<h2 id="{a}">{_esc(t)}</h2>\n{b}\n' for a, t, b in sections)
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>spikekws report: {_esc(run_dir.name)}</title><style>{CSS}</style></head>"
            f"<body><h1>Run report: {_esc(run_dir.name)}</h1><nav>{nav}</nav>\n{body}"
            f'<p class="muted">Generated by spikekws report.</p></body></html>\n')
    path = run_dir / "report.html"
    atomic_write_text(path, page)
    seconds = time.perf_counter() - t_start
    log.debug("wrote %s (%d figures, %.1fs)", path, len(figs.paths), seconds)
    return {"path": str(path), "figures": [str(p) for p in figs.paths], "timings": figs.timings,
            "seconds": seconds}
