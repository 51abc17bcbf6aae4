"""Waveform augmentation (data.options.augment) is redrawn every epoch, and a resumed run
redraws exactly what an uninterrupted one did."""
from __future__ import annotations

import torch

import spikekws.train.runner as runner
from spikekws.config import load_config
from spikekws.train.checkpoint import load_checkpoint

from tinyrun import tiny_args

AUGMENT = "data.options.augment={seed: 3, gain_db: 6, shift_ms: 20}"


def _cfg(root, *extra):
    return load_config(None, [*tiny_args(root), *extra])


def _record_train_features(monkeypatch):
    seen = []
    original = runner.extract_features

    def recording(dataset, *args, **kwargs):
        X, y = original(dataset, *args, **kwargs)
        if getattr(dataset, "split", None) == "train":
            seen.append((dataset.epoch, X.clone()))
        return X, y

    monkeypatch.setattr(runner, "extract_features", recording)
    return seen


def test_augmented_split_is_reextracted_each_epoch(tmp_path, tiny_root, monkeypatch):
    seen = _record_train_features(monkeypatch)
    runner.train_run(_cfg(tiny_root, AUGMENT), tmp_path / "run")
    assert [epoch for epoch, _ in seen] == [0, 1, 2]
    assert not torch.equal(seen[0][1], seen[1][1])
    assert not torch.equal(seen[1][1], seen[2][1])


def test_without_augmentation_features_are_extracted_once(tmp_path, tiny_root, monkeypatch):
    seen = _record_train_features(monkeypatch)
    runner.train_run(_cfg(tiny_root), tmp_path / "run")
    assert len(seen) == 1
    seen.clear()
    runner.train_run(_cfg(tiny_root, "train.cache_features=false"), tmp_path / "run2")
    assert len(seen) == 3 and all(torch.equal(seen[0][1], X) for _, X in seen)


def test_resume_with_augmentation_matches_uninterrupted_run(tmp_path, tiny_root, monkeypatch):
    full = tmp_path / "full"
    runner.train_run(_cfg(tiny_root, AUGMENT), full)

    class Stop(Exception):
        pass

    original = runner.train_epoch

    def stop_at_third_epoch(model, opt, X, y, t, epoch, *args, **kwargs):
        if epoch == 2:
            raise Stop()
        return original(model, opt, X, y, t, epoch, *args, **kwargs)

    part = tmp_path / "part"
    monkeypatch.setattr(runner, "train_epoch", stop_at_third_epoch)
    try:
        runner.train_run(_cfg(tiny_root, AUGMENT), part)
    except Stop:
        pass
    monkeypatch.setattr(runner, "train_epoch", original)
    assert load_checkpoint(part / "checkpoints" / "last.pt")["epoch"] == 2
    runner.train_run(None, part, resume=True)
    a = load_checkpoint(full / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(part / "checkpoints" / "last.pt")["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_distill_redraws_augmentation_and_teacher_targets_each_epoch(tmp_path, tiny_root,
                                                                     monkeypatch):
    """With waveform augmentation the student sees each epoch's draws, and the teacher's soft
    targets are recomputed on those same features (not on the first epoch's)."""
    import json

    from spikekws.train.distill import distill_run

    teacher = tmp_path / "teacher"
    runner.train_run(_cfg(tiny_root, AUGMENT, "train.epochs=1"), teacher)
    seen = _record_train_features(monkeypatch)
    targets = []
    original_predict = runner.predict

    def recording_predict(model, X, *args, **kwargs):
        out = original_predict(model, X, *args, **kwargs)
        targets.append((X.clone(), out[0].clone()))
        return out

    monkeypatch.setattr(runner, "predict", recording_predict)
    distill_run(teacher, tmp_path / "student", 10, curriculum=[20, 10], epochs=3, alpha=0.5,
                progress=False)
    assert [epoch for epoch, _ in seen] == [0, 1, 2]
    assert not torch.equal(seen[0][1], seen[1][1])
    # one teacher pass per epoch on that epoch's training features (the teacher's own
    # length; predict also serves the validation passes, on other clips)
    on_train = [[logits for Xt, logits in targets if Xt.shape == X.shape and torch.equal(Xt, X)]
                for _, X in seen]
    assert [len(x) for x in on_train] == [1, 1, 1]
    assert not torch.equal(on_train[0][0], on_train[1][0])
    assert json.loads((tmp_path / "student" / "distill.json").read_text())["redrawn_every_epoch"]


def test_distill_without_augmentation_extracts_once(tmp_path, tiny_root, monkeypatch):
    import json

    from spikekws.train.distill import distill_run

    teacher = tmp_path / "teacher"
    runner.train_run(_cfg(tiny_root, "train.epochs=1"), teacher)
    seen = _record_train_features(monkeypatch)
    distill_run(teacher, tmp_path / "student", 10, epochs=2, progress=False)
    assert len(seen) == 1
    assert not json.loads((tmp_path / "student" / "distill.json").read_text())["redrawn_every_epoch"]
