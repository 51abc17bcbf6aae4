"""Optional experiment tracking: TensorBoard scalars per epoch (``train.tensorboard: true``).

The writer lives in ``RUN/tensorboard/``; view it with ``tensorboard --logdir RUN``.
``tensorboard`` is an optional dependency, imported only when the option is on.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Optional, Union

log = logging.getLogger("spikekws.train")

INSTALL_HINT = "pip install tensorboard"


def require_tensorboard() -> None:
    """Raise ImportError with the pip line when TensorBoard logging cannot work."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as e:
        raise ImportError(f"train.tensorboard=true needs the tensorboard package ({e}); "
                          f"install it with: {INSTALL_HINT}") from None


class TensorBoardLogger:
    """Writes the per-epoch history row (losses, accuracies, lr, firing rate per layer)."""

    def __init__(self, log_dir: Union[str, Path], purge_step: Optional[int] = None) -> None:
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        # purge_step drops events of epochs a resumed run computes again.
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge_step)

    def log_epoch(self, row: Dict[str, Any]) -> None:
        step = int(row["epoch"])
        w = self.writer
        for key, tag in (("train_loss", "loss/train"), ("valid_loss", "loss/valid"),
                         ("train_acc", "accuracy/train"), ("valid_acc", "accuracy/valid"),
                         ("lr", "lr"), ("time_s", "time_s")):
            if key in row and row[key] is not None:
                w.add_scalar(tag, float(row[key]), step)
        for i, rate in enumerate(row.get("firing_rates") or []):
            w.add_scalar(f"firing_rate/layer{i}", float(rate), step)
        w.flush()

    def close(self) -> None:
        self.writer.close()


def make_logger(enabled: bool, run_dir: Union[str, Path], start_epoch: int = 0
                ) -> Optional[TensorBoardLogger]:
    if not enabled:
        return None
    return TensorBoardLogger(Path(run_dir) / "tensorboard",
                             purge_step=start_epoch + 1 if start_epoch else None)
