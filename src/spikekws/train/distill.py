"""Knowledge distillation to fewer time steps, with a time-step curriculum (KDCL).

A trained **teacher** run (any model) sees each clip with its own number of frames
``T_teacher``. The **student** (by default the teacher's config: same architecture, fresh
weights) sees the same clip with fewer frames ``T``, and learns from

    loss = alpha * tau^2 * KL(softmax(z_teacher / tau) || softmax(z_student / tau))
           + (1 - alpha) * CE(z_student, y)

(``tau`` is the temperature, ``--temperature``) plus the usual firing-rate regulariser.

**How T time steps are obtained.** The front-end computes its frames as configured (e.g.
10 ms hop: 101 frames for 1 s); :class:`TimeResample` then average-pools the sequence along
time to exactly ``T`` frames (adaptive average pooling; upsampling repeats frames). This is
the same clip seen with a longer hop (1 s over 40 steps = 25 ms per step). The count is
stored in the run's config as ``features.timesteps``, which :func:`~.runner.build_frontend`
applies, so ``spikekws evaluate RUN`` (and ``spikekws train ... features.timesteps=40``)
resample identically. Spike datasets are pooled the same way (the result holds spike
rates, not binary spikes).

Because each step then spans more time, the student's neurons get a proportionally larger
``dt`` (``model.options.dt = dt_teacher * T_teacher / T``), so learned time constants keep
their meaning in seconds (``scale_dt=False`` keeps ``dt``).

**Curriculum.** ``curriculum=[100, 70, 40]`` trains in stages at 100, 70, then 40 steps;
the epochs are split evenly over the stages (the remainder goes to the last one), or as
``stage_epochs`` lists them (e.g. ``[5, 5, 20]``: short warm-up stages, then the final
step count trained as long as a direct distillation would be); each stage starts from the
previous stage's student with a fresh optimiser and schedule. The first stage starts from
scratch (``init="scratch"``) or from the teacher's weights (``init="teacher"``, same
architecture only). ``best.pt`` is chosen on the validation split among the epochs of the
last stage only, i.e. at the final ``T``.

Waveform augmentation (``data.options.augment``) is drawn anew every epoch, as in
training: the training clips are re-extracted each epoch and the teacher's targets are
recomputed on that epoch's draws (one teacher inference pass over the training split per
epoch), so teacher and student always see the same audio.

With ``train.ema_decay`` set, each stage keeps an exponential moving average of its
weights (:class:`~spikekws.train.ema.WeightEMA`, restarted at every stage): validation,
``best.pt`` and the next stage's starting point use the averaged weights.

The run directory is a normal run (config.yaml, checkpoints/best.pt and last.pt,
history.jsonl with ``stage`` and ``timesteps`` per epoch) plus ``distill.json``.
"""
from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger("spikekws.train")

PathLike = Union[str, Path]
_INITS = ("scratch", "teacher")


class TimeResample(nn.Module):
    """Resample features along time to ``steps`` frames: ``x [B, T, F] -> [B, steps, F]``.

    Adaptive average pooling (``F.interpolate(mode="area")``): each output frame is the
    mean of the input frames it covers; with ``steps > T`` frames are repeated.
    """

    def __init__(self, steps: int) -> None:
        super().__init__()
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"features.timesteps must be a positive integer, got {steps!r}")
        self.steps = steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"expected features [batch, time, features], got {list(x.shape)}")
        if x.shape[1] == self.steps:
            return x
        return F.interpolate(x.transpose(1, 2), size=self.steps, mode="area").transpose(1, 2)

    def extra_repr(self) -> str:
        return f"steps={self.steps}"


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor,
            temperature: float = 4.0, alpha: float = 0.5) -> torch.Tensor:
    """``alpha * tau^2 * KL(p_teacher^tau || p_student^tau) + (1 - alpha) * CE(student, y)``.

    student, teacher: [B, C] logits or log-probabilities (softmax is shift-invariant, so
    both work); targets: [B] class indices. KL is averaged over the batch.
    """
    log_s = F.log_softmax(student / temperature, dim=-1)
    log_t = F.log_softmax(teacher.detach() / temperature, dim=-1)
    kl = F.kl_div(log_s, log_t, log_target=True, reduction="batchmean")
    return alpha * temperature ** 2 * kl + (1.0 - alpha) * F.cross_entropy(student, targets)


