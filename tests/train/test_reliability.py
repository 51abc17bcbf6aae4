"""Crash safety of training runs: SIGKILL + resume is bit-exact, Ctrl-C keeps the last complete
epoch, atomic writers, clear errors for bad checkpoints, read-only and full disks."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest
import torch

import spikekws.train.runner as runner
from spikekws.train.checkpoint import load_checkpoint

from tinyrun import run_cli, tiny_args

REPO = Path(__file__).resolve().parents[2]

# ``spikekws train`` with one pause: in epoch 2, after a few optimizer steps, it writes a
# marker file and sleeps, so that the test's signal lands mid-epoch every time.
PAUSED_TRAIN = r"""
import sys, time
from pathlib import Path
import spikekws.train.runner as runner
from spikekws.cli import main

marker = Path(sys.argv[1])
real_save, real_loss = runner.save_checkpoint, runner.classification_loss
state = {"saved": 0, "calls": 0}

def save(path, payload):
    real_save(path, payload)
    if Path(path).name == "last.pt":
        state["saved"] = payload["epoch"]

def loss(out, y, *args):
    if state["saved"] == 1 and out.requires_grad:
        state["calls"] += 1
        if state["calls"] == 2:
            marker.write_text("epoch 2, batch 2")
            time.sleep(300)
    return real_loss(out, y, *args)

