"""Speaker-independent accuracy on the Free Spoken Digit Dataset (real recordings).

Trains the default SNN on three speakers and tests on the fourth, each speaker held out in
turn; prints a table and writes JSON. Usage::

    python benchmarks/fsdd_speaker.py [--root ../shared/data/fsdd] [--config configs/fsdd.yaml]
        [--out benchmarks/results/fsdd_speaker.json] [override ...]

With a ``mix`` config (e.g. ``--config configs/fsdd_mix.yaml --out
benchmarks/results/fsdd_speaker_mix.json``) the FSDD settings go to the mix's primary
dataset, and every ``synth`` extra dataset whose folder is missing is generated first
(8 kHz English digits, 200 speakers unless the folder name says otherwise; see the config).
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

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
    runs_dir = Path(args.runs) if args.runs else Path(tempfile.mkdtemp(prefix="fsdd-bench-"))
    rows = []
    is_mix = load_config(args.config).data.name == "mix"
    prefix = "data.options.primary.options" if is_mix else "data.options"
    for spk in speakers:
        cfg = load_config(args.config, [f"data.root={root}", f"{prefix}.test_speakers={spk}",
                                        "train.progress=false", *args.overrides])
        if is_mix:
            ensure_synth_extras(cfg)
        t0 = time.time()
        summary = train_run(cfg, runs_dir / f"test-{spk}")
        rep = evaluate_run(runs_dir / f"test-{spk}", split="test")
        rows.append({"test_speaker": spk, "accuracy": rep["accuracy"], "f1_macro": rep["f1_macro"],
                     "num_test": rep["num_samples"], "best_valid_acc": summary["best"]["valid_acc"],
                     "best_epoch": summary["best"]["epoch"], "firing_rates": rep["firing_rates"],
                     "train_seconds": round(time.time() - t0, 1)})
        print(f"held out {spk:10s} accuracy {rep['accuracy']:.4f}", flush=True)
    accs = [r["accuracy"] for r in rows]
    result = {
        "benchmark": "fsdd_speaker_independent",
        "config": str(Path(args.config).resolve().relative_to(REPO)) if Path(args.config).resolve().is_relative_to(REPO) else args.config,
        "overrides": args.overrides,
        "rows": rows,
        "mean_accuracy": statistics.mean(accs),
        "std_accuracy": statistics.pstdev(accs) if len(accs) > 1 else 0.0,
        "num_params": summary.get("num_params"),
    }
    print()
    print(f"| held-out speaker | test accuracy | F1 macro | test clips | train time (s) |")
    print(f"|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['test_speaker']} | {r['accuracy']:.4f} | {r['f1_macro']:.4f} | {r['num_test']} | {r['train_seconds']} |")
    print(f"| **mean** | **{result['mean_accuracy']:.4f}** ± {result['std_accuracy']:.4f} | | | |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
