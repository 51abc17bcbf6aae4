"""Smoke tests of the ``spikekws`` commands on a tiny synthetic dataset in a temp folder:
synth -> train -> evaluate, bit-identical resume, the one-line user errors, and ``list``."""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, List, NamedTuple, Sequence

import numpy as np
import pytest
import soundfile as sf
import torch

import spikekws.train.runner as runner
from spikekws.cli import main
from spikekws.train.checkpoint import load_checkpoint

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

WORDS = ("no", "up", "yes")
SPEAKERS = 4  # 2 train, 1 valid, 1 test
PER_SPEAKER = 2

# A network small enough to train in about a second on one CPU thread.
TINY: List[str] = [
    "model.hidden_sizes=[16]",
    "model.neuron=lif",
    "train.epochs=2",
    "train.batch_size=8",  # 12 training clips: one full and one ragged batch
    "features.options.n_mels=16",
    "train.device=cpu",
]

_LOGGER = logging.getLogger("spikekws")
_LOG_STATE = (list(_LOGGER.handlers), _LOGGER.level, _LOGGER.propagate)


def reset_logging() -> None:
    """Undo the handler ``main`` installs (it holds the stream that was sys.stderr then)."""
    handlers, level, propagate = _LOG_STATE
    _LOGGER.handlers = list(handlers)
    _LOGGER.setLevel(level)
    _LOGGER.propagate = propagate


@pytest.fixture(autouse=True)
def _restore_spikekws_logging():
    yield
    reset_logging()


class Result(NamedTuple):
    rc: int
    out: str
    err: str


def run_captured(argv: Sequence[str]) -> Result:
    """``main(argv)`` with stdout/stderr captured (usable in session fixtures)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    reset_logging()
    return Result(rc, out.getvalue(), err.getvalue())


@pytest.fixture
def cli(capsys) -> Callable[..., Result]:
    """``cli(*argv)`` runs ``spikekws.cli.main`` in-process -> Result(rc, out, err)."""

    def _run(*argv) -> Result:
        capsys.readouterr()
        rc = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return Result(rc, captured.out, captured.err)

    return _run


class Made(NamedTuple):
    path: Path
    result: Result


@pytest.fixture(scope="module")
def synth_made(tmp_path_factory) -> Made:
    """``spikekws synth`` on a 3-word vocabulary and 4 speakers (24 clips), run once."""
    root = tmp_path_factory.mktemp("cli-data") / "synth"
    res = run_captured(["synth", "--out", root, "--speakers", SPEAKERS, "--per-speaker", PER_SPEAKER,
                        "--words", ",".join(WORDS), "--workers", "2", "--no-progress"])
    assert res.rc == 0, res.err
    return Made(root, res)


@pytest.fixture(scope="module")
def synth_root(synth_made) -> Path:
    """The session's tiny synthetic dataset; copy it before changing anything in it."""
    return synth_made.path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synth_root) -> Made:
    """``spikekws train`` (2 epochs, tiny LIF network) on the tiny dataset, run once."""
    run = tmp_path_factory.mktemp("cli-runs") / "run"
    res = run_captured(["train", "--out", run, "--no-progress", f"data.root={synth_root}", *TINY])
    assert res.rc == 0, res.err
    return Made(run, res)


@pytest.fixture(scope="module")
def trained_run(trained) -> Path:
    """The session's trained run directory; copy it before changing anything in it."""
    return trained.path


@pytest.fixture
def run_copy(trained_run, tmp_path) -> Path:
    """A private copy of the session's trained run."""
    dst = tmp_path / "run"
    shutil.copytree(trained_run, dst)
    return dst


@pytest.fixture
def data_copy(synth_root, tmp_path) -> Path:
    """A private copy of the session's tiny dataset."""
    dst = tmp_path / "data"
    shutil.copytree(synth_root, dst)
    return dst


