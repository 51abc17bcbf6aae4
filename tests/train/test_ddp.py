"""Data-parallel training under torchrun (2 CPU processes, gloo) on the tiny dataset."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from spikekws.train import distributed
from spikekws.train.checkpoint import load_checkpoint
from tinyrun import tiny_args

# Run by each torchrun process: the CLI's train command, then this rank's final weights
# (the module that DDP wrapped) saved next to the run for comparison.
SCRIPT = textwrap.dedent("""
    import sys
    import torch
    from spikekws import cli
    from spikekws.train import distributed

    seen = {}
    wrap = distributed.wrap

    def recording_wrap(model, ctx, device):
        seen.update(model=model, ctx=ctx, wrapped=wrap(model, ctx, device))
        return seen["wrapped"]

    distributed.wrap = recording_wrap
    rc = cli.main(sys.argv[2:])
    ctx = seen["ctx"]
    torch.save({"rank": ctx.rank, "world": ctx.world_size,
                "ddp": type(seen["wrapped"]).__name__,
                "state": seen["model"].state_dict()}, f"{sys.argv[1]}/rank{ctx.rank}.pt")
    sys.exit(rc)
""")


def test_shard_splits_batches_and_weights_the_loss():
    ctx = distributed.Context(rank=0, world_size=2)
    idx = torch.arange(10, 15)
    parts = [distributed.shard(idx, distributed.Context(rank=r, world_size=2)) for r in (0, 1)]
    assert torch.equal(torch.cat([p for p, _ in parts]), idx)
    assert [w for _, w in parts] == [pytest.approx(1.2), pytest.approx(0.8)]
    # Weighted local means, averaged over ranks = the mean over the whole batch.
    x = torch.randn(15)
    mean = sum(w * x[p].mean() for p, w in parts) / ctx.world_size
    assert mean.item() == pytest.approx(x[idx].mean().item(), rel=1e-6)
    # A rank without samples still takes part, with weight 0.
    part, w = distributed.shard(torch.tensor([7]), distributed.Context(rank=1, world_size=2))
    assert part.tolist() == [7] and w == 0.0
    single = distributed.shard(idx, distributed.Context())
    assert single[0] is idx and single[1] == 1.0


def test_env_context(monkeypatch):
    for k in distributed.ENV_VARS:
        monkeypatch.delenv(k, raising=False)
    assert not distributed.env_context().enabled
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    ctx = distributed.env_context()
    assert ctx.enabled and not ctx.is_main and ctx.rank == 1
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="RANK"):
        distributed.env_context()


def test_two_processes_train_one_consistent_model(tiny_root, tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in distributed.ENV_VARS}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(tmp_path), "-q", "train", "--out", str(run),
           *tiny_args(tiny_root, "train.epochs=5", "train.lr=0.05", "model.dropout=0",
                       "train.batch_size=12")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # one summary line for the run, from rank 0 (the CLI runs in both processes)
    assert proc.stdout.count("trained ") == 1, proc.stdout

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world"] == 2 for r in ranks)
    assert all(r["ddp"] == "DistributedDataParallel" for r in ranks)
    s0, s1 = ranks[0]["state"], ranks[1]["state"]
    assert s0.keys() == s1.keys()
    for k in s0:  # parameters and batch-norm statistics, bit for bit
        assert torch.equal(s0[k], s1[k]), k
    # Rank 0 wrote the run; its checkpoint holds the same weights.
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    for k, v in ckpt["model"].items():
        assert torch.equal(v, s0[k]), k
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    for h in history:
        assert 0.0 <= h["train_acc"] <= 1.0 and 0.0 <= h["valid_acc"] <= 1.0
        assert torch.isfinite(torch.tensor(h["train_loss"]))
    # Training statistics are summed over both ranks: every clip once per epoch (12 clips,
    # 3 classes), and the model learns.
    assert all(abs(h["train_acc"] * 12 - round(h["train_acc"] * 12)) < 1e-9 for h in history)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert max(h["train_acc"] for h in history) >= 0.5  # chance: 1/3
