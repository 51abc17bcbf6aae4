"""Data-parallel training (torchrun, 2 CPU processes) against one process: test accuracy.

For each seed, trains ``--config`` (default: the demo config on the built-in synthetic data)
once in a single process (``train.threads=2``) and once under ``torchrun --nproc_per_node 2``
(gloo, ``train.threads=1`` per process; the same global ``train.batch_size``, split into one
shard per process), evaluates both on the test split, prints a table and writes JSON.
"Within noise" is judged against the spread over seeds of the single-process runs and the
test set's sampling error (binomial standard error of an accuracy on that many clips; the
difference of two runs has sqrt(2) times it). Usage::

    python benchmarks/ddp_accuracy.py [--config configs/demo.yaml] [--data data/synth]
        [--epochs 12] [--seeds 0,1] [--runs runs/ddp_bench]
        [--out benchmarks/results/ddp_accuracy.json] [override ...]

Runs already in ``--runs`` are reused (delete them to retrain).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parents[1]


def _train(run: Path, args, seed: int, procs: int) -> None:
    if (run / "checkpoints" / "best.pt").is_file():
        print(f"reusing {run}", flush=True)
        return
    overrides = [f"data.root={args.data}", f"train.epochs={args.epochs}", f"train.seed={seed}",
                 f"train.threads={2 if procs == 1 else 1}", "train.progress=false",
                 "train.device=cpu", *args.overrides]
    cmd = ["-m", "spikekws", "-q", "train", args.config, "--out", str(run), *overrides]
    if procs > 1:
        cmd = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}", *cmd]
    env = dict(os.environ, OMP_NUM_THREADS="1" if procs > 1 else "2")
    subprocess.run([sys.executable, *cmd], check=True, env=env, cwd=REPO)


def _evaluate(run: Path) -> Dict[str, Any]:
    from spikekws.train.runner import evaluate_run
    rep = evaluate_run(run, split="test", device="cpu", write=False)
    return {"accuracy": rep["accuracy"], "f1_macro": rep["f1_macro"], "num_test": rep["num_samples"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/demo.yaml")
    p.add_argument("--data", default="data/synth")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--runs", default="runs/ddp_bench")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "ddp_accuracy.json"))
    p.add_argument("overrides", nargs="*")
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    from spikekws.config.schema import atomic_write_text

    if not (REPO / args.data).is_dir() and not Path(args.data).is_dir():
        raise SystemExit(f"no dataset at {args.data}: run `make demo` or `spikekws synth --out {args.data}`")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    rows: List[Dict[str, Any]] = []
    for seed in seeds:
        for procs in (1, 2):
            run = Path(args.runs) / f"procs{procs}_seed{seed}"
            _train(run, args, seed, procs)
            hist = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines() if x]
            row = {"seed": seed, "processes": procs, "run": str(run),
                   "train_s": round(sum(h.get("time_s", 0.0) for h in hist), 1),  # epochs only
                   **_evaluate(run)}
            rows.append(row)
            print(f"seed {seed}, {procs} process(es): test accuracy {row['accuracy']:.4f}", flush=True)
    acc = {n: [r["accuracy"] for r in rows if r["processes"] == n] for n in (1, 2)}
    mean = {n: statistics.fmean(v) for n, v in acc.items()}
    spread = statistics.pstdev(acc[1]) if len(acc[1]) > 1 else None
    diffs = [b - a for a, b in zip(acc[1], acc[2])]
    summary = {
        "mean_accuracy_1proc": mean[1], "mean_accuracy_2proc": mean[2],
        "mean_difference_pp": 100 * (mean[2] - mean[1]),
        "per_seed_difference_pp": [100 * d for d in diffs],
        "seed_std_1proc_pp": None if spread is None else 100 * spread,
        "test_clips": rows[0]["num_test"],
        "one_clip_pp": 100 / rows[0]["num_test"],
        "binomial_se_pp": 100 * (mean[1] * (1 - mean[1]) / rows[0]["num_test"]) ** 0.5,
    }
    lines = ["| seed | 1 process | 2 processes (torchrun) | difference | epochs' s (1 / 2) |",
             "|---|---|---|---|---|"]
    for seed in seeds:
        a = next(r for r in rows if r["seed"] == seed and r["processes"] == 1)
        b = next(r for r in rows if r["seed"] == seed and r["processes"] == 2)
        lines.append(f"| {seed} | {a['accuracy']:.4f} | {b['accuracy']:.4f} | "
                     f"{100 * (b['accuracy'] - a['accuracy']):+.2f} pp | {a['train_s']} / {b['train_s']} |")
    lines.append(f"| mean | {mean[1]:.4f} | {mean[2]:.4f} | {summary['mean_difference_pp']:+.2f} pp | |")
    print("\n".join(lines))
    if spread is not None:
        print(f"spread of the single-process runs over seeds: {100 * spread:.2f} pp; "
              f"one test clip = {summary['one_clip_pp']:.2f} pp")
    print(f"binomial standard error of one run's test accuracy: {summary['binomial_se_pp']:.2f} pp "
          f"(of a difference between two runs: {2 ** 0.5 * summary['binomial_se_pp']:.2f} pp)")
    out = {"benchmark": "ddp_accuracy", "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "command": "python benchmarks/ddp_accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "config": args.config, "data": args.data, "epochs": args.epochs, "overrides": args.overrides,
           "rows": rows, "summary": summary}
    atomic_write_text(Path(args.out), json.dumps(out, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
