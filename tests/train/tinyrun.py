"""Tiny generated dataset and trained runs shared by the training/report/reliability tests."""
from __future__ import annotations

import contextlib
import io
import logging
import shutil
from pathlib import Path
from typing import List, NamedTuple, Sequence

import pytest

from spikekws.cli import main

WORDS = ("no", "up", "yes")
SPEAKERS = ("aa11", "bb22", "cc33", "dd44", "ee55", "ff66")  # 4 train, 1 valid, 1 test

# About a second per epoch on one thread: 12 training clips of 0.25 s at 8 kHz.
TINY: List[str] = [
    "data.name=synth",
    "model.hidden_sizes=[16]",
    "model.neuron=adlif",
    "model.dropout=0.2",
    "train.epochs=3",
    "train.batch_size=5",  # 12 clips: two full batches and a ragged one
    "train.lr=0.01",
    "train.scheduler=cosine",
    "features.options.n_mels=16",
    "train.device=cpu",
    "train.threads=1",
    "train.progress=false",
]

_LOGGER = logging.getLogger("spikekws")


class Result(NamedTuple):
    rc: int
    out: str
    err: str


def run_cli(argv: Sequence[object]) -> Result:
    """``spikekws.cli.main(argv)`` in-process with stdout/stderr captured."""
    state = (list(_LOGGER.handlers), _LOGGER.level, _LOGGER.propagate)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([str(a) for a in argv])
    finally:
        _LOGGER.handlers, _LOGGER.level, _LOGGER.propagate = state[0], state[1], state[2]
    return Result(rc, out.getvalue(), err.getvalue())


def _write_tiny(root: Path) -> Path:
    import numpy as np
    import soundfile as sf

    sr, n = 8000, 2000
    rng = np.random.default_rng(0)
    t = np.arange(n) / sr
    valid, test = [], []
    for wi, word in enumerate(WORDS):
        for si, spk in enumerate(SPEAKERS):
            f0 = 300.0 + 400.0 * wi + 15.0 * si
            tone = 0.4 * np.sin(2 * np.pi * f0 * t) + 0.02 * rng.standard_normal(n)
            rel = f"{word}/{spk}_nohash_0.wav"
            (root / word).mkdir(parents=True, exist_ok=True)
            sf.write(str(root / rel), tone.astype(np.float32), sr, subtype="PCM_16")
            if spk == SPEAKERS[-2]:
                valid.append(rel)
            elif spk == SPEAKERS[-1]:
                test.append(rel)
    (root / "validation_list.txt").write_text("".join(r + "\n" for r in valid))
    (root / "testing_list.txt").write_text("".join(r + "\n" for r in test))
    (root / "manifest.json").write_text('{"sample_rate": 8000, "clip_seconds": 0.25}')
    return root


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """A synth-layout dataset (3 words x 6 speakers, 8 kHz, 0.25 s): 12/3/3 clips."""
    return _write_tiny(tmp_path_factory.mktemp("tiny-data") / "synth")


def tiny_args(root: Path, *extra: str) -> List[str]:
    return [f"data.root={root}", *TINY, *extra]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_root) -> Path:
    """A trained (3 epochs) and evaluated run on the tiny dataset; copy before changing it."""
    run = tmp_path_factory.mktemp("tiny-runs") / "run"
    res = run_cli(["-q", "train", "--out", run, *tiny_args(tiny_root)])
    assert res.rc == 0, res.err
    res = run_cli(["-q", "evaluate", run, "--device", "cpu", "--no-progress"])
    assert res.rc == 0, res.err
    return run


@pytest.fixture
def tiny_run_copy(tiny_run, tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(tiny_run, dst)
    return dst
