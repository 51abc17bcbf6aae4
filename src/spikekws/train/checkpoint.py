"""Versioned, atomically written checkpoints (dicts of state_dicts + config + metrics)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Union

import torch

FORMAT = "spikekws-checkpoint"
VERSION = 1


def save_checkpoint(path: Union[str, Path], payload: Dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (temp file in the same folder + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = dict(payload, format=FORMAT, version=VERSION)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: Union[str, Path], map_location: Any = "cpu") -> Dict[str, Any]:
    """Load and validate a checkpoint; corrupt or foreign files raise ValueError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for truncated/foreign files
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path} is not a readable spikekws checkpoint (truncated or corrupt?): "
                         f"{reason[:200]}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a spikekws checkpoint (no '{FORMAT}' marker)")
    if int(data.get("version", -1)) > VERSION:
        raise ValueError(f"{path} was written by a newer spikekws (checkpoint version "
                         f"{data.get('version')}, this version reads <= {VERSION})")
    return data
