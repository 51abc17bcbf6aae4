"""A tiny keyword model trained in a few seconds on tone "words", saved as a run."""
from __future__ import annotations

from pathlib import Path
from typing import List, NamedTuple, Sequence, Tuple

import numpy as np
import pytest
import torch

from spikekws.config import config_to_dict, load_config
from spikekws.train.checkpoint import save_checkpoint
from spikekws.train.runner import build_frontend, build_network

SR = 16000
WORDS = ("low", "mid", "high")
FREQS = (400.0, 1200.0, 3000.0)
OVERRIDES = ["model.neuron=lif", "model.hidden_sizes=[24]", "model.dropout=0.0",
             "features.options.n_mels=16", "data.name=synth", "data.root=unused"]


def tone(word: str, seconds: float = 0.3, amp: float = 0.3) -> np.ndarray:
    """A "word": a tone with two harmonics and 20 ms ramps."""
    f = FREQS[WORDS.index(word)]
    t = np.arange(int(seconds * SR)) / SR
    x = np.sin(2 * np.pi * f * t) + 0.5 * np.sin(4 * np.pi * f * t)
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.02)
    return (amp / 1.5 * x * ramp).astype(np.float32)


def noise(n: int, seed: int, level: float = 1e-3) -> np.ndarray:
    return (np.random.default_rng(seed).normal(0.0, level, n)).astype(np.float32)


def clip(word: str, seed: int) -> np.ndarray:
    """A 1 s training clip: the word at a random offset in low noise."""
    x = noise(SR, seed)
    w = tone(word, seconds=0.25 + 0.1 * np.random.default_rng(seed).random())
    off = int(np.random.default_rng(seed + 1).integers(0, SR - w.size))
    x[off:off + w.size] += w
    return x


def sentence(words: Sequence[str], gap_s: float = 0.7, seed: int = 0
             ) -> Tuple[np.ndarray, List[Tuple[str, float, float]]]:
    """Words separated by noise -> (signal, [(word, start_s, end_s)])."""
    parts, truth, t = [noise(int(gap_s * SR), seed)], [], gap_s
    for i, w in enumerate(words):
        x = tone(w)
        parts += [x, noise(int(gap_s * SR), seed + i + 1)]
        truth.append((w, t, t + x.size / SR))
        t += x.size / SR + gap_s
    return np.concatenate(parts), truth


class ToneRun(NamedTuple):
    path: Path
    train_accuracy: float


def train_tone_run(run_dir: Path, steps: int = 40, seed: int = 0) -> ToneRun:
    """Train the tiny model on 3 x 10 tone clips and save it as a run directory."""
    torch.manual_seed(seed)
    cfg = load_config(None, OVERRIDES)
    frontend = build_frontend(cfg, SR)
    labels = [i for i in range(len(WORDS)) for _ in range(6)]
    waves = torch.from_numpy(np.stack([clip(WORDS[k], 100 * k + j) for j, k in enumerate(labels)]))
    X = frontend(waves)
    y = torch.tensor(labels)
    model = build_network(cfg, X.shape[-1], len(WORDS))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(steps):
        model.train()
        opt.zero_grad()
        out, _ = model(X)
        torch.nn.functional.nll_loss(out, y).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(X)[0].argmax(1) == y).float().mean())
    info = {"name": "synth", "labels": WORDS, "sample_rate": SR, "has_valid": True,
            "clip_seconds": 1.0, "kind": "audio", "num_channels": 0, "num_steps": 0}
    save_checkpoint(run_dir / "checkpoints" / "best.pt",
                    {"config": config_to_dict(cfg), "info": info, "in_features": X.shape[-1],
                     "model": model.state_dict(), "epoch": steps, "history": [], "best": {}})
    return ToneRun(run_dir, acc)


@pytest.fixture(scope="session")
def tone_run(tmp_path_factory) -> ToneRun:
    return train_tone_run(tmp_path_factory.mktemp("tone") / "run")
