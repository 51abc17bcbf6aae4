"""Classification metrics computed per sample (never a mean of batch means)."""
from __future__ import annotations

from typing import Dict, Sequence

import torch


def confusion_matrix(targets: torch.Tensor, preds: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[C, C] counts; rows are true classes, columns predictions."""
    idx = targets.long() * num_classes + preds.long()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def f1_scores(cm: torch.Tensor) -> Dict[str, object]:
    cm = cm.double()
    tp = cm.diag()
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    denom = 2 * tp + fp + fn
    per_class = torch.where(denom > 0, 2 * tp / denom.clamp(min=1e-12), torch.zeros_like(tp))
    present = cm.sum(1) > 0  # macro over classes present in the targets
    macro = per_class[present].mean().item() if present.any() else 0.0
    micro_denom = (2 * tp.sum() + fp.sum() + fn.sum()).item()
    micro = (2 * tp.sum()).item() / micro_denom if micro_denom > 0 else 0.0
    return {"f1_micro": micro, "f1_macro": macro, "f1_per_class": per_class.tolist()}


def classification_report(targets: torch.Tensor, preds: torch.Tensor, num_classes: int,
                          labels: Sequence[str] = ()) -> Dict[str, object]:
    targets = targets.reshape(-1).cpu()
    preds = preds.reshape(-1).cpu()
    n = int(targets.numel())
    cm = confusion_matrix(targets, preds, num_classes)
    report: Dict[str, object] = {
        "num_samples": n,
        "accuracy": float((targets == preds).sum().item()) / n if n else 0.0,
    }
    report.update(f1_scores(cm))
    report["confusion_matrix"] = cm.tolist()
    if labels:
        report["labels"] = list(labels)
    return report
