"""Running an experiment from a :class:`~spikekws.config.Config`: train, resume, evaluate.

Run directory layout::

    RUN/config.yaml            resolved config (``spikekws evaluate RUN`` needs nothing else)
    RUN/checkpoints/last.pt    written atomically after every epoch (resume point)
    RUN/checkpoints/best.pt    best epoch on the validation split (never on test)
    RUN/history.jsonl          one JSON line per epoch
    RUN/metrics.json           evaluation results per split
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from ..config import Config, config_from_dict, config_to_dict, save_config
from ..config.schema import atomic_write_text
from . import distributed
from .checkpoint import load_checkpoint, save_checkpoint
from .losses import classification_loss, firing_rate_regularizer
from .metrics import classification_report

log = logging.getLogger("spikekws.train")

PathLike = Union[str, Path]


# --------------------------------------------------------------------------- building
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"train.device must be auto, cpu, cuda or cuda:N; got {name!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name!r} but no CUDA device is available")
    return dev


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def build_data(cfg: Config, split: str):
    from ..data import build_dataset
    return build_dataset(cfg.data.name, cfg.data.root, split, **cfg.data.options)


def build_info(cfg: Config):
    from ..data import dataset_info
    return dataset_info(cfg.data.name, cfg.data.root, **cfg.data.options)


def build_frontend(cfg: Config, sample_rate: int, kind: str = "audio") -> nn.Module:
    from ..features import build_features
    if kind == "spikes":  # spike datasets yield binned events [T, C]: nothing to extract
        frontend = build_features("none")
    else:
        frontend = build_features(cfg.features.name, sample_rate=sample_rate, **cfg.features.options)
    if cfg.features.timesteps is not None:  # same clip, fewer (longer) frames
        from .distill import TimeResample
        frontend = nn.Sequential(frontend, TimeResample(cfg.features.timesteps))
    return frontend


def build_network(cfg: Config, in_features: int, num_classes: int) -> nn.Module:
    from ..models import build_model
    m = cfg.model
    return build_model(m.name, in_features, num_classes, neuron=m.neuron,
                       hidden_sizes=m.hidden_sizes, dropout=m.dropout,
                       normalization=m.normalization, bidirectional=m.bidirectional,
                       surrogate=m.surrogate, **m.options)


def build_augment(options: Dict[str, Any]):
    """Training-time feature augmentation from ``train.augment`` (None when empty)."""
    if not options:
        return None
    from ..features.augment import FeatureAugment
    try:
        return FeatureAugment(**options)
    except TypeError as e:
        raise TypeError(f"train.augment: {e}") from None


@torch.no_grad()
def extract_features(dataset, frontend: nn.Module, device: torch.device, batch_size: int = 256,
                     progress: bool = False, desc: str = "features") -> Tuple[torch.Tensor, torch.Tensor]:
    """Run the front-end over a whole split once: -> (X [N, T, F] on CPU, y [N])."""
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    xs, ys = [], []
    for wave, label in tqdm(loader, desc=desc, disable=None if progress else True, leave=False, unit="batch"):
        xs.append(frontend(wave.to(device)).cpu())
        ys.append(label)
    if not xs:
        raise ValueError(f"the {getattr(dataset, 'split', '')} split of the dataset is empty")
    return torch.cat(xs), torch.cat(ys).long()


def _batches(n: int, batch_size: int, order: Optional[torch.Tensor] = None) -> Iterator[torch.Tensor]:
    idx = order if order is not None else torch.arange(n)
    for i in range(0, n, batch_size):
        yield idx[i:i + batch_size]


@torch.no_grad()
def predict(model: nn.Module, X: torch.Tensor, device: torch.device, batch_size: int = 256
            ) -> Tuple[torch.Tensor, torch.Tensor]:
    """-> (outputs [N, C], per-layer firing rates [L] averaged over all samples)."""
    model.eval()
    outs, rate_sum, n = [], None, 0
    for idx in _batches(len(X), batch_size):
        out, rates = model(X[idx].to(device))
        outs.append(out.float().cpu())
        r = rates.detach().double().cpu() * len(idx)
        rate_sum = r if rate_sum is None else rate_sum + r
        n += len(idx)
    return torch.cat(outs), (rate_sum / n).float()


def _evaluate_arrays(model, X, y, device, batch_size) -> Dict[str, Any]:
    out, rates = predict(model, X, device, batch_size)
    loss = classification_loss(out, y).item()
    acc = (out.argmax(1) == y).double().mean().item()
    return {"loss": loss, "acc": acc, "firing_rates": [round(r, 6) for r in rates.tolist()],
            "outputs": out}


# --------------------------------------------------------------------------- training
def _check_writable(run_dir: Path, probe_bytes: int = 1 << 20) -> None:
    """Write, fsync and delete a probe file of ``probe_bytes`` in the run directory."""
    probe = run_dir / ".write-test"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            chunk = b"\0" * min(probe_bytes, 1 << 20)
            left = probe_bytes
            while left > 0:
                f.write(chunk[:left])
                left -= len(chunk)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise ValueError(f"run directory {run_dir} is not writable: {e.strerror or e}") from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass


def checkpoint_bytes_estimate(model: nn.Module) -> int:
    """Bytes that checkpointing needs at its peak: last.pt (weights, room for a weight
    average when train.ema_decay is set, two Adam moments) and best.pt (weights), each
    next to its temporary copy during the atomic replace."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return 2 * (3 * weights + 2 * params) + (1 << 20)  # 3: weights, best and the EMA's


