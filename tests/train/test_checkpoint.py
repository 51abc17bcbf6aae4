"""Checkpoint files: roundtrip, atomic writes and clear errors for bad files."""
from __future__ import annotations

import os

import pytest
import torch

from spikekws.train import load_checkpoint, save_checkpoint
from spikekws.train.checkpoint import FORMAT, VERSION


def _payload():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    return {
        "model": model.state_dict(),
        "config": {"model": {"name": "snn", "hidden_sizes": [8, 8]}, "train": {"lr": 3e-3}},
        "epoch": 7,
        "metrics": {"valid_acc": 0.875, "history": [0.5, 0.75]},
    }


def test_roundtrip(tmp_path):
    payload = _payload()
    path = tmp_path / "ckpt" / "best.pt"  # parent folder is created
    save_checkpoint(path, payload)
    data = load_checkpoint(path)
    assert data["format"] == FORMAT and data["version"] == VERSION
    assert data["epoch"] == 7
    assert data["config"] == payload["config"]
    assert data["metrics"] == payload["metrics"]
    assert data["model"].keys() == payload["model"].keys()
    for k, v in payload["model"].items():
        assert torch.equal(data["model"][k], v)
    # The payload given by the caller is not modified.
    assert "format" not in payload and "version" not in payload


def test_overwrite_and_no_temp_files_left(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1})
    save_checkpoint(path, {"epoch": 2})
    assert load_checkpoint(path)["epoch"] == 2
    assert sorted(os.listdir(tmp_path)) == ["last.pt"]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1})

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle this")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        save_checkpoint(path, {"epoch": 2, "bad": Unpicklable()})
    assert sorted(os.listdir(tmp_path)) == ["last.pt"]
    assert load_checkpoint(path)["epoch"] == 1


def test_truncated_file_raises_value_error_naming_path(tmp_path):
    path = tmp_path / "best.pt"
    save_checkpoint(path, _payload())
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_empty_file_raises_value_error(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.pt"):
        load_checkpoint(path)


def test_foreign_torch_file_raises_value_error(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"a": 1}, path)
    with pytest.raises(ValueError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert "not a spikekws checkpoint" in str(info.value)
    # A tensor or a list is not a checkpoint either.
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match="foreign.pt"):
        load_checkpoint(path)


def test_random_bytes_raise_value_error(tmp_path):
    path = tmp_path / "noise.pt"
    g = torch.Generator().manual_seed(0)
    path.write_bytes(bytes(torch.randint(0, 256, (4096,), generator=g, dtype=torch.uint8).tolist()))
    with pytest.raises(ValueError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_newer_version_raises(tmp_path):
    path = tmp_path / "future.pt"
    torch.save({"format": FORMAT, "version": VERSION + 1}, path)
    with pytest.raises(ValueError, match="newer"):
        load_checkpoint(path)


def test_missing_file_raises_file_not_found(tmp_path):
    path = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path)  # a folder is not a checkpoint file
