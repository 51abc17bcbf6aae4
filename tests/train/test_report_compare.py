"""``spikekws compare``: side-by-side table, seed groups as mean ± std; TensorBoard logging."""
from __future__ import annotations

import builtins
import json
import shutil
from pathlib import Path
from typing import Optional

import pytest
import yaml

from spikekws.report.compare import compare_runs, format_table

from tinyrun import run_cli, tiny_args


def fake_run(path: Path, seed: int, hidden=(16,), test_acc=0.5, valid_accs=(0.2, 0.6, 0.4),
             rates=(0.05, 0.1), energy_pj: Optional[float] = None, params: int = 409) -> Path:
    """A run directory with only the small files compare reads."""
    path.mkdir(parents=True)
    cfg = {"data": {"name": "synth", "root": "d"},
           "model": {"name": "snn", "neuron": "lif", "hidden_sizes": list(hidden)},
           "train": {"seed": seed, "lr": 0.01, "progress": seed % 2 == 0, "threads": seed}}
    (path / "config.yaml").write_text(yaml.safe_dump(cfg))
    (path / "history.jsonl").write_text("".join(
        json.dumps({"epoch": i + 1, "valid_acc": a, "firing_rates": list(rates)}) + "\n"
        for i, a in enumerate(valid_accs)))
    test = {"accuracy": test_acc, "f1_macro": test_acc - 0.1, "num_params": params,
            "firing_rates": list(rates)}
    if energy_pj is not None:
        test["energy"] = {"total": {"energy_pj_fp32": energy_pj, "macs": 1.0}, "layers": []}
    (path / "metrics.json").write_text(json.dumps({"test": test}))
    return path


def test_runs_differing_only_by_seed_are_pooled(tmp_path):
    a = fake_run(tmp_path / "a", 0, test_acc=0.50, valid_accs=(0.2, 0.6), rates=(0.1, 0.2))
    b = fake_run(tmp_path / "b", 1, test_acc=0.70, valid_accs=(0.8, 0.4), rates=(0.3, 0.4))
    c = fake_run(tmp_path / "c", 2, test_acc=0.90, valid_accs=(0.7,), rates=(0.2, 0.3))
    other = fake_run(tmp_path / "wide", 0, hidden=(32,), test_acc=0.8, params=1000)
    groups = compare_runs([a, other, b, c])
    assert [g["runs"] for g in groups] == [[str(a), str(b), str(c)], [str(other)]]
    g = groups[0]
    assert g["seeds"] == [0, 1, 2]
    m, sd, n = g["test_acc"]
    assert n == 3 and m == pytest.approx(0.7) and sd == pytest.approx(0.2)  # sample std
    m, sd, n = g["best_valid_acc"]  # best epoch of each run: 0.6, 0.8, 0.7
    assert m == pytest.approx(0.7) and sd == pytest.approx(0.1)
    assert g["firing_rates"][0][:2] == pytest.approx((0.2, 0.1))
    assert g["firing_rates"][1][:2] == pytest.approx((0.3, 0.1))
    assert groups[1]["test_acc"] == (0.8, 0.0, 1)
    table = format_table(groups)
    lines = table.splitlines()
    assert len(lines) == 4
    assert lines[2].startswith("| a (+2) | snn/lif 16 | 409 | 0,1,2 | 0.7000 ± 0.1000 | "
                               "0.7000 ± 0.2000 | 0.6000 ± 0.2000 | 0.200 ± 0.100/0.300 ± 0.100 |")
    assert lines[3].startswith("| wide | snn/lif 32 | 1000 | 0 | 0.6000 | 0.8000 | 0.7000 |")
    assert "energy" not in lines[0]


def test_energy_column_when_present(tmp_path):
    a = fake_run(tmp_path / "a", 0, energy_pj=2000.0)
    b = fake_run(tmp_path / "b", 1, energy_pj=4000.0)
    c = fake_run(tmp_path / "c", 0, hidden=(8,))
    groups = compare_runs([a, b, c])
    table = format_table(groups).splitlines()
    assert table[0].endswith("| energy fp32 nJ/sample |")
    assert table[2].endswith("| 3.00 ± 1.41 |")
    assert table[3].endswith("| - |")


def test_compare_cli_on_real_runs(tiny_run, tmp_path):
    other = tmp_path / "seed1"
    shutil.copytree(tiny_run, other)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["train"]["seed"] = 1
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = run_cli(["-q", "compare", tiny_run, other])
    assert res.rc == 0, res.err
    lines = res.out.strip().splitlines()
    assert len(lines) == 3 and lines[2].startswith("| run (+1) | snn/adlif 16 |")
    test = json.loads((tiny_run / "metrics.json").read_text())["test"]
    assert f"| {test['accuracy']:.4f} ± 0.0000 |" in lines[2]
    res = run_cli(["-q", "compare", tiny_run, "--json"])
    assert res.rc == 0, res.err
    (group,) = json.loads(res.out)
    assert group["test_acc"] == [test["accuracy"], 0.0, 1]
    assert group["params"] == test["num_params"]


def test_compare_user_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    bad = fake_run(tmp_path / "bad", 0)
    (bad / "metrics.json").write_text("{not json")
    for argv, needle in ((["compare", tmp_path / "missing"], "run directory not found"),
                         (["compare", tmp_path / "empty"], "no config.yaml"),
                         (["compare", bad], "metrics.json is not valid JSON")):
        res = run_cli(["-q", *argv])
        lines = res.err.strip().splitlines()
        assert res.rc == 2 and len(lines) == 1, res.err
        assert lines[0].startswith("spikekws: error: ") and needle in lines[0], res.err


# --------------------------------------------------------------------------- TensorBoard
def test_tensorboard_scalars_per_epoch(tmp_path, tiny_root):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    res = run_cli(["-q", "train", "--out", run, *tiny_args(tiny_root, "train.epochs=2",
                                                           "train.tensorboard=true")])
    assert res.rc == 0, res.err
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"loss/train", "loss/valid", "accuracy/train", "accuracy/valid", "lr",
            "firing_rate/layer0"} <= tags
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    for tag, key in (("loss/valid", "valid_loss"), ("accuracy/train", "train_acc")):
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [1, 2]
        assert [e.value for e in events] == pytest.approx([h[key] for h in history], rel=1e-6)
    rates = [e.value for e in acc.Scalars("firing_rate/layer0")]
    assert rates == pytest.approx([h["firing_rates"][0] for h in history], abs=1e-6)


def test_tensorboard_missing_is_one_line_error_before_features(tmp_path, tiny_root, monkeypatch):
    import spikekws.train.runner as runner
    real_import = builtins.__import__

    def no_tensorboard(name, *a, **k):
        if name == "tensorboard" or name.startswith("tensorboard."):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *a, **k)

    def no_features(*a, **k):
        raise AssertionError("features extracted before the dependency check")

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    monkeypatch.setattr(runner, "extract_features", no_features)
    res = run_cli(["-q", "train", "--out", tmp_path / "run",
                   *tiny_args(tiny_root, "train.tensorboard=true")])
    assert res.rc == 2
    lines = res.err.strip().splitlines()
    assert len(lines) == 1, res.err
    assert lines[0].startswith("spikekws: error: train.tensorboard=true needs the tensorboard")
    assert lines[0].endswith("install it with: pip install tensorboard")
