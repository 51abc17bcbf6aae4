"""``spikekws compare RUN [RUN ...]``: runs side by side; seeds of one config pooled.

Reads only small files of each run: ``config.yaml``, ``history.jsonl`` (best valid
accuracy), ``metrics.json`` (test accuracy/F1, parameters, firing rates, energy).
Runs whose configs differ only by ``train.seed`` (and settings that do not change the
result: progress bars, device, threads, evaluation batch size, TensorBoard) form one
group, reported as mean ± standard deviation over its runs.
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import yaml

PathLike = Union[str, Path]

#: train.* keys ignored when grouping runs (they do not change what is computed).
NEUTRAL_TRAIN_KEYS = ("seed", "progress", "device", "threads", "eval_batch_size", "tensorboard")


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None


def read_run(run_dir: PathLike, split: str = "test") -> Dict[str, Any]:
    """Summary of one run directory (FileNotFoundError / ValueError for a bad folder)."""
    from .html import find_energy, read_history

    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"run directory not found: {run}")
    cfg_path = run / "config.yaml"
    if not cfg_path.is_file():
        raise ValueError(f"{run} is not a spikekws run directory (no config.yaml)")
    try:
        cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{cfg_path} is not valid YAML: {e}") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{cfg_path} must hold a mapping")
    history = read_history(run)
    metrics = _load_json(run / "metrics.json") if (run / "metrics.json").is_file() else {}
    rep = metrics.get(split) if isinstance(metrics, dict) else None
    rep = rep if isinstance(rep, dict) else {}
    model = cfg.get("model") or {}
    train = cfg.get("train") or {}
    best = max(history, key=lambda h: h.get("valid_acc", float("-inf"))) if history else {}
    energy = find_energy(metrics, split) if isinstance(metrics, dict) else None
    energy_nj = None
    if energy and isinstance(energy.get("total"), dict) and "energy_pj_fp32" in energy["total"]:
        energy_nj = float(energy["total"]["energy_pj_fp32"]) / 1e3
    num_params = rep.get("num_params")
    if num_params is None and (run / "checkpoints" / "best.pt").is_file():
        from ..train.checkpoint import load_checkpoint
        num_params = load_checkpoint(run / "checkpoints" / "best.pt").get("num_params")
    hidden = model.get("hidden_sizes")
    return {
        "run": str(run),
        "model": f"{model.get('name', '?')}/{model.get('neuron', '?')} "
                 f"{'x'.join(str(h) for h in hidden) if isinstance(hidden, list) else hidden}",
        "seed": train.get("seed"),
        "params": num_params,
        "epochs": len(history),
        "best_valid_acc": best.get("valid_acc"),
        "best_epoch": best.get("epoch"),
        "test_acc": rep.get("accuracy"),
        "test_f1_macro": rep.get("f1_macro"),
        "firing_rates": rep.get("firing_rates") or (history[-1].get("firing_rates") if history else None),
        "energy_nj_fp32": energy_nj,
        "group_key": _group_key(cfg),
    }


def _group_key(cfg: Dict[str, Any]) -> str:
    c = copy.deepcopy(cfg)
    train = c.get("train")
    if isinstance(train, dict):
        for k in NEUTRAL_TRAIN_KEYS:
            train.pop(k, None)
    return json.dumps(c, sort_keys=True, default=str)


def _mean_std(values: Sequence[Optional[float]]) -> Optional[tuple]:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    m = sum(vals) / len(vals)
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return m, sd, len(vals)


def _layer_rate(row: Dict[str, Any], i: int) -> Optional[float]:
    rates = row["firing_rates"] or []
    return rates[i] if i < len(rates) else None


def compare_runs(run_dirs: Sequence[PathLike], split: str = "test") -> List[Dict[str, Any]]:
    """One entry per group of runs (config equal up to the seed), in first-seen order.

    Each entry: {"runs": [...], "seeds": [...], "model", "params", and for each metric
    ``best_valid_acc``, ``test_acc``, ``test_f1_macro``, ``energy_nj_fp32``: (mean, std, n)
    or None; ``firing_rates``: per layer (mean, std, n)}.
    """
    if not run_dirs:
        raise ValueError("compare needs at least one run directory")
    rows = [read_run(r, split) for r in run_dirs]
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["group_key"], []).append(r)
    out = []
    for members in groups.values():
        entry: Dict[str, Any] = {"runs": [m["run"] for m in members],
                                 "seeds": [m["seed"] for m in members],
                                 "model": members[0]["model"], "params": members[0]["params"]}
        for key in ("best_valid_acc", "test_acc", "test_f1_macro", "energy_nj_fp32"):
            entry[key] = _mean_std([m[key] for m in members])
        layers = max((len(m["firing_rates"] or []) for m in members), default=0)
        entry["firing_rates"] = [_mean_std([_layer_rate(m, i) for m in members])
                                 for i in range(layers)]
        out.append(entry)
    return out


def _cell(ms: Optional[tuple], digits: int = 4) -> str:
    if ms is None:
        return "-"
    m, sd, n = ms
    return f"{m:.{digits}f}" if n == 1 else f"{m:.{digits}f} ± {sd:.{digits}f}"


def _run_names(paths: Sequence[str]) -> str:
    names = [Path(p).name or str(p) for p in paths]
    return names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1})"


def format_table(groups: Sequence[Dict[str, Any]]) -> str:
    """A Markdown table, one row per group (mean ± std over seeds)."""
    has_energy = any(g["energy_nj_fp32"] is not None for g in groups)
    head = ["run", "model", "params", "seeds", "best valid acc", "test acc", "test F1 macro",
            "firing rates"] + (["energy fp32 nJ/sample"] if has_energy else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in groups:
        rates = "/".join(_cell(r, 3) for r in g["firing_rates"]) or "-"
        seeds = ",".join(str(s) for s in g["seeds"])
        cells = [_run_names(g["runs"]), g["model"], str(g["params"] if g["params"] is not None else "-"),
                 seeds, _cell(g["best_valid_acc"]), _cell(g["test_acc"]),
                 _cell(g["test_f1_macro"]), rates]
        if has_energy:
            cells.append(_cell(g["energy_nj_fp32"], 2))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
