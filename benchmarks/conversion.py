"""ANN-to-SNN conversion of a 2D CNN on MFCCs: accuracy vs time steps, int8 weights.

Trains (or reuses) two ``cnn2d`` runs from a dataset config — one with ReLU, one with QCFS
activations (``model.options.qcfs=L``) — and evaluates on the test split the float ANN, the
int8 ANN and the converted SNN at each number of time steps, for several conversion
settings (default: ReLU + MSE thresholds, ReLU + MSE thresholds + shift, QCFS + learned
thresholds + shift). Prints a table and writes JSON. Usage::

    python benchmarks/conversion.py [--config configs/cnn_mfcc.yaml] [--runs runs/conversion]
        [--timesteps 4,8,16,32,50,100,200] [--qcfs-levels 8] [--per-channel]
        [--relu-run RUN] [--qcfs-run RUN] [--settings relu:mse,relu:mse+shift,qcfs:qcfs+shift]
        [--out benchmarks/results/conversion.json] [override ...]

Runs already trained in ``--runs`` (or given with ``--relu-run``/``--qcfs-run``) are reused.
Setting syntax: ``<relu|qcfs>:<mse|max|percentile|qcfs>[+shift]``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

REPO = Path(__file__).resolve().parents[1]

SEED_PAPER = {"ANN float32": 0.99, "ANN int8": 0.98, 200: 0.98, 100: 0.92, 50: 0.77}


def _parse_settings(spec: str) -> List[Tuple[str, str, bool]]:
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        try:
            run, method = item.split(":")
        except ValueError:
            raise SystemExit(f"bad setting {item!r}; expected <relu|qcfs>:<method>[+shift]")
        shift = method.endswith("+shift")
        method = method[: -len("+shift")] if shift else method
        if run not in ("relu", "qcfs") or method not in ("mse", "max", "percentile", "qcfs"):
            raise SystemExit(f"bad setting {item!r}; expected <relu|qcfs>:<method>[+shift]")
        out.append((run, method, shift))
    return out


def _ensure_run(path: Path, config: str, overrides: List[str]) -> Path:
    from spikekws.config import load_config
    from spikekws.train.runner import train_run

    if (path / "checkpoints" / "best.pt").is_file():
        print(f"reusing {path}", flush=True)
        return path
    cfg = load_config(config, ["train.progress=false", *overrides])
    t0 = time.time()
    summary = train_run(cfg, path)
    print(f"trained {path}: best valid accuracy {summary['best']['valid_acc']:.4f} "
          f"({time.time() - t0:.0f}s)", flush=True)
    return path


def _features(run: Path, device, calibration_samples: int, seed: int):
    import torch

    from spikekws.train.runner import (build_data, build_frontend, build_info, extract_features,
                                       load_run)

    cfg, info, model, ckpt = load_run(run)
    frontend = build_frontend(cfg, build_info(cfg).sample_rate).to(device)
    bs = cfg.train.eval_batch_size
    Xtr, _ = extract_features(build_data(cfg, "train"), frontend, device, bs)
    Xte, yte = extract_features(build_data(cfg, "test"), frontend, device, bs)
    order = torch.randperm(len(Xtr), generator=torch.Generator().manual_seed(seed))
    return cfg, info, model, Xtr[order[:calibration_samples]], Xte, yte


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "configs" / "cnn_mfcc.yaml"))
    ap.add_argument("--runs", default=str(REPO / "runs" / "conversion"))
    ap.add_argument("--relu-run", default=None, help="an existing cnn2d run with ReLU activations")
    ap.add_argument("--qcfs-run", default=None, help="an existing cnn2d run with QCFS activations")
    ap.add_argument("--qcfs-levels", type=int, default=8)
    ap.add_argument("--timesteps", default="4,8,16,32,50,100,200")
    ap.add_argument("--settings", default="relu:mse,relu:mse+shift,qcfs:qcfs+shift")
    ap.add_argument("--per-channel", action="store_true")
    ap.add_argument("--calibration-samples", type=int, default=512)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "conversion.json"))
    ap.add_argument("overrides", nargs="*", help="config overrides for training (section.key=value)")
    args = ap.parse_args()

    from spikekws.convert.runner import evaluate_conversion, parse_timesteps
    from spikekws.train.runner import resolve_device

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    timesteps = parse_timesteps(args.timesteps)
    settings = _parse_settings(args.settings)
    device = resolve_device(args.device)
    runs_dir = Path(args.runs)
    needed = {run for run, _, _ in settings}
    runs: Dict[str, Path] = {}
    if "relu" in needed:
        runs["relu"] = (Path(args.relu_run) if args.relu_run else
                        _ensure_run(runs_dir / "relu", args.config,
                                    ["model.options.qcfs=0", *args.overrides]))
    if "qcfs" in needed:
        runs["qcfs"] = (Path(args.qcfs_run) if args.qcfs_run else
                        _ensure_run(runs_dir / f"qcfs{args.qcfs_levels}", args.config,
                                    [f"model.options.qcfs={args.qcfs_levels}", *args.overrides]))

    results: List[Dict[str, Any]] = []
    for kind, run in runs.items():
        cfg, info, model, Xcal, Xte, yte = _features(run, device, args.calibration_samples, args.seed)
        for run_kind, method, shift in settings:
            if run_kind != kind:
                continue
            name = f"{kind}:{method}{'+shift' if shift else ''}"
            print(f"converting {name} ...", flush=True)
            t0 = time.time()
            rep = evaluate_conversion(model, cfg.model.name, Xcal, Xte, yte, len(info["labels"]),
                                      timesteps, method, shift, args.per_channel,
                                      device=device, batch_size=args.batch_size)
            rep.update({"setting": name, "run": str(run), "model_options": dict(cfg.model.options),
                        "seconds": round(time.time() - t0, 1)})
            results.append(rep)

    names = [r["setting"] for r in results]
    keys: List[Any] = ["ANN float32", "ANN int8", *timesteps]

    def cell(rep: Dict[str, Any], key: Any) -> str:
        for row in rep["rows"]:
            if (row["timesteps"] == key) if isinstance(key, int) else (row["model"] == key):
                return f"{row['accuracy']:.4f} / {row['f1_micro']:.4f}"
        return ""

    print()
    print("accuracy / F1 micro on the test split")
    print("| model | " + " | ".join(names) + " | seed paper (F1) |")
    print("|---|" + "---|" * (len(names) + 1))
    for key in keys:
        label = f"SNN T={key}" if isinstance(key, int) else key
        seed = SEED_PAPER.get(key, "")
        print(f"| {label} | " + " | ".join(cell(r, key) for r in results) + f" | {seed} |")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "ann_to_snn_conversion", "config": args.config, "overrides": args.overrides,
        "timesteps": timesteps, "per_channel": args.per_channel, "qcfs_levels": args.qcfs_levels,
        "device": str(device), "seed_paper_f1_micro": {str(k): v for k, v in SEED_PAPER.items()},
        "results": results}, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
