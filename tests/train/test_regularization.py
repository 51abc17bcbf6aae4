"""Weight averaging (train.ema_decay), label smoothing (train.label_smoothing) and mixup
(train.mixup)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import spikekws.train.runner as runner
from spikekws.train import classification_loss, load_checkpoint
from spikekws.train.ema import WeightEMA

from tinyrun import run_cli, tiny_args


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).double()


def test_ema_follows_the_recurrence_with_warm_up():
    net = _net()
    ema = WeightEMA(net, 0.9)
    ref = {k: v.clone() for k, v in net.state_dict().items()}
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for n in range(100):  # the warm-up reaches 0.9 after 80 updates
        net.train()
        loss = net(torch.randn(8, 4, dtype=torch.float64)).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update(net)
        d = min(0.9, (1 + n) / (10 + n))
        for k, v in net.state_dict().items():
            ref[k] = d * ref[k] + (1 - d) * v if v.is_floating_point() else v.clone()
    assert ema.updates == 100 and ema.current_decay() == 0.9
    got = ema.model.state_dict()
    for k, v in ref.items():
        assert torch.allclose(got[k], v, rtol=0, atol=1e-12), k
    # averaged weights are not the raw ones, and the average holds no gradient
    assert not torch.equal(got["0.weight"], net.state_dict()["0.weight"])
    assert all(not p.requires_grad for p in ema.model.parameters())
    # state round trip
    other = WeightEMA(_net(), 0.5)
    other.load_state_dict(ema.state_dict())
    assert other.decay == 0.9 and other.updates == 100
    assert all(torch.equal(other.model.state_dict()[k], v) for k, v in got.items())


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.1])
def test_ema_rejects_decays_outside_the_open_interval(decay):
    with pytest.raises(ValueError, match="ema_decay"):
        WeightEMA(_net(), decay)


def test_label_smoothing_matches_the_smoothed_cross_entropy():
    torch.manual_seed(1)
    logits = torch.randn(6, 5, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    eps, c = 0.2, 5
    logp = logits.log_softmax(1)
    target = torch.full_like(logp, eps / c)
    target[torch.arange(6), y] += 1 - eps
    expect = -(target * logp).sum(1).mean()
    assert math.isclose(classification_loss(logits, y, eps).item(), expect.item(), rel_tol=1e-12)
    assert classification_loss(logits, y, 0.0).item() == pytest.approx(
        -logp[torch.arange(6), y].mean().item(), rel=1e-12)
    with pytest.raises(ValueError, match="label_smoothing"):
        classification_loss(logits, y, 1.0)


def test_mixup_blends_the_batch_with_a_permutation_of_itself():
    x = torch.randn(16, 5, 3, dtype=torch.float64)
    mixed, (lam, perm) = runner.mixup_batch(x, 0.4, torch.Generator().manual_seed(3))
    assert 0.0 < lam < 1.0
    assert sorted(perm.tolist()) == list(range(16)) and not torch.equal(perm, torch.arange(16))
    assert torch.allclose(mixed, lam * x + (1 - lam) * x[perm], rtol=0, atol=1e-15)
    again, (lam2, perm2) = runner.mixup_batch(x, 0.4, torch.Generator().manual_seed(3))
    assert lam2 == lam and torch.equal(perm2, perm) and torch.equal(again, mixed)
    # Beta(alpha, alpha): small alpha keeps lam near 0 or 1, large alpha near 0.5
    gen = torch.Generator().manual_seed(0)
    small = [runner.mixup_batch(x, 0.1, gen)[1][0] for _ in range(200)]
    large = [runner.mixup_batch(x, 50.0, gen)[1][0] for _ in range(200)]
    assert sum(min(v, 1 - v) < 0.1 for v in small) > 120
    assert all(0.3 < v < 0.7 for v in large)


def test_mixup_changes_training_and_stays_reproducible(tmp_path, tiny_root):
    import json

    def history(name, *extra):
        run = tmp_path / name
        assert run_cli(["-q", "train", "--out", run, *tiny_args(tiny_root, "train.epochs=2", *extra)]).rc == 0
        rows = [json.loads(r) for r in (run / "history.jsonl").read_text().splitlines()]
        return [(r["train_loss"], r["valid_loss"]) for r in rows]

    plain, mixed = history("plain"), history("mixed", "train.mixup=0.4")
    assert mixed != plain
    assert history("mixed-again", "train.mixup=0.4") == mixed


@pytest.mark.parametrize("key,value", [("train.ema_decay", "1.0"), ("train.label_smoothing", "-0.1"),
                                       ("train.mixup", "-1")])
def test_bad_ema_or_smoothing_is_one_error_line(tmp_path, tiny_root, key, value):
    res = run_cli(["-q", "train", "--out", tmp_path / "run", *tiny_args(tiny_root, f"{key}={value}")])
    assert res.rc == 2
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and key in lines[0], res.err


EMA = ("train.ema_decay=0.8", "train.label_smoothing=0.1")


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory, tiny_root):
    run = tmp_path_factory.mktemp("ema") / "run"
    res = run_cli(["-q", "train", "--out", run, *tiny_args(tiny_root, *EMA)])
    assert res.rc == 0, res.err
    return run


def test_best_checkpoint_holds_the_averaged_weights_that_were_validated(ema_run):
    last = load_checkpoint(ema_run / "checkpoints" / "last.pt")
    best = load_checkpoint(ema_run / "checkpoints" / "best.pt")
    assert last["ema"]["updates"] == 3 * 3  # 3 epochs of 3 batches
    assert "ema" not in best
    raw, avg = last["model"], last["ema"]["model"]
    assert any(not torch.equal(raw[k], avg[k]) for k in raw if raw[k].is_floating_point())
    # load_run gives the average; evaluated on valid it reproduces the selected epoch's figures
    cfg, _, model, ckpt = runner.load_run(ema_run, "best")
    X, y = runner.extract_features(runner.build_data(cfg, "valid"),
                                   runner.build_frontend(cfg, 8000), torch.device("cpu"))
    res = runner._evaluate_arrays(model, X, y, torch.device("cpu"), 256)
    row = ckpt["history"][ckpt["epoch"] - 1]
    assert res["acc"] == row["valid_acc"]
    assert res["loss"] == pytest.approx(row["valid_loss"], rel=1e-6)
    _, _, last_model, _ = runner.load_run(ema_run, "last")
    assert all(torch.equal(last_model.state_dict()[k], avg[k]) for k in avg)


def test_resume_with_ema_is_bit_identical(tmp_path, tiny_root, ema_run, monkeypatch):
    run = tmp_path / "run"
    real_save = runner.save_checkpoint

    def save_then_stop(path, payload):
        real_save(path, payload)
        if path.name == "last.pt" and payload["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(runner, "save_checkpoint", save_then_stop)
    assert run_cli(["-q", "train", "--out", run, *tiny_args(tiny_root, *EMA)]).rc == 130
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 1
    monkeypatch.setattr(runner, "save_checkpoint", real_save)
    res = run_cli(["-q", "train", "--out", run, "--resume"])
    assert res.rc == 0, res.err
    for name in ("last.pt", "best.pt"):
        a, b = load_checkpoint(ema_run / "checkpoints" / name), load_checkpoint(run / "checkpoints" / name)
        assert a["epoch"] == b["epoch"]
        for k in a["model"]:
            assert torch.equal(a["model"][k], b["model"][k]), (name, k)
    ea = load_checkpoint(ema_run / "checkpoints" / "last.pt")["ema"]
    eb = load_checkpoint(run / "checkpoints" / "last.pt")["ema"]
    assert ea["updates"] == eb["updates"]
    assert all(torch.equal(ea["model"][k], eb["model"][k]) for k in ea["model"])


def test_resume_refuses_a_checkpoint_without_the_average(tmp_path, tiny_run_copy):
    from spikekws.train.checkpoint import save_checkpoint

    last = tiny_run_copy / "checkpoints" / "last.pt"
    ckpt = load_checkpoint(last)
    ckpt["config"]["train"]["ema_decay"] = 0.9
    ckpt["config"]["train"]["epochs"] = 4
    save_checkpoint(last, ckpt)
    res = run_cli(["-q", "train", "--out", tiny_run_copy, "--resume"])
    assert res.rc == 2
    assert "holds no weight average" in res.err and len(res.err.strip().splitlines()) == 1


def test_evaluate_can_return_the_per_clip_outputs(tiny_run_copy):
    import json

    rep = runner.evaluate_run(tiny_run_copy, split="test", device="cpu", keep_outputs=True)
    out, y = rep["outputs"], rep["targets"]
    assert out.shape == (rep["num_samples"], 3) and y.shape == (rep["num_samples"],)
    assert torch.allclose(out.exp().sum(1), torch.ones(len(y)), atol=1e-5)  # log-probabilities
    assert (out.argmax(1) == y).double().mean().item() == rep["accuracy"]
    written = json.loads((tiny_run_copy / "metrics.json").read_text())["test"]
    assert "outputs" not in written and "targets" not in written
    assert written["accuracy"] == rep["accuracy"]
    assert "outputs" not in runner.evaluate_run(tiny_run_copy, split="test", device="cpu", write=False)
