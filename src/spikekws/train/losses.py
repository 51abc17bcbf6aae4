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


def classification_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy; model outputs are log-probabilities or unnormalised scores."""
    return F.cross_entropy(outputs, targets)