runner.save_checkpoint, runner.classification_loss = save, loss
sys.exit(main(sys.argv[2:]))
"""


def _env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("SPIKEKWS_DEBUG", None)
    return env


def _start_paused(run: Path, marker: Path, root: Path) -> subprocess.Popen:
    argv = ["-q", "train", "--out", str(run), *tiny_args(root)]
    proc = subprocess.Popen([sys.executable, "-c", PAUSED_TRAIN, str(marker), *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.monotonic() + 180
    while not marker.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"training exited early ({proc.returncode}): {err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("training never reached epoch 2")
        time.sleep(0.05)
    return proc


def _assert_same_weights(a: Path, b: Path) -> None:
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca["epoch"] == cb["epoch"]
    assert ca["model"].keys() == cb["model"].keys()
    for key in ca["model"]:
        assert torch.equal(ca["model"][key], cb["model"][key]), key
    sa, sb = ca["optimizer"]["state"], cb["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        for k in sa[i]:
            assert torch.equal(torch.as_tensor(sa[i][k]), torch.as_tensor(sb[i][k])), (i, k)


def _history(run: Path) -> List[dict]:
    rows = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines() if line]
    for r in rows:
        r.pop("time_s")
    return rows


def _temp_files(run: Path) -> List[Path]:
    return [p for p in run.rglob("*") if p.name.endswith(".tmp") or p.name == ".write-test"]


def test_sigkill_mid_epoch_then_resume_is_bit_exact(tmp_path, tiny_root, tiny_run):
    run, marker = tmp_path / "run", tmp_path / "paused"
    proc = _start_paused(run, marker, tiny_root)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 1
    assert len(_history(run)) == 1

    res = subprocess.run([sys.executable, "-m", "spikekws", "-q", "train", "--out", str(run),
                          "--resume"], capture_output=True, text=True, env=_env(), timeout=300)
    assert res.returncode == 0, res.stderr
    assert "best valid accuracy" in res.stdout
    _assert_same_weights(tiny_run / "checkpoints" / "last.pt", run / "checkpoints" / "last.pt")
    _assert_same_weights(tiny_run / "checkpoints" / "best.pt", run / "checkpoints" / "best.pt") \
        if "optimizer" in load_checkpoint(run / "checkpoints" / "best.pt") else None
    best_a = load_checkpoint(tiny_run / "checkpoints" / "best.pt")["model"]
    best_b = load_checkpoint(run / "checkpoints" / "best.pt")["model"]
    assert all(torch.equal(best_a[k], best_b[k]) for k in best_a)
    assert _history(run) == _history(tiny_run)
    assert _temp_files(run) == []


def test_ctrl_c_keeps_last_complete_epoch_and_exits_130(tmp_path, tiny_root, tiny_run):
    run, marker = tmp_path / "run", tmp_path / "paused"
    proc = _start_paused(run, marker, tiny_root)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("spikekws: interrupted; ")
    assert "last.pt holds the last complete epoch" in lines[0]
    assert f"spikekws train --out {run} --resume" in lines[0]
    assert "Traceback" not in err
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 1
    assert _temp_files(run) == []

    res = run_cli(["-q", "train", "--out", run, "--resume"])
    assert res.rc == 0, res.err
    _assert_same_weights(tiny_run / "checkpoints" / "last.pt", run / "checkpoints" / "last.pt")
    assert _history(run) == _history(tiny_run)


def test_resume_rewrites_a_history_that_lags_the_checkpoint(tmp_path, tiny_run):
    # A kill between the atomic writes of last.pt and history.jsonl leaves the history one
    # epoch short; a resume (even one with nothing left to train) brings it back in line.
    import shutil
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    lines = (run / "history.jsonl").read_text().splitlines()
    (run / "history.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    res = run_cli(["-q", "train", "--out", run, "--resume"])
    assert res.rc == 0, res.err
    assert _history(run) == _history(tiny_run)


def test_every_run_file_is_written_by_atomic_replace(tmp_path, tiny_root, monkeypatch):
    replaced = []
    real_replace = os.replace

    def spy(src, dst, *a, **k):
        replaced.append(Path(dst).resolve())
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", spy)
    run = tmp_path / "run"
    assert run_cli(["-q", "train", "--out", run, *tiny_args(tiny_root, "train.epochs=1")]).rc == 0
    assert run_cli(["-q", "evaluate", run, "--device", "cpu", "--no-progress"]).rc == 0
    files = sorted(p.resolve() for p in run.rglob("*") if p.is_file())
    names = {p.name for p in files}
    assert {"config.yaml", "history.jsonl", "metrics.json", "report.md", "last.pt", "best.pt",
            "confusion_test.png", "training_curves.png"} <= names
    not_atomic = [str(p) for p in files if p not in set(replaced)]
    assert not_atomic == []


# --------------------------------------------------------------------------- bad checkpoints
def test_resume_from_truncated_checkpoint_is_one_line_error(tiny_run_copy):
    last = tiny_run_copy / "checkpoints" / "last.pt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    res = run_cli(["-q", "train", "--out", tiny_run_copy, "--resume"])
    assert res.rc == 2
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spikekws: error: "), res.err
    assert str(last) in lines[0] and "truncated or corrupt" in lines[0]


def test_evaluate_with_foreign_checkpoint_is_one_line_error(tiny_run_copy):
    best = tiny_run_copy / "checkpoints" / "best.pt"
    torch.save({"state_dict": {"w": torch.zeros(3)}, "epoch": 3}, best)
    res = run_cli(["-q", "evaluate", tiny_run_copy, "--device", "cpu", "--no-progress"])
    assert res.rc == 2
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spikekws: error: "), res.err
    assert str(best) in lines[0] and "not a spikekws checkpoint" in lines[0]


# --------------------------------------------------------------------------- storage checks
def _no_features(*a, **k):
    raise AssertionError("feature extraction started before the storage check")


def test_read_only_run_directory_fails_before_training(tmp_path, tiny_root, monkeypatch):
    # Root ignores permission bits, so the read-only file system is simulated at open().
    def read_only_open(path, *a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(runner, "open", read_only_open, raising=False)
    monkeypatch.setattr(runner, "extract_features", _no_features)
    run = tmp_path / "run"
    res = run_cli(["-q", "train", "--out", run, *tiny_args(tiny_root)])
    assert res.rc == 2
    assert res.err.strip().splitlines() == [
        f"spikekws: error: run directory {run} is not writable: Read-only file system"]
    assert not (run / "checkpoints").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root ignores directory permissions")
def test_read_only_run_directory_real_permissions(tmp_path, tiny_root, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(0o555)
    monkeypatch.setattr(runner, "extract_features", _no_features)
    try:
        res = run_cli(["-q", "train", "--out", run, *tiny_args(tiny_root)])
    finally:
        run.chmod(0o755)
    assert res.rc == 2
    assert "not writable" in res.err and str(run) in res.err


def test_full_disk_fails_before_the_first_epoch(tmp_path, tiny_root, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    seen = []

    def tiny_disk(path):
        seen.append(Path(path))
        return usage(10 << 20, (10 << 20) - 4096, 4096)

    def no_training(*a, **k):
        raise AssertionError("training started despite the full disk")

    monkeypatch.setattr(shutil, "disk_usage", tiny_disk)
    monkeypatch.setattr(runner, "classification_loss", no_training)
    run = tmp_path / "run"
    res = run_cli(["-q", "train", "--out", run, *tiny_args(tiny_root)])
    assert res.rc == 2, res.err
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"spikekws: error: not enough free disk space for run directory {run}: 0.0 MiB free"), res.err
    assert seen and seen[0] == run
    assert not (run / "checkpoints").exists()


def test_checkpoint_size_estimate_covers_real_checkpoints(tiny_run):
    from spikekws.train.runner import checkpoint_bytes_estimate, load_run
    _, _, model, _ = load_run(tiny_run)
    written = sum((tiny_run / "checkpoints" / n).stat().st_size for n in ("last.pt", "best.pt"))
    need = checkpoint_bytes_estimate(model)
    assert 2 * written <= need  # both files next to their temporary copies
    assert need - (1 << 20) <= 4 * written  # 1 MiB headroom, otherwise close to the real size


def test_best_checkpoint_breaks_accuracy_ties_on_validation_loss(tiny_run):
    """best.pt holds the epoch of the highest validation accuracy, and among epochs with
    that accuracy the one with the lowest validation loss (a saturated split otherwise
    keeps the first such epoch)."""
    import json

    from spikekws.train import load_checkpoint
    from spikekws.train.runner import improves

    history = [json.loads(line) for line in (tiny_run / "history.jsonl").read_text().splitlines()]
    top = max(r["valid_acc"] for r in history)
    expect = min((r for r in history if r["valid_acc"] == top), key=lambda r: r["valid_loss"])
    best = load_checkpoint(tiny_run / "checkpoints" / "best.pt")
    assert best["epoch"] == expect["epoch"]
    assert best["best"]["valid_loss"] == expect["valid_loss"]
    # the rule itself
    b = {"epoch": 3, "valid_acc": 1.0, "valid_loss": 0.4}
    assert improves({"acc": 1.0, "loss": 0.3}, b)
    assert not improves({"acc": 1.0, "loss": 0.5}, b)
    assert not improves({"acc": 1.0, "loss": 0.4}, b)
    assert improves({"acc": 0.5, "loss": 9.0}, {"epoch": -1, "valid_acc": -1.0})
    assert not improves({"acc": 0.9, "loss": 0.01}, b)
