"""Versioned, atomically written checkpoints (dicts of state_dicts + config + metrics)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Union

import torch

from ..atomic import atomic_write

FORMAT = "spikekws-checkpoint"
VERSION = 1


def save_checkpoint(path: Union[str, Path], payload: Dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (temp file in the same folder + rename)."""
    data = dict(payload, format=FORMAT, version=VERSION)
    atomic_write(path, lambda f: torch.save(data, f))


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