def assert_user_error(res, *needles: str) -> str:
    """Status 2 and exactly one stderr line ``spikekws: error: ...`` containing ``needles``."""
    lines = res.err.splitlines()
    assert res.rc == 2, res
    assert len(lines) == 1, res.err
    assert lines[0].startswith("spikekws: error: "), res.err
    assert "Traceback" not in res.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def read_lines(path: Path) -> List[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def a_train_clip(root: Path) -> Path:
    """A clip of the training split (listed in neither split list)."""
    held_out = set(read_lines(root / "validation_list.txt")) | set(read_lines(root / "testing_list.txt"))
    clips = sorted(p.relative_to(root).as_posix() for p in root.glob("*/*.wav"))
    return root / next(c for c in clips if c not in held_out)


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Recursive equality; tensors must be bit-identical."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), f"tensor {where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"keys of {where}: {set(a) ^ set(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def history_without_time(run: Path) -> List[dict]:
    rows = [json.loads(line) for line in read_lines(run / "history.jsonl")]
    for row in rows:
        assert row.pop("time_s") >= 0
    return rows


# --------------------------------------------------------------------------- synth
def test_synth_writes_tiny_vocabulary(synth_made):
    root, res = synth_made
    assert "synthetic dataset ready" in res.out
    assert sorted(json.loads((root / "labels.json").read_text())) == sorted(WORDS)
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(WORDS)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["files"] == len(WORDS) * SPEAKERS * PER_SPEAKER
    assert manifest["splits"] == {"train": 12, "valid": 6, "test": 6}
    assert len(list(root.glob("*/*.wav"))) == manifest["files"]


def test_synth_again_is_cached_and_other_words_are_refused(cli, synth_root):
    res = cli("synth", "--out", synth_root, "--speakers", SPEAKERS, "--per-speaker", PER_SPEAKER,
              "--words", ",".join(reversed(WORDS)), "--no-progress")
    assert res.rc == 0, res.err
    assert "synthetic dataset ready" in res.out
    res = cli("-q", "synth", "--out", synth_root, "--speakers", SPEAKERS, "--per-speaker", PER_SPEAKER,
              "--words", "yes,no", "--no-progress")
    assert_user_error(res, "different arguments", "words")


@pytest.mark.parametrize("words, needle", [("Yes!", "'Yes!'"), (",,", "--words")])
def test_synth_bad_words(cli, tmp_path, words, needle):
    res = cli("-q", "synth", "--out", tmp_path / "d", "--speakers", 3, "--words", words, "--no-progress")
    assert_user_error(res, needle)
    assert not (tmp_path / "d" / "manifest.json").exists()


# --------------------------------------------------------------------------- train + evaluate
def test_train_writes_run_directory(trained):
    run, res = trained
    assert res.rc == 0
    assert f"trained {run}: best valid accuracy" in res.out
    for name in ("config.yaml", "checkpoints/last.pt", "checkpoints/best.pt", "history.jsonl"):
        assert (run / name).is_file(), name
    rows = [json.loads(line) for line in read_lines(run / "history.jsonl")]
    assert [r["epoch"] for r in rows] == [1, 2]
    for r in rows:
        assert 0.0 <= r["train_acc"] <= 1.0 and 0.0 <= r["valid_acc"] <= 1.0
        assert np.isfinite(r["train_loss"]) and np.isfinite(r["valid_loss"])
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert last["epoch"] == 2
    assert last["config"]["model"]["hidden_sizes"] == [16]
    assert last["config"]["train"]["epochs"] == 2


def test_evaluate_writes_consistent_metrics_and_report(cli, run_copy):
    res = cli("evaluate", run_copy, "--device", "cpu", "--no-progress")
    assert res.rc == 0, res.err
    assert "synth/test: accuracy" in res.out
    metrics = json.loads((run_copy / "metrics.json").read_text())
    test = metrics["test"]
    cm = np.asarray(test["confusion_matrix"])
    assert cm.shape == (len(WORDS), len(WORDS))
    assert test["labels"] == sorted(WORDS)
    n_test = len(read_lines(Path(test["root"]) / "testing_list.txt"))
    assert cm.sum() == test["num_samples"] == n_test == 6
    assert 0.0 <= test["accuracy"] <= 1.0
    assert test["accuracy"] == pytest.approx(np.trace(cm) / cm.sum(), abs=1e-12)
    assert f"accuracy {test['accuracy']:.4f}" in res.out
    png = run_copy / "confusion_test.png"
    assert png.is_file() and png.read_bytes()[:8] == PNG_MAGIC
    report = run_copy / "report.md"
    assert report.is_file() and "confusion_test.png" in report.read_text()

    # Evaluating again gives the same numbers; another split is added next to "test".
    res = cli("evaluate", run_copy, "--device", "cpu", "--no-progress", "--split", "valid")
    assert res.rc == 0, res.err
    res = cli("evaluate", run_copy, "--device", "cpu", "--no-progress")
    assert res.rc == 0, res.err
    again = json.loads((run_copy / "metrics.json").read_text())
    assert set(again) == {"test", "valid"}
    assert again["test"] == test
    assert again["valid"]["num_samples"] == 6


def test_resume_is_bit_identical_to_uninterrupted_run(cli, tmp_path, synth_root, monkeypatch):
    # Dropout, batch norm, adaptation and a per-epoch learning rate: state a resume must restore.
    args = ["--no-progress", f"data.root={synth_root}", *TINY, "model.neuron=adlif",
            "train.epochs=3", "train.lr=0.01", "train.scheduler=cosine", "model.dropout=0.2"]
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    res = cli("train", "--out", run_a, *args)
    assert res.rc == 0, res.err

    real_save = runner.save_checkpoint
    after_epoch2 = {}

    def save_then_stop(path, payload):
        real_save(path, payload)
        if Path(path).name == "last.pt" and payload["epoch"] == 2:
            after_epoch2.update({k: v.clone() for k, v in payload["model"].items()})
            raise KeyboardInterrupt

    monkeypatch.setattr(runner, "save_checkpoint", save_then_stop)
    res = cli("train", "--out", run_b, *args)
    assert res.rc == 130
    assert "interrupted" in res.err
    monkeypatch.setattr(runner, "save_checkpoint", real_save)
    assert load_checkpoint(run_b / "checkpoints" / "last.pt")["epoch"] == 2

    res = cli("train", "--out", run_b, "--resume", "--no-progress")
    assert res.rc == 0, res.err
    assert f"trained {run_b}" in res.out

    last_a = load_checkpoint(run_a / "checkpoints" / "last.pt")
    last_b = load_checkpoint(run_b / "checkpoints" / "last.pt")
    assert last_a["epoch"] == last_b["epoch"] == 3
    for key in last_a["model"]:
        assert torch.equal(last_a["model"][key], last_b["model"][key]), key
    hist_a, hist_b = last_a.pop("history"), last_b.pop("history")
    assert_same(last_a, last_b, "last.pt")  # weights, optimizer, scheduler, best, config
    for row_a, row_b in zip(hist_a, hist_b):
        row_a.pop("time_s"), row_b.pop("time_s")
    assert hist_a == hist_b
    best_a = load_checkpoint(run_a / "checkpoints" / "best.pt")
    best_b = load_checkpoint(run_b / "checkpoints" / "best.pt")
    best_a.pop("history"), best_b.pop("history")
    assert_same(best_a, best_b, "best.pt")
    rows = history_without_time(run_a)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows == history_without_time(run_b)
    # the resumed run did train its third epoch
    assert any(not torch.equal(v, after_epoch2[k]) for k, v in last_b["model"].items())
    assert (run_b / "config.yaml").read_text() == (run_a / "config.yaml").read_text()


def test_quiet_train_logs_nothing(cli, tmp_path, synth_root):
    res = cli("-q", "train", "--out", tmp_path / "run", "--no-progress", f"data.root={synth_root}",
              *TINY, "train.epochs=1")
    assert res.rc == 0, res.err
    assert res.err == ""
    assert res.out.startswith("trained ")


# --------------------------------------------------------------------------- user errors
def _train(cli, out: Path, root: Path, *extra: str):
    return cli("-q", "train", "--out", out, "--no-progress", f"data.root={root}", *TINY, *extra)


def test_error_missing_dataset_folder(cli, tmp_path):
    missing = tmp_path / "no-such-data"
    res = _train(cli, tmp_path / "run", missing)
    assert_user_error(res, "not found", str(missing))


@pytest.mark.parametrize("override, needles", [
    ("data.name=nope", ("unknown dataset", "'nope'")),
    ("model.name=nope", ("unknown model", "'nope'")),
    ("model.neuron=nope", ("unknown neuron", "'nope'", "radlif")),
    ("model.surrogate=nope", ("unknown surrogate", "'nope'")),
    ("features.name=nope", ("unknown feature", "'nope'")),
])
def test_error_unknown_name(cli, tmp_path, synth_root, override, needles):
    assert_user_error(_train(cli, tmp_path / "run", synth_root, override), *needles)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_error_unknown_config_key_suggests_the_right_one(cli, tmp_path, synth_root):
    res = _train(cli, tmp_path / "run", synth_root, "model.hiden_sizes=[3]")
    line = assert_user_error(res, "model.hiden_sizes", "hidden_sizes")
    assert "did you mean 'model.hidden_sizes'" in line


@pytest.mark.parametrize("override, key", [
    ("train.epochs=abc", "train.epochs"),
    ("train.lr=fast", "train.lr"),
    ("model.hidden_sizes=16", "model.hidden_sizes"),
])
def test_error_wrong_type(cli, tmp_path, synth_root, override, key):
    assert_user_error(_train(cli, tmp_path / "run", synth_root, override), key)


def _garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(2000))


def _header_only(path: Path) -> None:
    sf.write(str(path), np.zeros(0, dtype=np.int16), 16000, subtype="PCM_16")


def _zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize("spoil, needle", [
    (_garbage, "cannot read audio"),
    (_header_only, "empty audio"),
    (_zero_bytes, ""),
], ids=["random-bytes", "no-samples", "zero-bytes"])
def test_error_bad_wav_names_the_file(cli, tmp_path, data_copy, spoil, needle):
    clip = a_train_clip(data_copy)
    spoil(clip)
    res = _train(cli, tmp_path / "run", data_copy)
    assert_user_error(res, clip.name, clip.parent.name, needle)


def test_error_evaluate_missing_run(cli, tmp_path):
    assert_user_error(cli("-q", "evaluate", tmp_path / "nothing", "--device", "cpu"),
                      "run directory not found", "nothing")


@pytest.mark.parametrize("which", ["best", "last"])
def test_error_evaluate_truncated_checkpoint(cli, run_copy, which):
    ckpt = run_copy / "checkpoints" / f"{which}.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    res = cli("-q", "evaluate", run_copy, "--checkpoint", which, "--device", "cpu", "--no-progress")
    assert_user_error(res, f"{which}.pt", "checkpoint")
    assert not (run_copy / "metrics.json").exists()


def test_error_resume_without_checkpoint(cli, tmp_path):
    res = cli("-q", "train", "--out", tmp_path / "empty-run", "--resume")
    assert_user_error(res, "cannot resume", "last.pt")


def test_error_resume_with_overrides(cli, run_copy):
    res = cli("-q", "train", "--out", run_copy, "--resume", "train.epochs=5")
    assert_user_error(res, "--resume")


def test_error_train_into_existing_run(cli, run_copy, synth_root):
    before = (run_copy / "checkpoints" / "last.pt").read_bytes()
    res = _train(cli, run_copy, synth_root)
    assert_user_error(res, "already holds a run", "--resume")
    assert (run_copy / "checkpoints" / "last.pt").read_bytes() == before


def test_debug_env_shows_the_exception(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEKWS_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        cli("-q", "evaluate", tmp_path / "nothing")


# --------------------------------------------------------------------------- list
def test_list_prints_all_registries(cli):
    res = cli("list")
    assert res.rc == 0, res.err
    for name in ("radlif", "logmel", "synth", "boxcar", "snn", "delta", "mse", "xylo", "vtlp"):
        assert name in res.out
    assert [line.split(":")[0] for line in res.out.splitlines()] == [
        "datasets", "features", "encoders", "models", "neurons", "surrogates", "calibrations",
        "targets", "augment"]


def test_list_json(cli):
    res = cli("list", "neurons", "--json")
    assert res.rc == 0, res.err
    neurons = json.loads(res.out)
    assert isinstance(neurons, list) and {"lif", "adlif", "rlif", "radlif"} <= set(neurons)
    tables = json.loads(cli("list", "--json").out)
    assert set(tables) == {"datasets", "features", "encoders", "models", "neurons", "surrogates",
                           "calibrations", "targets", "augment"}
    assert {"vtlp", "tempo", "speed", "noise_snr"} <= set(tables["augment"])
    assert "seed" not in tables["augment"]
    assert tables["neurons"] == neurons


def test_list_unknown_table(cli):
    assert_user_error(cli("list", "nope"), "unknown list", "neurons")


# --------------------------------------------------------------------------- real processes
def _subprocess_env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("SPIKEKWS_DEBUG", None)
    return env


def test_console_script_user_error_is_one_line(tmp_path, synth_root):
    exe = Path(sys.executable).with_name("spikekws")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "spikekws"]
    missing = tmp_path / "no-such-data"
    proc = subprocess.run(cmd + ["train", "--out", str(tmp_path / "run"), "--no-progress",
                                 f"data.root={missing}", *TINY],
                          capture_output=True, text=True, env=_subprocess_env(), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("spikekws: error: "), proc.stderr
    assert str(missing) in lines[0]
    assert proc.stdout == ""


def test_python_dash_m_runs(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "spikekws", "list", "surrogates", "--json"],
                          capture_output=True, text=True, env=_subprocess_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "boxcar" in json.loads(proc.stdout)
