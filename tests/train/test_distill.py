"""Distillation to fewer time steps: loss, resampling, curriculum, the distill CLI."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
import yaml

from spikekws.train.distill import (TimeResample, kd_loss, parse_curriculum, split_epochs,
                                    stage_epoch_list)

from tinyrun import run_cli as run

TINY = ["data.name=synth", "model.name=spikescr", "model.neuron=lif", "model.hidden_sizes=[8]",
        "model.options.heads=2", "model.dropout=0.0", "train.epochs=2", "train.batch_size=6",
        "train.lr=0.01", "features.options.n_mels=12", "train.device=cpu", "train.threads=1",
        "train.progress=false"]


# --------------------------------------------------------------------------- units
def test_kd_loss_by_hand():
    s = torch.tensor([[2.0, 0.0, -1.0]])
    t = torch.tensor([[0.5, 1.0, 0.0]])
    y = torch.tensor([0])
    assert kd_loss(s, t, y, 4.0, 0.0).item() == pytest.approx(F.cross_entropy(s, y).item())
    assert kd_loss(s, s, y, 3.0, 1.0).item() == pytest.approx(0.0, abs=1e-7)
    p_t = torch.softmax(t / 2.0, -1)[0]
    p_s = torch.softmax(s / 2.0, -1)[0]
    kl = float((p_t * (p_t.log() - p_s.log())).sum())
    ce = -math.log(float(torch.softmax(s, -1)[0, 0]))
    assert kd_loss(s, t, y, 2.0, 0.25).item() == pytest.approx(0.25 * 4 * kl + 0.75 * ce, rel=1e-5)
    # log-probabilities (the LI readout's output) give the same loss as logits
    assert kd_loss(torch.log_softmax(s, -1), t, y, 2.0, 0.25).item() == pytest.approx(
        kd_loss(s, t, y, 2.0, 0.25).item(), rel=1e-5)


def test_time_resample_averages_frames():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).reshape(1, 6, 1)
    assert TimeResample(3)(x).flatten().tolist() == [1.5, 3.5, 5.5]
    assert TimeResample(2)(x).flatten().tolist() == [2.0, 5.0]
    assert TimeResample(6)(x) is x
    assert TimeResample(12)(x).flatten().tolist()[:4] == [1.0, 1.0, 2.0, 2.0]
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="timesteps"):
            TimeResample(bad)


def test_curriculum_and_epoch_split():
    assert parse_curriculum(40) == [40]
    assert parse_curriculum(40, [100, 70, 40]) == [100, 70, 40]
    with pytest.raises(ValueError, match="end at timesteps=40"):
        parse_curriculum(40, [100, 70])
    with pytest.raises(ValueError, match="positive"):
        parse_curriculum(40, [0, 40])
    with pytest.raises(ValueError, match="timesteps"):
        parse_curriculum(0)
    assert split_epochs(10, 3) == [3, 3, 4]
    assert split_epochs(3, 3) == [1, 1, 1]
    with pytest.raises(ValueError, match="at least"):
        split_epochs(2, 3)
    assert stage_epoch_list([5, 5, 20], 3) == [5, 5, 20]
    with pytest.raises(ValueError, match="lists 2 stage"):
        stage_epoch_list([5, 20], 3)
    with pytest.raises(ValueError, match="positive integers"):
        stage_epoch_list([5, 0, 20], 3)


# --------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def teacher(tmp_path_factory, tiny_root):
    run_dir = tmp_path_factory.mktemp("kd") / "teacher"
    rc, out, err = run(["-q", "train", "--out", run_dir, f"data.root={tiny_root}", *TINY])
    assert rc == 0, err
    return run_dir


def assert_user_error(res, needle):
    rc, _, err = res
    assert rc == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("spikekws: error: ") and needle in lines[0], err


def test_distill_writes_a_run_that_evaluate_resamples(teacher, tmp_path):
    from spikekws.train.runner import build_data, build_frontend, extract_features, load_run

    student = tmp_path / "student"
    rc, out, err = run(["-q", "distill", teacher, "--timesteps", "10", "--curriculum", "20,10",
                        "--epochs", "3", "--temperature", "2", "--alpha", "0.7", "--out", student,
                        "--no-progress"])
    assert rc == 0, err
    assert "-> 20 -> 10" in out
    cfg = yaml.safe_load((student / "config.yaml").read_text())
    native_steps = 26  # 0.25 s, 10 ms hop
    assert cfg["features"]["timesteps"] == 10
    assert cfg["model"]["options"]["dt"] == pytest.approx(0.01 * native_steps / 10)
    assert cfg["model"]["name"] == "spikescr" and cfg["train"]["epochs"] == 3
    rows = [json.loads(line) for line in (student / "history.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["stage"], r["timesteps"]) for r in rows] == [(1, 1, 20), (2, 2, 10), (3, 2, 10)]
    record = json.loads((student / "distill.json").read_text())
    assert record["curriculum"] == [20, 10] and record["epochs_per_stage"] == [1, 2]
    assert record["teacher_timesteps"] == native_steps and record["alpha"] == 0.7
    best = torch.load(student / "checkpoints" / "best.pt", weights_only=True)
    assert best["epoch"] in (2, 3)  # chosen in the last stage only
    assert (student / "checkpoints" / "last.pt").is_file()

    rc, out, err = run(["-q", "evaluate", student, "--no-progress", "--device", "cpu"])
    assert rc == 0, err
    assert "operations and energy per sample (T=10)" in out and "| embed.conv | Conv1d | real |" in out
    metrics = json.loads((student / "metrics.json").read_text())["test"]
    assert metrics["energy"]["timesteps"] == 10
    assert metrics["energy"]["total"]["energy_pj_fp32"] > 0
    assert "Operations and energy per sample" in (student / "report.md").read_text()

    # evaluate's accuracy is the student's on features resampled to 10 frames
    s_cfg, _, model, _ = load_run(student)
    frontend = build_frontend(s_cfg, 8000)
    X, y = extract_features(build_data(s_cfg, "test"), frontend, torch.device("cpu"))
    assert X.shape[1] == 10
    with torch.no_grad():
        acc = (model(X)[0].argmax(1) == y).double().mean().item()
    assert metrics["accuracy"] == pytest.approx(acc)


def test_distill_stage_epochs_and_weight_average(teacher, tmp_path):
    """--stage-epochs sets each stage's length; with train.ema_decay the checkpoints hold the
    stage's averaged weights (best.pt) next to the raw ones (last.pt), and validation scores
    the average."""
    from spikekws.train.runner import _evaluate_arrays, build_data, build_frontend, extract_features, load_run

    student = tmp_path / "s"
    rc, out, err = run(["-q", "distill", teacher, "--timesteps", "10", "--curriculum", "20,10",
                        "--stage-epochs", "1,2", "--out", student, "--no-progress",
                        "train.ema_decay=0.9"])
    assert rc == 0, err
    rows = [json.loads(line) for line in (student / "history.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["timesteps"]) for r in rows] == [(1, 20), (2, 10), (2, 10)]
    record = json.loads((student / "distill.json").read_text())
    assert record["epochs_per_stage"] == [1, 2] and record["ema_decay"] == 0.9
    last = torch.load(student / "checkpoints" / "last.pt", weights_only=True)
    assert last["ema"]["updates"] > 0 and last["epoch"] == 3
    raw, avg = last["model"], last["ema"]["model"]
    w = "blocks.0.attn.q.weight"
    assert not torch.equal(raw[w], avg[w])
    # the average restarts at every stage: its update count is the last stage's steps only
    steps_per_epoch = last["ema"]["updates"] / 2
    assert steps_per_epoch == int(steps_per_epoch) and steps_per_epoch > 0
    # the last epoch's validation accuracy is the averaged weights' accuracy
    s_cfg, _, model, _ = load_run(student, "last")
    assert torch.equal(model.state_dict()[w], avg[w])  # load_run prefers the average
    X, y = extract_features(build_data(s_cfg, "valid"), build_frontend(s_cfg, 8000), torch.device("cpu"))
    assert _evaluate_arrays(model, X, y, torch.device("cpu"), 64)["acc"] == pytest.approx(rows[-1]["valid_acc"])


def test_distill_init_from_teacher_starts_from_its_weights(teacher, tmp_path):
    student = tmp_path / "s"
    rc, _, err = run(["-q", "distill", teacher, "--timesteps", "26", "--epochs", "1", "--init",
                      "teacher", "--out", student, "train.lr=1e-12", "--no-scale-dt"])
    assert rc == 0, err
    t = torch.load(teacher / "checkpoints" / "best.pt", weights_only=True)["model"]
    s = torch.load(student / "checkpoints" / "best.pt", weights_only=True)["model"]
    w = "blocks.0.attn.q.weight"
    torch.testing.assert_close(s[w], t[w], atol=1e-6, rtol=0)


@pytest.mark.parametrize("extra,needle", [
    (["--timesteps", "10", "--curriculum", "20,12"], "must end at timesteps=10"),
    (["--timesteps", "10", "--curriculum", "20,x"], "--curriculum must be comma-separated"),
    (["--timesteps", "10", "--alpha", "1.5"], "alpha"),
    (["--timesteps", "10", "--temperature", "0"], "temperature"),
    (["--timesteps", "10", "--curriculum", "20,15,10", "--epochs", "2"], "at least"),
    (["--timesteps", "10", "--curriculum", "20,10", "--stage-epochs", "1"], "lists 1 stage"),
    (["--timesteps", "10", "--curriculum", "20,10", "--stage-epochs", "1,1", "--epochs", "3"],
     "must equal the sum"),
    (["--timesteps", "10", "train.ema_decay=1.0"], "ema_decay"),
    (["--timesteps", "10", "--init", "teacher", "model.hidden_sizes=[4]"], "init='teacher'"),
    (["--timesteps", "10", "data.root=/elsewhere"], "teacher's data"),
])
def test_distill_user_errors(teacher, tmp_path, extra, needle):
    assert_user_error(run(["distill", teacher, "--out", tmp_path / "x", "--epochs", "1", *extra]), needle)


def test_distill_out_must_differ_from_teacher(teacher):
    assert_user_error(run(["distill", teacher, "--out", teacher, "--timesteps", "5"]), "--out must differ")


def test_train_rejects_bad_feature_timesteps(teacher, tmp_path):
    root = yaml.safe_load((teacher / "config.yaml").read_text())["data"]["root"]
    res = run(["train", "--out", tmp_path / "r", f"data.root={root}", *TINY, "features.timesteps=0"])
    assert_user_error(res, "features.timesteps must be a positive integer")


def test_train_with_feature_timesteps_trains_at_that_length(teacher, tmp_path):
    root = yaml.safe_load((teacher / "config.yaml").read_text())["data"]["root"]
    run_dir = tmp_path / "r"
    rc, _, err = run(["-q", "train", "--out", run_dir, f"data.root={root}", *TINY,
                      "features.timesteps=7", "train.epochs=1"])
    assert rc == 0, err
    rc, out, err = run(["-q", "evaluate", run_dir, "--no-progress", "--device", "cpu"])
    assert rc == 0, err
    assert json.loads((run_dir / "metrics.json").read_text())["test"]["energy"]["timesteps"] == 7
