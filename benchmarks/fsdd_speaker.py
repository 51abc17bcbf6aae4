"""Speaker-independent accuracy on the Free Spoken Digit Dataset (real recordings).

Trains the default SNN on three speakers and tests on the fourth, each speaker held out in
turn; prints a table and writes JSON. Usage::

    python benchmarks/fsdd_speaker.py [--root ../shared/data/fsdd] [--config configs/fsdd.yaml]
        [--seeds 0,1,2] [--out benchmarks/results/fsdd_speaker.json] [override ...]

With several seeds every fold is trained once per seed (``train.seed``); the table gives
each seed's mean, the mean and spread over seeds, and the accuracy of the seeds' ensemble
(class probabilities averaged per clip), which is not the single network the target is
about and is reported next to it.

``--train-speakers N`` trains on N of the other speakers only (``train_speakers``), once per
N-subset, and reports each held-out speaker's mean over its subsets: a learning curve over
the number of training speakers (N = 1, 2 next to the default, all the others).

With a ``mix`` config (e.g. ``--config configs/fsdd_mix.yaml --out
benchmarks/results/fsdd_speaker_mix.json``) the FSDD settings go to the mix's primary
dataset, and every ``synth`` extra dataset whose folder is missing is generated first
(8 kHz English digits, 200 speakers unless the folder name says otherwise; see the config).
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import torch

REPO = Path(__file__).resolve().parents[1]
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def ensure_synth_extras(cfg) -> None:
    """Generate the synthetic digit folders a ``mix`` config's ``synth`` extras point to."""
    from spikekws.data.synth import generate

    extras = cfg.data.options.get("extra") or []
    for spec in extras:
        if spec.get("name") != "synth":
            continue
        root = Path(spec["root"])
        if (root / "manifest.json").exists():
            continue
        words = [w for w in spec.get("label_map", {}) if w in DIGIT_WORDS] or list(DIGIT_WORDS)
        print(f"generating synthetic digits in {root}", flush=True)
        generate(root, words=words, speakers=200, sample_rate=8000, workers=1, progress=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "fsdd"))
    ap.add_argument("--config", default=str(REPO / "configs" / "fsdd.yaml"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "fsdd_speaker.json"))
    ap.add_argument("--speakers", default="jackson,nicolas,theo,yweweler")
    ap.add_argument("--runs", default=None, help="keep run folders here (default: a temp folder)")
    ap.add_argument("--seeds", default="", help="comma-separated train.seed values, e.g. 0,1,2 "
                    "(default: the config's seed)")
    ap.add_argument("--train-speakers", type=int, default=0,
                    help="train on N of the other speakers, every N-subset in turn (default: all)")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()

    from spikekws.config import load_config
    from spikekws.train.runner import evaluate_run, train_run

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    root = Path(args.root)
    if not root.is_dir():
        print(f"FSDD not found at {root}; nothing to do", file=sys.stderr)
        return 1
    speakers = [s for s in args.speakers.split(",") if s]
    n_train = args.train_speakers
    if n_train and not 1 <= n_train <= len(speakers) - 1:
        print(f"--train-speakers must be between 1 and {len(speakers) - 1}", file=sys.stderr)
        return 2

    def subsets(spk: str) -> List[Tuple[str, ...]]:
        """Training speaker sets for held-out ``spk``; () = every other speaker."""
        if not n_train:
            return [()]
        return list(itertools.combinations([s for s in speakers if s != spk], n_train))

    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    seed_override = bool(seeds)
    seeds = seeds or [load_config(args.config, args.overrides).train.seed]
    runs_dir = Path(args.runs) if args.runs else Path(tempfile.mkdtemp(prefix="fsdd-bench-"))
    is_mix = load_config(args.config).data.name == "mix"
    prefix = "data.options.primary.options" if is_mix else "data.options"
    per_seed: Dict[int, List[Dict[str, Any]]] = {}
    probs: Dict[Tuple[str, Tuple[str, ...]], List[torch.Tensor]] = {}
    labels: Dict[Tuple[str, Tuple[str, ...]], torch.Tensor] = {}
    summary: Dict[str, Any] = {}
    for seed in seeds:
        rows = per_seed.setdefault(seed, [])
        for spk in speakers:
            folds = []
            for train_set in subsets(spk):
                cfg = load_config(args.config, [
                    f"data.root={root}", f"{prefix}.test_speakers={spk}", "train.progress=false",
                    *([f"{prefix}.train_speakers=[{','.join(train_set)}]"] if train_set else []),
                    *args.overrides, *([f"train.seed={seed}"] if seed_override else [])])
                if is_mix:
                    ensure_synth_extras(cfg)
                run = (runs_dir / (f"seed{seed}" if len(seeds) > 1 else "") / f"test-{spk}"
                       / ("train-" + "-".join(train_set) if train_set else ""))
                t0 = time.time()
                summary = train_run(cfg, run)
                rep = evaluate_run(run, split="test", keep_outputs=len(seeds) > 1)
                if len(seeds) > 1:  # per-clip probabilities only for the ensemble
                    probs.setdefault((spk, train_set), []).append(rep["outputs"].exp())
                    labels[(spk, train_set)] = rep["targets"]
                folds.append({"train_speakers": list(train_set), "accuracy": rep["accuracy"],
                              "f1_macro": rep["f1_macro"], "num_test": rep["num_samples"],
                              "best_valid_acc": summary["best"]["valid_acc"],
                              "best_epoch": summary["best"]["epoch"],
                              "firing_rates": rep["firing_rates"],
                              "train_seconds": round(time.time() - t0, 1)})
                print(f"seed {seed} held out {spk:10s} accuracy {rep['accuracy']:.4f}"
                      + (f"  (trained on {', '.join(train_set)})" if train_set else ""), flush=True)
            row = {"test_speaker": spk, **{k: statistics.mean(f[k] for f in folds)
                                           for k in ("accuracy", "f1_macro", "best_valid_acc")},
                   "num_test": folds[0]["num_test"],
                   "train_seconds": round(sum(f["train_seconds"] for f in folds), 1)}
            row.update({"best_epoch": folds[0]["best_epoch"], "firing_rates": folds[0]["firing_rates"]}
                       if not n_train else {"subsets": folds})
            rows.append(row)
    seed_means = {seed: statistics.mean(r["accuracy"] for r in rows) for seed, rows in per_seed.items()}
    first = per_seed[seeds[0]]
    accs = [r["accuracy"] for r in first]
    result: Dict[str, Any] = {
        "benchmark": "fsdd_speaker_independent",
        "config": str(Path(args.config).resolve().relative_to(REPO)) if Path(args.config).resolve().is_relative_to(REPO) else args.config,
        "overrides": args.overrides,
        "seeds": seeds,
        "train_speakers": n_train or len(speakers) - 1,
        "rows": first,  # the first seed's folds
        "mean_accuracy": statistics.mean(accs),
        "std_accuracy": statistics.pstdev(accs) if len(accs) > 1 else 0.0,
        "num_params": summary.get("num_params"),
    }
    if len(seeds) > 1:
        ens = {spk: statistics.mean(
            float((torch.stack(probs[(spk, ts)]).mean(0).argmax(1) == labels[(spk, ts)]).float().mean())
            for ts in subsets(spk)) for spk in speakers}
        result.update({
            "per_seed": {str(k): v for k, v in per_seed.items()},
            "seed_means": {str(k): v for k, v in seed_means.items()},
            "mean_over_seeds": statistics.mean(seed_means.values()),
            "std_over_seeds": statistics.pstdev(seed_means.values()),
            "ensemble": {"per_speaker": ens, "mean_accuracy": statistics.mean(ens.values())},
        })
    print()
    header = "| held-out speaker | " + " | ".join(f"seed {k}" for k in seeds)
    header += " | ensemble |" if len(seeds) > 1 else " | F1 macro | test clips | train time (s) |"
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for i, spk in enumerate(speakers):
        cells = " | ".join(f"{per_seed[k][i]['accuracy']:.4f}" for k in seeds)
        if len(seeds) > 1:
            print(f"| {spk} | {cells} | {result['ensemble']['per_speaker'][spk]:.4f} |")
        else:
            r = first[i]
            print(f"| {spk} | {cells} | {r['f1_macro']:.4f} | {r['num_test']} | {r['train_seconds']} |")
    means = " | ".join(f"**{seed_means[k]:.4f}**" for k in seeds)
    if len(seeds) > 1:
        print(f"| **mean** | {means} | **{result['ensemble']['mean_accuracy']:.4f}** |")
        print(f"\nmean over seeds {result['mean_over_seeds']:.4f} ± {result['std_over_seeds']:.4f}")
    else:
        print(f"| **mean** | **{result['mean_accuracy']:.4f}** ± {result['std_accuracy']:.4f} | | | |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
