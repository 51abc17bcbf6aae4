"""Figures of the HTML report (matplotlib, Agg). Curves and confusion matrix live in
:mod:`spikekws.train.report`; this module adds per-class F1, rasters, membranes, histograms."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ..train.report import _plt, save_figure
from .record import LayerActivity


def plot_f1(f1: Sequence[float], labels: Sequence[str], path: Path, title: str) -> None:
    plt = _plt()
    n = len(labels)
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.22 * n + 1)))
    y = np.arange(n)
    vals = np.asarray(f1, dtype=float)
    ax.barh(y, vals, color=["#c0392b" if v < 0.5 else "#2e86c1" for v in vals])
    ax.set_yticks(y, labels, fontsize=7 if n > 20 else 9)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    ax.axvline(float(vals.mean()) if n else 0.0, color="gray", ls="--", lw=1, label="mean")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def _short(name: str) -> str:
    return name.replace(".neuron", "").replace("layers.", "layer ").replace(".li", "")


def plot_rasters(features: np.ndarray, acts: List[LayerActivity], titles: Sequence[str],
                 path: Path) -> None:
    """Rows: input features then one spike raster per spiking layer; columns: samples.

    features: [S, T, F]; each activity's spikes: [T, S', H] with S' >= S.
    """
    plt = _plt()
    layers = [a for a in acts if a.spikes is not None]
    s = features.shape[0]
    rows = 1 + len(layers)
    fig, axes = plt.subplots(rows, s, figsize=(3.4 * s, 1.9 * rows + 0.4), squeeze=False)
    for j in range(s):
        ax = axes[0][j]
        ax.imshow(features[j].T, aspect="auto", origin="lower", cmap="magma", interpolation="nearest")
        ax.set_title(titles[j], fontsize=9)
        if j == 0:
            ax.set_ylabel("input", fontsize=8)
        for i, a in enumerate(layers, start=1):
            ax = axes[i][j]
            spk = a.spikes[:, j].numpy()  # [T, H]
            ax.imshow(spk.T > 0, aspect="auto", origin="lower", cmap="Greys", vmin=0, vmax=1,
                      interpolation="nearest")
            if j == 0:
                ax.set_ylabel(f"{_short(a.name)}\nneuron", fontsize=8)
            ax.text(0.99, 0.98, f"{spk.mean():.3f}", transform=ax.transAxes, ha="right",
                    va="top", fontsize=7, color="#2e86c1",
                    bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0})
        axes[-1][j].set_xlabel("time step", fontsize=8)
    for ax in axes.flat:
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)
    plt.close(fig)


def pick_neurons(spikes: np.ndarray, k: int) -> List[int]:
    """Up to ``k`` representative neurons of ``spikes [T, H]``: the most active of those that
    fire on fewer than half the steps (saturated neurons would dwarf the others), then the
    silent ones whose membrane is shown anyway."""
    counts = spikes.sum(0)
    order = np.argsort(-counts, kind="stable")
    steps = spikes.shape[0]
    normal = [int(i) for i in order if 0 < counts[i] < steps / 2]
    silent = [int(i) for i in order if counts[i] == 0]
    saturated = [int(i) for i in order if counts[i] >= steps / 2]
    return (normal + silent + saturated)[:k]


def plot_membranes(acts: List[LayerActivity], titles: Sequence[str], path: Path,
                   true_class: Optional[Sequence[int]] = None, neurons: int = 4) -> None:
    """Rows: layers (and the readout); columns: samples. Spiking layers show the ``neurons``
    most active neurons of the sample with the threshold; the readout shows every class."""
    plt = _plt()
    acts = [a for a in acts if a.v.numel()]
    s = len(titles)
    fig, axes = plt.subplots(max(len(acts), 1), s, figsize=(3.4 * s, 1.9 * max(len(acts), 1) + 0.4),
                             squeeze=False)
    for i, a in enumerate(acts):
        for j in range(s):
            ax = axes[i][j]
            v = a.v[:, j].numpy()  # [T, H]
            if a.spikes is not None:
                for k in pick_neurons(a.spikes[:, j].numpy(), neurons):
                    ax.plot(v[:, k], lw=0.8)
                ax.axhline(a.v_threshold or 1.0, color="gray", ls="--", lw=0.8)
            else:
                ax.plot(v, lw=0.5, color="0.7")
                if true_class is not None and 0 <= true_class[j] < v.shape[1]:
                    ax.plot(v[:, true_class[j]], lw=1.2, color="#c0392b", label="true class")
                    ax.legend(fontsize=6, loc="upper left")
            if i == 0:
                ax.set_title(titles[j], fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{_short(a.name)}\nmembrane", fontsize=8)
            ax.tick_params(labelsize=7)
    for j in range(s):
        axes[-1][j].set_xlabel("time step", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)
    plt.close(fig)


def plot_rate_histograms(acts: List[LayerActivity], path: Path, num_samples: int) -> None:
    """Per spiking layer: histogram of per-neuron firing rates averaged over the samples."""
    plt = _plt()
    layers = [a for a in acts if a.spikes is not None]
    n = max(len(layers), 1)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.0), squeeze=False)
    for ax, a in zip(axes[0], layers):
        rates = a.rates.mean(0).numpy()  # [H]
        silent = int((rates == 0).sum())
        ax.hist(rates, bins=30, color="#2e86c1")
        ax.set_title(f"{_short(a.name)}: mean {rates.mean():.3f}, {silent}/{rates.size} silent",
                     fontsize=9)
        ax.set_xlabel("firing rate (spikes per step)", fontsize=8)
        ax.set_ylabel("neurons", fontsize=8)
        ax.tick_params(labelsize=7)
    if not layers:
        axes[0][0].text(0.5, 0.5, "no spiking layers", ha="center", va="center")
    fig.suptitle(f"per-neuron firing rates over {num_samples} samples", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)
    plt.close(fig)