def _check_disk_space(run_dir: Path, need: int) -> None:
    free = shutil.disk_usage(run_dir).free
    if free < need:
        raise ValueError(f"not enough free disk space for run directory {run_dir}: "
                         f"{free / 2**20:.1f} MiB free, checkpoints need about "
                         f"{need / 2**20:.1f} MiB")


def _make_optimizer(cfg: Config, model: nn.Module):
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    kind = cfg.train.scheduler
    if kind == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="max", factor=cfg.train.scheduler_factor, patience=cfg.train.scheduler_patience)
    elif kind == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.train.epochs, 1))
    elif kind == "none":
        sched = None
    else:
        raise ValueError(f"train.scheduler must be plateau, cosine or none; got {kind!r}")
    return opt, sched


def _check_names(cfg: Config) -> None:
    from ..models import MODELS
    from ..neurons import NEURONS, SURROGATES
    MODELS.get(cfg.model.name)
    if cfg.model.name.lower() == "snn":  # the other models ignore neuron and surrogate
        NEURONS.get(cfg.model.neuron)
        SURROGATES.get(cfg.model.surrogate)


def _validate_train_config(cfg: Config) -> None:
    t = cfg.train
    if t.epochs < 1:
        raise ValueError(f"train.epochs must be >= 1, got {t.epochs}")
    if t.batch_size < 1:
        raise ValueError(f"train.batch_size must be >= 1, got {t.batch_size}")
    if not t.lr > 0:
        raise ValueError(f"train.lr must be > 0, got {t.lr}")
    if not 0.0 <= t.label_smoothing < 1.0:
        raise ValueError(f"train.label_smoothing must be in [0, 1), got {t.label_smoothing}")
    if not t.mixup >= 0.0:
        raise ValueError(f"train.mixup must be >= 0 (0 turns it off), got {t.mixup}")
    if not 0.0 <= t.ema_decay < 1.0:
        raise ValueError(f"train.ema_decay must be in [0, 1) (0 turns it off), got {t.ema_decay}")


