"""Losses and regularisers."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def firing_rate_regularizer(firing_rates: torch.Tensor, f_min: float = 0.01,
                            f_max: float = 0.2) -> torch.Tensor:
    """sparch's penalty: sum over layers of relu(f_min - r) + relu(r - f_max)."""
    if firing_rates.numel() == 0:
        return firing_rates.new_zeros(())
    return F.relu(f_min - firing_rates).sum() + F.relu(firing_rates - f_max).sum()


def classification_loss(outputs: torch.Tensor, targets: torch.Tensor,
                        label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy; model outputs are log-probabilities or unnormalised scores.

    ``label_smoothing`` = eps mixes the one-hot target with the uniform distribution:
    the target is ``1 - eps + eps / C`` for the true class and ``eps / C`` for the others.
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    return F.cross_entropy(outputs, targets, label_smoothing=label_smoothing)
