"""The conversion table of a trained run (``spikekws convert RUN``).

Writes ``RUN/conversion.json``, ``RUN/conversion.md`` and ``RUN/conversion.png``: accuracy
and F1-micro on the test split of the float ANN, the int8 ANN (int8 weights and input)
and the converted SNN after each number of time steps, with thresholds calibrated on a
subset of the train split.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import torch

from ..config.schema import atomic_write_text
from ..train.metrics import classification_report
from ..train.report import save_figure
from .calibrate import CALIBRATIONS, collect_preactivations, thresholds_from_samples
from .network import CONVERTERS, ConvertedNet, from_model
from .quantize import quantize
from .simulate import build_snn, simulate, simulate_integer

log = logging.getLogger("spikekws.convert")

PathLike = Union[str, Path]


def parse_timesteps(spec: Union[str, Sequence[int]]) -> List[int]:
    """``"16,32,50"`` (or a list) -> [16, 32, 50]; positive integers only."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: List[int] = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"--timesteps must be comma-separated positive integers, got "
                             f"{text!r}") from None
        if value < 1:
            raise ValueError(f"--timesteps must be positive, got {value}")
        out.append(value)
    if not out:
        raise ValueError("--timesteps needs at least one number of time steps (e.g. 16,32,100)")
    return out


def _metrics(y: torch.Tensor, out: torch.Tensor, num_classes: int) -> Dict[str, float]:
    rep = classification_report(y, out.argmax(1), num_classes)
    return {"accuracy": float(rep["accuracy"]), "f1_micro": float(rep["f1_micro"]),
            "f1_macro": float(rep["f1_macro"])}


@torch.no_grad()
def _ann_outputs(net: ConvertedNet, X: torch.Tensor, device: torch.device,
                 batch_size: int) -> torch.Tensor:
    return torch.cat([net(X[i:i + batch_size].to(device)).float().cpu()
                      for i in range(0, len(X), batch_size)])


def evaluate_conversion(model: torch.nn.Module, model_name: str, Xcal: torch.Tensor,
                        X: torch.Tensor, y: torch.Tensor, num_classes: int,
                        timesteps: Sequence[int], calibration: str = "mse", shift: bool = False,
                        per_channel: bool = False, percentile: float = 99.9,
                        integer: bool = False, device: Union[str, torch.device] = "cpu",
                        batch_size: int = 128, progress: bool = False) -> Dict[str, Any]:
    """The conversion table of ``model`` on (X, y), thresholds calibrated on ``Xcal``."""
    from tqdm.auto import tqdm

    CALIBRATIONS.get(calibration)
    timesteps = parse_timesteps(timesteps)
    device = torch.device(device)
    if tuple(Xcal.shape[1:]) != tuple(X.shape[1:]):
        raise ValueError(f"calibration inputs {list(Xcal.shape[1:])} and evaluation inputs "
                         f"{list(X.shape[1:])} differ in shape; conversion needs fixed-length inputs")
    model = model.to(device).eval()
    rows: List[Dict[str, Any]] = []
    with torch.no_grad():
        out = torch.cat([model(X[i:i + batch_size].to(device))[0].float().cpu()
                         for i in range(0, len(X), batch_size)])
    rows.append({"model": "ANN float32", "timesteps": None, **_metrics(y, out, num_classes)})

    net = from_model(model, Xcal[:2].to(device), name=model_name)
    folded = _ann_outputs(net, X, device, batch_size)
    qnet = quantize(net, per_channel=per_channel, calibration=Xcal)
    out_q = _ann_outputs(qnet, X, device, batch_size)
    rows.append({"model": "ANN int8", "timesteps": None, **_metrics(y, out_q, num_classes)})

    t0 = time.time()
    samples = collect_preactivations(qnet, Xcal.to(device), batch_size=batch_size)
    fixed = None
    if calibration != "mse":
        fixed = thresholds_from_samples(qnet, samples, calibration, None, shift, percentile)
    sim = simulate_integer if integer else simulate
    for T in tqdm(timesteps, desc="timesteps", disable=None if progress else True, leave=False):
        thresholds = fixed if fixed is not None else thresholds_from_samples(
            qnet, samples, "mse", T, shift, percentile)
        snn = build_snn(qnet, thresholds, shift)
        outs, rate_sum = [], None
        for i in range(0, len(X), batch_size):
            res = sim(snn, X[i:i + batch_size], T)
            outs.append(res.outputs.cpu())
            r = res.firing_rates.double().cpu() * len(res.outputs)
            rate_sum = r if rate_sum is None else rate_sum + r
        out_s = torch.cat(outs)
        rates = (rate_sum / len(X)).tolist()
        agree = float((out_s.argmax(1) == out_q.argmax(1)).double().mean())
        rows.append({"model": "SNN", "timesteps": T, **_metrics(y, out_s, num_classes),
                     "agreement_with_int8_ann": agree,
                     "firing_rates": [round(float(v), 6) for v in rates],
                     "thresholds": [float(t) for t in thresholds]})
        log.info("T=%d  accuracy %.4f  F1 micro %.4f  agreement %.4f  rates %s", T,
                 rows[-1]["accuracy"], rows[-1]["f1_micro"], agree,
                 "/".join(f"{v:.3f}" for v in rates))
    return {
        "calibration": calibration, "shift": bool(shift), "per_channel": bool(per_channel),
        "percentile": percentile if calibration == "percentile" else None,
        "simulation": "integer" if integer else "float32",
        "num_samples": int(len(X)), "calibration_samples": int(len(Xcal)),
        "input_scale": qnet.input_scale,
        "fold_max_abs_error": float((folded - out).abs().max()) if len(X) else 0.0,
        "layers": net.describe(), "rows": rows, "time_s": time.time() - t0,
    }