def train_epoch(model: nn.Module, opt, X: torch.Tensor, y: torch.Tensor, t, epoch: int,
                device: torch.device, augment=None, loss_fn: Optional[Callable] = None,
                desc: Optional[str] = None,
                dctx: Optional[distributed.Context] = None, ema=None) -> Tuple[float, int, int]:
    """One training epoch over ``(X, y)`` with the settings ``t`` (a ``TrainConfig``).

    -> (summed loss, correct predictions, samples). ``loss_fn(out, y, idx)`` replaces the
    classification loss (distillation passes one that reads the teacher's outputs at
    ``idx``); the firing-rate regulariser is added to it. ``ema`` (a
    :class:`~spikekws.train.ema.WeightEMA`) is updated after every optimiser step.
    Per-epoch seeding makes an epoch's randomness (shuffle, dropout, augmentation)
    independent of what ran before it, so a resumed run is bit-identical to an
    uninterrupted one.

    Under torchrun (``dctx`` enabled, ``model`` wrapped in DDP) each rank trains on its shard
    of every batch; the returned sums are over all ranks.
    """
    from tqdm.auto import tqdm

    dctx = dctx or distributed.Context()
    seed_offset = distributed.seed_offset(dctx)  # 0 on rank 0 and for a single process
    torch.manual_seed(t.seed * 1_000_003 + epoch + seed_offset)
    order = torch.randperm(len(X), generator=torch.Generator().manual_seed(t.seed * 7919 + epoch))
    model.train()
    aug_gen = torch.Generator().manual_seed(t.seed * 104_729 + epoch + seed_offset)
    loss_sum, correct, seen = 0.0, 0, 0
    bar = tqdm(list(_batches(len(X), t.batch_size, order)), desc=desc or f"epoch {epoch + 1}/{t.epochs}",
               disable=None if t.progress else True, leave=False, unit="batch")
    for idx in bar:
        idx, weight = distributed.shard(idx, dctx)  # this rank's part of the batch
        xb, yb = X[idx].to(device), y[idx].to(device)
        if augment is not None:
            xb = augment(xb, aug_gen)
        mix = None
        if t.mixup > 0 and loss_fn is None:
            xb, mix = mixup_batch(xb, t.mixup, aug_gen)
        out, rates = model(xb)
        if loss_fn is not None:
            loss = loss_fn(out, yb, idx)
        else:
            smooth = t.label_smoothing
            loss = classification_loss(out, yb, smooth)
            if mix is not None:
                lam, perm = mix
                loss = lam * loss + (1.0 - lam) * classification_loss(out, yb[perm], smooth)
        total = loss + t.reg_factor * firing_rate_regularizer(rates, t.reg_fmin, t.reg_fmax)
        if weight != 1.0:  # DDP averages over ranks: the whole batch's mean loss
            total = weight * total
        opt.zero_grad(set_to_none=True)
        total.backward()
        if t.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        if ema is not None:
            ema.update(model)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}; "
                                     f"lower train.lr or enable train.grad_clip")
        n_local = len(idx) if weight > 0 else 0
        loss_sum += loss.item() * n_local
        correct += int((out.argmax(1) == yb).sum().item()) if n_local else 0
        seen += n_local
        bar.set_postfix(loss=f"{loss_sum / max(seen, 1):.3f}", acc=f"{correct / max(seen, 1):.3f}")
    if dctx.enabled:
        loss_sum, correct, seen = distributed.all_reduce_sum([loss_sum, correct, seen], dctx, device)
        correct, seen = int(correct), int(seen)
    return loss_sum, correct, seen


def mixup_batch(x: torch.Tensor, alpha: float, gen: torch.Generator
                ) -> Tuple[torch.Tensor, Tuple[float, torch.Tensor]]:
    """Mixup of a batch ``x [B, ...]`` with a permutation of itself:
    ``lam * x + (1 - lam) * x[perm]`` with ``lam ~ Beta(alpha, alpha)``, both drawn from
    ``gen``. -> (mixed batch, (lam, perm)); the loss is mixed with the same weights."""
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
    return lam * x + (1.0 - lam) * x[perm], (lam, perm)


def redraws_features(train_data, cfg: Config) -> bool:
    """Whether the training features are extracted anew every epoch: waveform augmentation
    is drawn per (epoch, clip), so features cached once would freeze the first epoch's
    draws; ``train.cache_features=false`` asks for it."""
    return getattr(train_data, "augment", None) is not None or not cfg.train.cache_features


