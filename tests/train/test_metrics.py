"""Classification metrics and the firing-rate regulariser, checked against hand values."""
from __future__ import annotations

import pytest
import torch

from spikekws.train import (classification_loss, classification_report, confusion_matrix,
                            f1_scores, firing_rate_regularizer)


def test_accuracy_is_per_sample_with_ragged_last_batch():
    # 9 samples in batches of 4, 4 and a ragged 1:
    #   batch 1: 4/4 correct, batch 2: 2/4, batch 3: 0/1
    #   per sample: 6/9 = 0.6667;  mean of batch means: (1 + 0.5 + 0)/3 = 0.5
    targets = [torch.tensor([0, 1, 2, 0]), torch.tensor([1, 2, 0, 1]), torch.tensor([2])]
    preds = [torch.tensor([0, 1, 2, 0]), torch.tensor([1, 2, 1, 0]), torch.tensor([0])]
    mean_of_batch_means = sum((p == t).double().mean().item()
                              for p, t in zip(preds, targets)) / len(targets)
    assert mean_of_batch_means == pytest.approx(0.5)
    rep = classification_report(torch.cat(targets), torch.cat(preds), 3)
    assert rep["num_samples"] == 9
    assert rep["accuracy"] == pytest.approx(6 / 9)
    assert rep["accuracy"] != pytest.approx(mean_of_batch_means)


def test_confusion_matrix_rows_are_true_classes():
    targets = torch.tensor([0, 0, 0, 1, 2, 2])
    preds = torch.tensor([0, 1, 1, 1, 0, 2])
    cm = confusion_matrix(targets, preds, 3)
    assert cm.tolist() == [
        [1, 2, 0],  # true 0: once right, twice predicted as 1
        [0, 1, 0],
        [1, 0, 1],
    ]
    assert cm.sum(1).tolist() == [3, 1, 2]  # row sums = true class counts
    assert cm.sum(0).tolist() == [2, 3, 1]  # column sums = predicted counts
    # Unseen classes keep their (zero) rows and columns.
    assert confusion_matrix(torch.tensor([0]), torch.tensor([0]), 4).shape == (4, 4)


def test_f1_micro_equals_accuracy_single_label():
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 5, (97,), generator=g)
    preds = torch.where(torch.rand(97, generator=g) < 0.6, targets,
                        torch.randint(0, 5, (97,), generator=g))
    rep = classification_report(targets, preds, 5)
    acc = (targets == preds).double().mean().item()
    assert rep["accuracy"] == pytest.approx(acc, abs=1e-12)
    assert rep["f1_micro"] == pytest.approx(acc, abs=1e-12)


def test_f1_macro_by_hand():
    # rows = true, columns = predicted
    cm = torch.tensor([
        [5, 1, 0],
        [2, 3, 1],
        [0, 2, 6],
    ])
    # class 0: tp=5, fp=2, fn=1 -> F1 = 10/(10+2+1) = 10/13
    # class 1: tp=3, fp=3, fn=3 -> F1 = 6/(6+3+3)  = 1/2
    # class 2: tp=6, fp=1, fn=2 -> F1 = 12/(12+1+2) = 4/5
    per_class = [10 / 13, 0.5, 0.8]
    out = f1_scores(cm)
    assert out["f1_per_class"] == pytest.approx(per_class, abs=1e-12)
    assert out["f1_macro"] == pytest.approx(sum(per_class) / 3, abs=1e-12)
    assert out["f1_micro"] == pytest.approx(14 / 20, abs=1e-12)  # trace / total


def test_report_matches_hand_confusion_matrix():
    # Expand the matrix above into label lists and check the whole report.
    cm = [[5, 1, 0], [2, 3, 1], [0, 2, 6]]
    t, p = [], []
    for i, row in enumerate(cm):
        for j, n in enumerate(row):
            t += [i] * n
            p += [j] * n
    rep = classification_report(torch.tensor(t), torch.tensor(p), 3, labels=["a", "b", "c"])
    assert rep["confusion_matrix"] == cm
    assert rep["accuracy"] == pytest.approx(0.7)
    assert rep["f1_macro"] == pytest.approx((10 / 13 + 0.5 + 0.8) / 3)
    assert rep["labels"] == ["a", "b", "c"]


def test_f1_perfect_and_empty():
    y = torch.tensor([0, 1, 2, 1])
    rep = classification_report(y, y, 3)
    assert rep["accuracy"] == 1.0 and rep["f1_macro"] == 1.0 and rep["f1_micro"] == 1.0
    empty = classification_report(torch.zeros(0, dtype=torch.long),
                                  torch.zeros(0, dtype=torch.long), 3)
    assert empty["num_samples"] == 0 and empty["accuracy"] == 0.0


def test_firing_rate_regularizer_by_hand():
    rates = torch.tensor([0.0, 0.05, 0.5, 0.2, 0.01])
    # f_min=0.01, f_max=0.2:
    #   0.0  -> 0.01 below f_min       -> 0.01
    #   0.05 -> inside                 -> 0
    #   0.5  -> 0.3 above f_max        -> 0.3
    #   0.2, 0.01 -> on the bounds     -> 0
    assert firing_rate_regularizer(rates).item() == pytest.approx(0.31, abs=1e-6)
    # custom bounds: f_min=0.1, f_max=0.3 -> 0.1 + 0.05 + 0.2 + 0 + 0.09 = 0.44
    assert firing_rate_regularizer(rates, f_min=0.1, f_max=0.3).item() == pytest.approx(
        0.44, abs=1e-6)
    assert firing_rate_regularizer(torch.tensor([0.1, 0.15])).item() == 0.0
    assert firing_rate_regularizer(torch.zeros(0)).item() == 0.0


def test_firing_rate_regularizer_gradient_pushes_into_band():
    rates = torch.tensor([0.0, 0.1, 0.5], requires_grad=True)
    firing_rate_regularizer(rates).backward()
    # d/dr relu(f_min - r) = -1 below; d/dr relu(r - f_max) = +1 above; 0 inside.
    assert rates.grad.tolist() == [-1.0, 0.0, 1.0]


def test_classification_loss_is_cross_entropy_on_log_probs():
    logp = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    loss = classification_loss(logp, torch.tensor([0, 2]))
    # -(log 0.5 + log 0.8) / 2
    assert loss.item() == pytest.approx(-(torch.log(torch.tensor(0.5)) +
                                          torch.log(torch.tensor(0.8))).item() / 2, abs=1e-6)