def convert_run(run_dir: PathLike, timesteps: Union[str, Sequence[int]] = (16, 32, 50, 100, 200),
                calibration: str = "mse", shift: bool = False, per_channel: bool = False,
                percentile: float = 99.9, calibration_samples: int = 512,
                checkpoint: str = "best", device: str = "auto", batch_size: Optional[int] = None,
                integer: bool = False, seed: int = 0, progress: bool = False,
                write: bool = True) -> Dict[str, Any]:
    """Convert a trained run and evaluate the table on its test split (see the module doc)."""
    from ..train.runner import (build_data, build_frontend, build_info, extract_features,
                                load_run, resolve_device)

    run_dir = Path(run_dir)
    timesteps = parse_timesteps(timesteps)
    CALIBRATIONS.get(calibration)
    if int(calibration_samples) < 1:
        raise ValueError(f"--calibration-samples must be >= 1, got {calibration_samples}")
    cfg, info, model, ckpt = load_run(run_dir, checkpoint)
    if cfg.model.name not in CONVERTERS:
        raise ValueError(f"run {run_dir} holds a {cfg.model.name!r} model, which cannot be "
                         f"converted (convertible: {', '.join(CONVERTERS.list())})")
    dev = resolve_device(device)
    bs = int(batch_size or cfg.train.eval_batch_size)
    data_info = build_info(cfg)
    frontend = build_frontend(cfg, data_info.sample_rate, data_info.kind).to(dev)
    Xtr, _ = extract_features(build_data(cfg, "train"), frontend, dev, cfg.train.eval_batch_size,
                              progress, "features train")
    Xte, yte = extract_features(build_data(cfg, "test"), frontend, dev, cfg.train.eval_batch_size,
                                progress, "features test")
    order = torch.randperm(len(Xtr), generator=torch.Generator().manual_seed(seed))
    Xcal = Xtr[order[: int(calibration_samples)]]
    report = evaluate_conversion(model, cfg.model.name, Xcal, Xte, yte, len(info["labels"]),
                                 timesteps, calibration, shift, per_channel, percentile, integer,
                                 dev, bs, progress)
    report.update({"run": str(run_dir), "checkpoint": checkpoint, "epoch": ckpt.get("epoch"),
                   "model": cfg.model.name, "model_options": dict(cfg.model.options),
                   "dataset": cfg.data.name, "split": "test"})
    if write:
        write_conversion(run_dir, report)
    return report


def markdown_table(report: Dict[str, Any]) -> str:
    lines = ["| model | T | accuracy | F1 micro | firing rates |", "|---|---|---|---|---|"]
    for row in report["rows"]:
        t = "" if row["timesteps"] is None else str(row["timesteps"])
        rates = "/".join(f"{r:.3f}" for r in row.get("firing_rates", []))
        lines.append(f"| {row['model']} | {t} | {row['accuracy']:.4f} | {row['f1_micro']:.4f} | "
                     f"{rates} |")
    return "\n".join(lines)


def plot_conversion(report: Dict[str, Any], path: Path) -> None:
    from ..train.report import _plt

    plt = _plt()
    snn = [r for r in report["rows"] if r["model"] == "SNN"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["timesteps"] for r in snn], [r["accuracy"] for r in snn], "o-", label="SNN")
    styles = {"ANN float32": ("--", "gray"), "ANN int8": (":", "black")}
    for r in report["rows"]:
        if r["model"] in styles:
            style, color = styles[r["model"]]
            ax.axhline(r["accuracy"], linestyle=style, color=color, label=r["model"])
    ax.set_xscale("log")
    ts = [r["timesteps"] for r in snn]
    ax.set_xticks(ts, [str(t) for t in ts])
    ax.minorticks_off()
    ax.set_xlabel("time steps T")
    ax.set_ylabel("test accuracy")
    shift = " + shift" if report["shift"] else ""
    ax.set_title(f"ANN-to-SNN conversion ({report['calibration']}{shift})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def write_conversion(run_dir: PathLike, report: Dict[str, Any]) -> Dict[str, Path]:
    run_dir = Path(run_dir)
    paths = {"json": run_dir / "conversion.json", "md": run_dir / "conversion.md",
             "png": run_dir / "conversion.png"}
    atomic_write_text(paths["json"], json.dumps(report, indent=2))
    plot_conversion(report, paths["png"])
    opts = (f"calibration `{report['calibration']}`"
            + (f" (p={report['percentile']})" if report.get("percentile") else "")
            + f", shift {'on' if report['shift'] else 'off'}, int8 weights per "
            + ("channel" if report["per_channel"] else "tensor")
            + f", input step {report['input_scale']}, {report['simulation']} simulation")
    text = "\n".join([
        f"# ANN-to-SNN conversion: {run_dir.name}", "",
        f"Model `{report.get('model')}` (epoch {report.get('epoch')}), dataset "
        f"`{report.get('dataset')}`, split `{report.get('split', 'test')}` "
        f"({report['num_samples']} samples); thresholds from {report['calibration_samples']} "
        f"training samples; {opts}.", "",
        markdown_table(report), "",
        f"![accuracy vs time steps]({paths['png'].name})", ""])
    atomic_write_text(paths["md"], text)
    return paths


__all__ = ["convert_run", "evaluate_conversion", "parse_timesteps", "write_conversion",
           "markdown_table", "plot_conversion"]