def epoch_features(train_data, frontend, device: torch.device, t, epoch: int, redraw: bool,
                   desc: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """The training split's features for ``epoch`` (its augmentation draws when ``redraw``)."""
    if redraw and hasattr(train_data, "set_epoch"):
        train_data.set_epoch(epoch)
    return extract_features(train_data, frontend, device, t.eval_batch_size, t.progress, desc)


def step_scheduler(sched, val: Dict[str, Any]) -> None:
    """One epoch's scheduler step: on the validation accuracy for ReduceLROnPlateau."""
    if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
        sched.step(val["acc"])
    elif sched is not None:
        sched.step()


def epoch_states(meta: Dict[str, Any], model: nn.Module, eval_model: nn.Module, opt, sched,
                 ema, **fields) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Checkpoint contents after an epoch: (last.pt: the trained weights, optimiser,
    scheduler and weight average, to resume; best.pt: the evaluated weights, ``eval_model``,
    which is the average when there is one). ``fields`` (epoch, history, best, ...) go
    into both."""
    state = dict(meta, model=model.state_dict(), **fields, optimizer=opt.state_dict(),
                 scheduler=sched.state_dict() if sched is not None else None,
                 ema=ema.state_dict() if ema is not None else None)
    best_state = {k: v for k, v in state.items() if k not in ("optimizer", "scheduler", "ema")}
    best_state["model"] = eval_model.state_dict()
    return state, best_state


def improves(val: Dict[str, Any], best: Dict[str, Any]) -> bool:
    """Whether a validation result beats the best so far: higher accuracy, or the same
    accuracy with a lower loss. Small validation splits saturate (every epoch after the
    first few scores 100 %); without the loss as tie-break the first such epoch would be
    kept, however under-trained."""
    if val["acc"] != best["valid_acc"]:
        return val["acc"] > best["valid_acc"]
    return val["loss"] < best.get("valid_loss", math.inf)


def start_epoch_of(ckpt: Optional[Dict[str, Any]]) -> int:
    """The epoch a run starts (0) or resumes at (the checkpoint's completed epochs)."""
    return int(ckpt["epoch"]) if ckpt is not None else 0


def train_run(cfg: Config, run_dir: PathLike, resume: bool = False) -> Dict[str, Any]:
    """Train according to ``cfg`` into ``run_dir``; returns the summary of the best epoch.

    With ``resume=True`` training continues from ``run_dir/checkpoints/last.pt`` with the
    config stored in the run, and reproduces bit-identically what an uninterrupted run
    would have computed (per-epoch seeding of shuffling and dropout).
    """
    run_dir = Path(run_dir)
    last_path = run_dir / "checkpoints" / "last.pt"
    ckpt = None
    if resume:
        if not last_path.is_file():
            raise FileNotFoundError(f"cannot resume: no checkpoint at {last_path}")
        ckpt = load_checkpoint(last_path)
        cfg = config_from_dict(ckpt["config"])
    elif last_path.exists():
        raise ValueError(f"run directory {run_dir} already holds a run; use --resume to continue "
                         f"it or choose another --out")
    _validate_train_config(cfg)
    _check_writable(run_dir)
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    device = resolve_device(cfg.train.device)
    dctx, device = distributed.setup(device)  # under torchrun: join the process group
    seed_everything(cfg.train.seed)

    _check_names(cfg)  # fail on a misspelt name before minutes of feature extraction
    if cfg.train.tensorboard:
        from .tracking import require_tensorboard
        require_tensorboard()
    augment = build_augment(cfg.train.augment)
    info = build_info(cfg)
    frontend = build_frontend(cfg, info.sample_rate, info.kind).to(device)
    t0 = time.time()
    train_data = build_data(cfg, "train")
    redraw = redraws_features(train_data, cfg)
    if redraw:
        log.info("training features are re-extracted every epoch (%s)",
                 "waveform augmentation" if getattr(train_data, "augment", None) is not None
                 else "train.cache_features is false")
    Xtr, ytr = epoch_features(train_data, frontend, device, cfg.train, start_epoch_of(ckpt),
                              redraw, "features train")
    Xva, yva = extract_features(build_data(cfg, "valid"), frontend, device,
                                cfg.train.eval_batch_size, cfg.train.progress, "features valid")
    log.info("features: train %s, valid %s (%.1fs)", tuple(Xtr.shape), tuple(Xva.shape), time.time() - t0)

    torch.manual_seed(cfg.train.seed)
    model = build_network(cfg, Xtr.shape[-1], info.num_classes).to(device)
    opt, sched = _make_optimizer(cfg, model)
    ema = None
    if cfg.train.ema_decay > 0:
        from .ema import WeightEMA
        ema = WeightEMA(model, cfg.train.ema_decay)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    need = checkpoint_bytes_estimate(model)
    _check_disk_space(run_dir, need)
    _check_writable(run_dir, min(need // 2, 256 << 20))  # about one last.pt

    start_epoch, history = 0, []
    best = {"epoch": -1, "valid_acc": -1.0}
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        if sched is not None and ckpt.get("scheduler") is not None:
            sched.load_state_dict(ckpt["scheduler"])
        if ema is not None:
            if ckpt.get("ema") is None:
                raise ValueError(f"cannot resume {run_dir}: train.ema_decay is set but "
                                 f"{last_path} holds no weight average")
            ema.load_state_dict(ckpt["ema"])
        start_epoch, history, best = ckpt["epoch"], list(ckpt["history"]), dict(ckpt["best"])
        if dctx.is_main:
            atomic_write_text(run_dir / "history.jsonl", "".join(json.dumps(r) + "\n" for r in history))
        log.info("resuming %s at epoch %d", run_dir, start_epoch + 1)
    else:
        if dctx.is_main:
            save_config(cfg, run_dir / "config.yaml")
        log.info("model %s/%s: %d trainable parameters", cfg.model.name, cfg.model.neuron, n_params)

    train_model = distributed.wrap(model, dctx, device)  # DDP under torchrun, else model
    meta = {"config": config_to_dict(cfg), "info": asdict(info), "in_features": int(Xtr.shape[-1]),
            "num_params": n_params}
    from .tracking import make_logger

    t = cfg.train
    tb = make_logger(t.tensorboard, run_dir, start_epoch) if dctx.is_main else None
    for epoch in range(start_epoch, t.epochs):
        t_epoch = time.time()
        if redraw and epoch != start_epoch:
            Xtr, ytr = epoch_features(train_data, frontend, device, t, epoch, redraw,
                                      f"features train, epoch {epoch + 1}")
        loss_sum, correct, seen = train_epoch(train_model, opt, Xtr, ytr, t, epoch, device, augment,
                                              dctx=dctx, ema=ema)
        distributed.average_buffers(model, dctx)  # ranks evaluate and save the same model
        if ema is not None:
            distributed.average_buffers(ema.model, dctx)
        eval_model = ema.model if ema is not None else model  # what best.pt will hold
        val = _evaluate_arrays(eval_model, Xva, yva, device, t.eval_batch_size)
        lr = opt.param_groups[0]["lr"]
        step_scheduler(sched, val)
        row = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": correct / seen,
               "valid_loss": val["loss"], "valid_acc": val["acc"],
               "firing_rates": val["firing_rates"], "lr": lr, "time_s": time.time() - t_epoch}
        history.append(row)
        if tb is not None:
            tb.log_epoch(row)
        improved = improves(val, best)
        if improved:
            best = {"epoch": epoch + 1, "valid_acc": val["acc"], "valid_loss": val["loss"]}
        state, best_state = epoch_states(meta, model, eval_model, opt, sched, ema,
                                         epoch=epoch + 1, history=history, best=best)
        if improved and dctx.is_main:
            save_checkpoint(run_dir / "checkpoints" / "best.pt", best_state)
        if dctx.is_main:  # only rank 0 writes the run directory
            save_checkpoint(last_path, state)
            atomic_write_text(run_dir / "history.jsonl", "".join(json.dumps(r) + "\n" for r in history))
        log.info("epoch %d/%d  loss %.4f  acc %.4f | valid loss %.4f  acc %.4f%s | rates %s | "
                 "lr %.2e | %.1fs", epoch + 1, t.epochs, row["train_loss"], row["train_acc"],
                 val["loss"], val["acc"], " *" if improved else "  ",
                 "/".join(f"{r:.3f}" for r in val["firing_rates"]), lr, row["time_s"])
    if tb is not None:
        tb.close()
    distributed.teardown(dctx)
    return {"run_dir": str(run_dir), "best": best, "epochs": t.epochs, "num_params": n_params}


# --------------------------------------------------------------------------- evaluation
def load_run(run_dir: PathLike, checkpoint: str = "best"):
    """-> (cfg, info dict, model on CPU in eval mode, checkpoint dict)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    path = run_dir / "checkpoints" / f"{checkpoint}.pt"
    ckpt = load_checkpoint(path)
    cfg = config_from_dict(ckpt["config"])
    model = build_network(cfg, ckpt["in_features"], len(ckpt["info"]["labels"]))
    # With train.ema_decay, best.pt holds the averaged weights and last.pt the raw ones
    # next to the average: either way the averaged weights are the run's model.
    ema = ckpt.get("ema")
    model.load_state_dict(ema["model"] if ema else ckpt["model"])
    model.eval()
    return cfg, ckpt["info"], model, ckpt


def evaluate_run(run_dir: PathLike, split: str = "test", dataset: Optional[str] = None,
                 root: Optional[str] = None, options: Optional[Dict[str, Any]] = None,
                 checkpoint: str = "best", device: str = "auto", progress: bool = False,
                 write: bool = True, keep_outputs: bool = False) -> Dict[str, Any]:
    """Evaluate a trained run on a split; writes metrics.json, confusion PNG and report.md.

    ``keep_outputs`` adds the per-clip model outputs (``"outputs"``, log-probabilities
    ``[N, C]``) and true labels (``"targets"``, ``[N]``) to the returned report as tensors;
    they are not written to metrics.json."""
    run_dir = Path(run_dir)
    cfg, info, model, ckpt = load_run(run_dir, checkpoint)
    if dataset is not None:
        cfg.data.name = dataset
    if root is not None:
        cfg.data.root = root
    if options is not None:
        cfg.data.options = dict(options)
    dev = resolve_device(device)
    data_info = build_info(cfg)
    if list(data_info.labels) != list(info["labels"]):
        raise ValueError(f"dataset {cfg.data.name!r} at {cfg.data.root} has labels "
                         f"{list(data_info.labels)[:5]}... which differ from the run's "
                         f"{list(info['labels'])[:5]}...")
    frontend = build_frontend(cfg, data_info.sample_rate, data_info.kind).to(dev)
    X, y = extract_features(build_data(cfg, split), frontend, dev, cfg.train.eval_batch_size,
                            progress, f"features {split}")
    model.to(dev)
    out, rates = predict(model, X, dev, cfg.train.eval_batch_size)
    preds = out.argmax(1)
    report = classification_report(y, preds, len(info["labels"]), info["labels"])
    report.update({
        "split": split, "dataset": cfg.data.name, "root": str(cfg.data.root),
        "checkpoint": checkpoint, "epoch": ckpt["epoch"],
        "firing_rates": [float(r) for r in rates.tolist()],
        "num_params": ckpt.get("num_params"),
    })
    from .energy import energy_report
    report["energy"] = energy_report(model, X, dev, cfg.train.eval_batch_size)
    if write:
        write_metrics(run_dir, split, report)
        from .report import write_report
        write_report(run_dir, split, report, ckpt.get("history", []))
    if keep_outputs:
        report.update(outputs=out, targets=y)
    return report


def write_metrics(run_dir: Path, split: str, report: Dict[str, Any]) -> None:
    path = Path(run_dir) / "metrics.json"
    data: Dict[str, Any] = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except (ValueError, OSError):
            data = {}
    data[split] = report
    atomic_write_text(path, json.dumps(data, indent=2))
