"""Data-parallel training over several processes (``torchrun``): one model replica per
process, gradients all-reduced by :class:`~torch.nn.parallel.DistributedDataParallel`.

``torchrun --nproc_per_node N -m spikekws.cli train CONFIG --out RUN`` (or the ``spikekws``
script under ``torchrun``) starts N processes with ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` set; :func:`setup` sees them and joins the process group (gloo on CPU,
nccl on CUDA, one GPU per local rank). Without them everything here is a no-op and training
runs as a single process.

Each global batch of the epoch's (seeded) order is split into ``WORLD_SIZE`` contiguous
shards, one per rank, and each rank's loss is weighted by its share of the batch, so that the
averaged gradient is the gradient of the whole batch's mean loss: N processes follow the
trajectory of one process with the same ``train.batch_size``, up to batch-norm statistics
(computed per shard) and dropout masks (seeded per rank and epoch). Only rank 0 writes
the run directory.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Tuple

import torch
from torch import nn

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass
class Context:
    """Where this process stands: ``rank`` of ``world_size`` (1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized: bool = False  # whether :func:`setup` created the process group

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_context() -> Context:
    """The torchrun placement from the environment (single process when unset)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ValueError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (set by torchrun); "
                         f"got {[os.environ.get(k) for k in ENV_VARS]}") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"need 0 <= RANK < WORLD_SIZE, got RANK={rank}, WORLD_SIZE={world}")
    return Context(rank=rank, world_size=world, local_rank=local)


def setup(device: torch.device) -> Tuple[Context, torch.device]:
    """Join the process group when started by torchrun; -> (context, this rank's device)."""
    import torch.distributed as dist

    ctx = env_context()
    if not ctx.enabled:
        return ctx, device
    if not ctx.is_main:  # one progress log (rank 0's); other ranks report only problems
        logger = logging.getLogger("spikekws")
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this torch build")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        ctx.initialized = True
    if dist.get_world_size() != ctx.world_size or dist.get_rank() != ctx.rank:
        raise RuntimeError("the process group does not match RANK / WORLD_SIZE")
    return ctx, device


def teardown(ctx: Context) -> None:
    if ctx.initialized:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
        ctx.initialized = False


def wrap(model: nn.Module, ctx: Context, device: torch.device) -> nn.Module:
    """The module to train: ``model`` itself, or a DDP wrapper of it (which shares its
    parameters, so ``model`` stays the one to save and evaluate)."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return DDP(model, device_ids=ids)


def shard(idx: torch.Tensor, ctx: Context) -> Tuple[torch.Tensor, float]:
    """This rank's part of a global batch ``idx`` and the weight of its mean loss.

    Weight = ``world_size * len(part) / len(idx)``: DDP averages the ranks' gradients, which
    then equal the gradient of the mean loss over the whole batch. A rank left without
    samples (a last batch smaller than the world) takes one sample with weight 0, so that it
    still joins the gradient all-reduce.
    """
    if not ctx.enabled:
        return idx, 1.0
    part = torch.tensor_split(idx, ctx.world_size)[ctx.rank]
    if len(part) == 0:
        return idx[:1], 0.0
    return part, ctx.world_size * len(part) / len(idx)


def all_reduce_sum(values, ctx: Context, device: torch.device):
    """Sums a list of numbers over ranks (identity for a single process)."""
    if not ctx.enabled:
        return list(values)
    import torch.distributed as dist

    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def average_buffers(model: nn.Module, ctx: Context) -> None:
    """Averages floating-point buffers (batch-norm running statistics) over ranks, so every
    replica evaluates and saves the same model."""
    if not ctx.enabled:
        return
    import torch.distributed as dist

    for buf in model.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf)
            buf.div_(ctx.world_size)


def seed_offset(ctx: Context) -> int:
    """Added to the per-epoch seeds of dropout and augmentation: distinct per rank, 0 on
    rank 0 (a single process keeps its seeds)."""
    return 7_654_321 * ctx.rank


__all__ = ["Context", "env_context", "setup", "teardown", "wrap", "shard", "all_reduce_sum",
           "average_buffers", "seed_offset"]