def parse_curriculum(timesteps: int, curriculum: Optional[Sequence[int]] = None) -> List[int]:
    """The stages' step counts; the last must equal ``timesteps`` (default: one stage)."""
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
        raise ValueError(f"timesteps must be a positive integer, got {timesteps!r}")
    if curriculum is None or len(curriculum) == 0:
        return [timesteps]
    stages = []
    for c in curriculum:
        if isinstance(c, bool) or not isinstance(c, int) or c < 1:
            raise ValueError(f"curriculum must list positive integers (time steps), got {list(curriculum)}")
        stages.append(int(c))
    if stages[-1] != timesteps:
        raise ValueError(f"curriculum must end at timesteps={timesteps}, got {stages}")
    return stages


def split_epochs(epochs: int, stages: int) -> List[int]:
    """Even split of ``epochs`` over ``stages``; the remainder goes to the last stage."""
    if epochs < stages:
        raise ValueError(f"epochs ({epochs}) must be at least the number of curriculum stages ({stages})")
    per = [epochs // stages] * stages
    per[-1] += epochs - sum(per)
    return per


def stage_epoch_list(stage_epochs: Sequence[int], stages: int) -> List[int]:
    """Validates explicit epochs per curriculum stage (one positive integer per stage)."""
    out = list(stage_epochs)
    if len(out) != stages:
        raise ValueError(f"stage_epochs lists {len(out)} stage(s) but the curriculum has {stages}")
    for e in out:
        if isinstance(e, bool) or not isinstance(e, int) or e < 1:
            raise ValueError(f"stage_epochs must list positive integers, got {out}")
    return [int(e) for e in out]


def _student_config(teacher_cfg, student_config: Optional[PathLike], overrides: Sequence[str]):
    from ..config import config_from_dict, config_to_dict
    from ..config.schema import apply_overrides, read_yaml

    data = read_yaml(student_config) if student_config is not None else config_to_dict(teacher_cfg)
    data = copy.deepcopy(data)
    apply_overrides(data, list(overrides))
    cfg = config_from_dict(data)
    for section in ("data", "features"):
        a = dict(asdict(getattr(cfg, section)), timesteps=None) if section == "features" else asdict(cfg.data)
        b = (dict(asdict(teacher_cfg.features), timesteps=None) if section == "features"
             else asdict(teacher_cfg.data))
        if a != b:
            raise ValueError(f"the student must read the teacher's {section} settings "
                             f"({b}); got {a}")
    if cfg.train.augment:
        raise ValueError("distill does not support train.augment (the teacher's targets are "
                         "computed once on the unaugmented clips); remove train.augment")
    return cfg


def _load_teacher_weights(model: nn.Module, state_dict: Dict[str, Any]) -> None:
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as e:
        reason = " ".join(str(e).split())
        raise ValueError(f"init='teacher' needs the teacher's architecture: {reason[:300]}") from None


def distill_run(teacher_run: PathLike, run_dir: PathLike, timesteps: int,
                curriculum: Optional[Sequence[int]] = None, temperature: float = 4.0,
                alpha: float = 0.5, epochs: Optional[int] = None,
                student_config: Optional[PathLike] = None, overrides: Sequence[str] = (),
                init: str = "scratch", scale_dt: bool = True, checkpoint: str = "best",
                progress: Optional[bool] = None,
                stage_epochs: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """Distil ``teacher_run`` into a student run at ``timesteps`` steps (see module docs).

    ``overrides`` are ``section.key=value`` strings applied to the student config (the
    teacher's, or ``student_config``). ``stage_epochs`` sets the epochs of each curriculum
    stage (then ``epochs``, if given, must equal their sum). Returns a summary with the best
    final-stage epoch.
    """
    from ..config import config_to_dict, save_config
    from ..config.schema import atomic_write_text
    from . import runner
    from .checkpoint import save_checkpoint
    from .ema import WeightEMA

    stages = parse_curriculum(timesteps, curriculum)
    explicit = stage_epoch_list(stage_epochs, len(stages)) if stage_epochs is not None else None
    if explicit is not None and epochs is not None and int(epochs) != sum(explicit):
        raise ValueError(f"epochs ({epochs}) must equal the sum of stage_epochs {explicit} "
                         f"({sum(explicit)}); give one or the other")
    if not float(temperature) > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if init not in _INITS:
        raise ValueError(f"init must be one of {', '.join(_INITS)}; got {init!r}")
    run_dir = Path(run_dir)
    if Path(teacher_run).resolve() == run_dir.resolve():
        raise ValueError("--out must differ from the teacher run directory")
    if (run_dir / "checkpoints" / "last.pt").exists():
        raise ValueError(f"run directory {run_dir} already holds a run; choose another --out")

    t_cfg, info, teacher, t_ckpt = runner.load_run(teacher_run, checkpoint)
    cfg = _student_config(t_cfg, student_config, overrides)
    if explicit is not None:
        cfg.train.epochs = sum(explicit)
    elif epochs is not None:
        cfg.train.epochs = int(epochs)
    if progress is not None:
        cfg.train.progress = bool(progress)
    runner._validate_train_config(cfg)
    per_stage = explicit if explicit is not None else split_epochs(cfg.train.epochs, len(stages))
    runner._check_names(cfg)
    if init == "teacher":  # fail before feature extraction
        _load_teacher_weights(runner.build_network(cfg, t_ckpt["in_features"], len(info["labels"])),
                              teacher.state_dict())
    runner._check_writable(run_dir)
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    device = runner.resolve_device(cfg.train.device)
    runner.seed_everything(cfg.train.seed)

    # Native frames once; every step count is a resampling of them (as build_frontend does).
    native = copy.deepcopy(cfg)
    native.features.timesteps = None
    data_info = runner.build_info(native)
    if list(data_info.labels) != list(info["labels"]):
        raise ValueError(f"the dataset's labels {list(data_info.labels)[:5]}... differ from the "
                         f"teacher's {list(info['labels'])[:5]}...")
    frontend = runner.build_frontend(native, data_info.sample_rate, data_info.kind).to(device)
    bs = cfg.train.eval_batch_size
    train_data = runner.build_data(native, "train")
    redraw = runner.redraws_features(train_data, cfg)  # as in train_run
    Xtr, ytr = runner.epoch_features(train_data, frontend, device, cfg.train, 0, redraw,
                                     "features train")
    Xva, yva = runner.extract_features(runner.build_data(native, "valid"), frontend, device, bs,
                                       cfg.train.progress, "features valid")

    def at(X: torch.Tensor, steps: Optional[int]) -> torch.Tensor:
        return X if steps is None else TimeResample(steps)(X)

    teacher.to(device)
    t_steps = t_cfg.features.timesteps or int(Xtr.shape[1])

    def teacher_targets(X: torch.Tensor) -> torch.Tensor:
        out, _ = runner.predict(teacher, at(X, t_cfg.features.timesteps), device, bs)
        return out.to(device)

    targets = {"train": teacher_targets(Xtr)}
    t_val = runner._evaluate_arrays(teacher, at(Xva, t_cfg.features.timesteps), yva, device, bs)
    log.info("teacher %s: %s at T=%d, valid acc %.4f; student stages T=%s, epochs %s",
             teacher_run, t_cfg.model.name, t_steps, t_val["acc"], stages, per_stage)
    if not redraw:
        teacher.cpu()

    base_dt = float(cfg.model.options.get("dt", 0.01))

    def stage_config(steps: int, n_epochs: int):
        c = copy.deepcopy(cfg)
        c.features.timesteps = steps
        if scale_dt:
            c.model.options = dict(c.model.options, dt=float(f"{base_dt * t_steps / steps:.6g}"))
        c.train.epochs = n_epochs
        return c

    final_cfg = stage_config(stages[-1], cfg.train.epochs)
    save_config(final_cfg, run_dir / "config.yaml")
    record = {"teacher_run": str(teacher_run), "teacher_checkpoint": checkpoint,
              "teacher_model": t_cfg.model.name, "teacher_timesteps": t_steps,
              "teacher_valid_acc": t_val["acc"], "curriculum": stages, "epochs_per_stage": per_stage,
              "temperature": float(temperature), "alpha": float(alpha), "init": init,
              "scale_dt": bool(scale_dt), "ema_decay": float(cfg.train.ema_decay),
              "redrawn_every_epoch": bool(redraw)}
    atomic_write_text(run_dir / "distill.json", json.dumps(record, indent=2))

    in_features, n_classes = int(Xtr.shape[-1]), len(info["labels"])
    history: List[Dict[str, Any]] = []
    best: Dict[str, Any] = {"epoch": -1, "valid_acc": -1.0}
    state_dict = teacher.state_dict() if init == "teacher" else None
    epoch, n_params = 0, 0
    t = cfg.train

    def loss_fn(out, y, idx):
        return kd_loss(out, targets["train"][idx.to(device)], y, float(temperature), float(alpha))

    for si, (steps, n_epochs) in enumerate(zip(stages, per_stage)):
        s_cfg = stage_config(steps, n_epochs)
        torch.manual_seed(t.seed + si)
        model = runner.build_network(s_cfg, in_features, n_classes).to(device)
        if state_dict is not None:
            _load_teacher_weights(model, state_dict)
        n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        opt, sched = runner._make_optimizer(s_cfg, model)
        ema = WeightEMA(model, t.ema_decay) if t.ema_decay > 0 else None
        Xs, Vs = at(Xtr, steps), at(Xva, steps)
        last_stage = si == len(stages) - 1
        meta = {"config": config_to_dict(final_cfg), "info": t_ckpt["info"], "in_features": in_features,
                "num_params": n_params, "distill": record}
        for _ in range(n_epochs):
            t0 = time.time()
            if redraw and epoch != 0:
                Xtr, ytr = runner.epoch_features(train_data, frontend, device, t, epoch, redraw,
                                                 f"features train, epoch {epoch + 1}")
                targets["train"] = teacher_targets(Xtr)
                Xs = at(Xtr, steps)
            loss_sum, correct, seen = runner.train_epoch(
                model, opt, Xs, ytr, t, epoch, device, None, loss_fn,
                desc=f"stage {si + 1}/{len(stages)} T={steps} epoch {epoch + 1}/{t.epochs}",
                ema=ema)
            eval_model = ema.model if ema is not None else model  # what best.pt will hold
            val = runner._evaluate_arrays(eval_model, Vs, yva, device, t.eval_batch_size)
            lr = opt.param_groups[0]["lr"]
            runner.step_scheduler(sched, val)
            epoch += 1
            row = {"epoch": epoch, "stage": si + 1, "timesteps": steps, "train_loss": loss_sum / seen,
                   "train_acc": correct / seen, "valid_loss": val["loss"], "valid_acc": val["acc"],
                   "firing_rates": val["firing_rates"], "lr": lr, "time_s": time.time() - t0}
            history.append(row)
            improved = last_stage and runner.improves(val, best)
            if improved:
                best = {"epoch": epoch, "valid_acc": val["acc"], "valid_loss": val["loss"]}
            state, best_state = runner.epoch_states(meta, model, eval_model, opt, sched, ema,
                                                    epoch=epoch, history=history, best=best)
            if improved:
                save_checkpoint(run_dir / "checkpoints" / "best.pt", best_state)
            save_checkpoint(run_dir / "checkpoints" / "last.pt", state)
            atomic_write_text(run_dir / "history.jsonl", "".join(json.dumps(r) + "\n" for r in history))
            log.info("stage %d/%d T=%d epoch %d/%d  kd loss %.4f  acc %.4f | valid loss %.4f  "
                     "acc %.4f%s | rates %s | lr %.2e | %.1fs", si + 1, len(stages), steps, epoch,
                     t.epochs, row["train_loss"], row["train_acc"], val["loss"], val["acc"],
                     " *" if improved else "  ", "/".join(f"{r:.3f}" for r in val["firing_rates"]),
                     lr, row["time_s"])
        state_dict = (ema.model if ema is not None else model).state_dict()
    teacher.cpu()
    return {"run_dir": str(run_dir), "best": best, "epochs": t.epochs, "num_params": n_params,
            "stages": stages, "epochs_per_stage": per_stage, "teacher_timesteps": t_steps,
            "teacher_valid_acc": t_val["acc"]}
