"""Plots and a Markdown report for a run (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Sequence

from ..atomic import atomic_write, atomic_write_text


def save_figure(fig: Any, path: Path, dpi: int = 110) -> None:
    """``fig.savefig`` to a temporary file next to ``path``, then an atomic rename."""
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    atomic_write(path, lambda f: fig.savefig(f, dpi=dpi, format=fmt), suffix=path.suffix)


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(cm: Sequence[Sequence[int]], labels: Sequence[str], path: Path, title: str) -> None:
    import numpy as np

    plt = _plt()
    m = np.asarray(cm, dtype=float)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    n = len(labels)
    size = max(4.0, 0.28 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=90, fontsize=7 if n > 20 else 9)
    ax.set_yticks(range(n), labels, fontsize=7 if n > 20 else 9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def plot_history(history: List[Dict[str, Any]], path: Path) -> None:
    plt = _plt()
    ep = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(ep, [h["train_loss"] for h in history], label="train")
    axes[0].plot(ep, [h["valid_loss"] for h in history], label="valid")
    axes[0].set_title("loss")
    axes[1].plot(ep, [h["train_acc"] for h in history], label="train")
    axes[1].plot(ep, [h["valid_acc"] for h in history], label="valid")
    axes[1].set_title("accuracy")
    n_layers = len(history[0]["firing_rates"]) if history else 0
    for i in range(n_layers):
        axes[2].plot(ep, [h["firing_rates"][i] for h in history], label=f"layer {i}")
    axes[2].set_title("firing rate (valid)")
    if n_layers == 0:
        axes[2].text(0.5, 0.5, "non-spiking model", ha="center", va="center",
                     transform=axes[2].transAxes, color="gray")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def write_report(run_dir: Path, split: str, report: Dict[str, Any], history: List[Dict[str, Any]]) -> Path:
    run_dir = Path(run_dir)
    labels = report.get("labels") or [str(i) for i in range(len(report["confusion_matrix"]))]
    cm_png = run_dir / f"confusion_{split}.png"
    plot_confusion(report["confusion_matrix"], labels, cm_png,
                   f"{report['dataset']} / {split}: accuracy {report['accuracy']:.2%}")
    lines = [f"# Run report: {run_dir.name}", "",
             f"Dataset `{report['dataset']}` ({report['root']}), split `{split}`, "
             f"checkpoint `{report['checkpoint']}` (epoch {report['epoch']}).", "",
             "| metric | value |", "|---|---|",
             f"| samples | {report['num_samples']} |",
             f"| accuracy | {report['accuracy']:.4f} |",
             f"| F1 micro | {report['f1_micro']:.4f} |",
             f"| F1 macro | {report['f1_macro']:.4f} |",
             f"| parameters | {report.get('num_params')} |"]
    for i, r in enumerate(report.get("firing_rates", [])):
        lines.append(f"| firing rate layer {i} | {r:.4f} |")
    lines += ["", f"![confusion matrix]({cm_png.name})", ""]
    energy = report.get("energy")
    if energy:
        from .energy import energy_table
        t = energy["total"]
        lines += ["## Operations and energy per sample", "",
                  f"{energy['timesteps']} time steps; fp32 {t['energy_pj_fp32'] / 1e3:.4g} nJ, int8 "
                  f"{t['energy_pj_int8'] / 1e3:.4g} nJ (all products as fp32 MACs: "
                  f"{t['dense_energy_pj_fp32'] / 1e3:.4g} nJ). {energy['source']}.", "",
                  energy_table(energy), ""]
    if history:
        curves = run_dir / "training_curves.png"
        plot_history(history, curves)
        lines += ["## Training", "", f"![training curves]({curves.name})", ""]
    f1 = report.get("f1_per_class", [])
    if f1:
        lines += ["## Per-class F1", "", "| class | F1 |", "|---|---|"]
        lines += [f"| {l} | {v:.3f} |" for l, v in zip(labels, f1)]
    path = run_dir / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
