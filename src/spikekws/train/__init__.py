"""Training, evaluation, checkpoints and metrics."""
from .checkpoint import load_checkpoint, save_checkpoint
from .losses import classification_loss, firing_rate_regularizer
from .metrics import classification_report, confusion_matrix, f1_scores

__all__ = ["load_checkpoint", "save_checkpoint", "classification_loss", "firing_rate_regularizer",
           "classification_report", "confusion_matrix", "f1_scores", "train_run", "evaluate_run"]


def __getattr__(name):
    if name in ("train_run", "evaluate_run", "load_run"):
        from . import runner
        return getattr(runner, name)
    raise AttributeError(name)
