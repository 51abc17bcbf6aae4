"""Accuracy on audio features vs. on their spike-encoded version (same model, same data).

1. ``spikify`` converts the source audio dataset (default: the built-in synthetic speech
   commands in ``data/synth``) through the config's front-end and a spike encoder into
   SHD-format files;
2. the config's model is trained on the audio dataset (front-end features, as usual);
3. the same model and training settings are trained on the spike files
   (``data.name=shd``, binned at the encoder's step, no front-end; ``model.options.dt`` is
   set to that step when it differs from the frame hop);
4. both runs are evaluated on their test split; the accuracies, their difference in
   percentage points and the spike statistics are printed and written as JSON.

Usage::

    python benchmarks/spikify_vs_audio.py [--config configs/demo.yaml] [--root data/synth]
        [--encoder delta] [--encoder-option threshold=0.3 ...] [--work DIR]
        [--out benchmarks/results/spikify_vs_audio.json] [override ...]

Overrides (``section.key=value``) apply to both runs, e.g. ``train.epochs=10``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "configs" / "demo.yaml"))
    ap.add_argument("--dataset", default="synth", help="source audio dataset (default: synth)")
    ap.add_argument("--root", default=str(REPO / "data" / "synth"))
    ap.add_argument("--encoder", default="delta", help="rate, latency or delta (default: delta)")
    ap.add_argument("--encoder-option", action="append", default=[],
                    help="encoder argument key=value (default for delta: threshold=0.3)")
    ap.add_argument("--seed", type=int, default=0, help="seed of random encoders")
    ap.add_argument("--work", default=None, help="keep spike files and runs here (default: temp)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "spikify_vs_audio.json"))
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()

    from spikekws.config import load_config
    from spikekws.config.schema import apply_overrides
    from spikekws.data.spikify import spikify
    from spikekws.train.runner import evaluate_run, train_run

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if not Path(args.root).is_dir():
        print(f"source dataset not found at {args.root} (create it with: spikekws synth "
              f"--out {args.root})", file=sys.stderr)
        return 1
    enc_opts = apply_overrides({}, args.encoder_option)
    if args.encoder == "delta" and not enc_opts:
        enc_opts = {"threshold": 0.3}
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="spikify-vs-audio-"))
    base = [f"data.name={args.dataset}", f"data.root={args.root}", "train.progress=false",
            *args.overrides]
    audio_cfg = load_config(args.config, base)

    t0 = time.time()
    spikes_dir = work / "spikes"
    summary = spikify(args.dataset, args.root, spikes_dir, encoder=args.encoder,
                      encoder_options=enc_opts, features=audio_cfg.features.name,
                      feature_options=audio_cfg.features.options,
                      options=audio_cfg.data.options, seed=args.seed, overwrite=True)
    spikify_s = time.time() - t0
    print(f"spikified into {spikes_dir}: {summary['num_channels']} channels x "
          f"{summary['num_steps']} steps, train firing rate "
          f"{summary['splits']['train']['rate_hz']:.1f} Hz ({spikify_s:.0f} s)", flush=True)

    spike_cfg = load_config(args.config, base + ["data.name=shd", f"data.root={spikes_dir}"])
    spike_cfg.data.options = {}
    hop = float(summary["features"].get("hop_ms", 10.0)) * 1e-3
    if abs(summary["dt"] - hop) > 1e-12:
        # encoders with several steps per frame (latency, rate with repeat) shorten the step;
        # the SNN's decay factors must use it
        spike_cfg.model.options = dict(spike_cfg.model.options, dt=summary["dt"])
        print(f"spike run: model.options.dt={summary['dt']:g} (frame hop {hop:g} s)")
    rows = {}
    for name, cfg in (("audio", audio_cfg), ("spikes", spike_cfg)):
        t0 = time.time()
        run = work / f"run-{name}"
        best = train_run(cfg, run)["best"]
        rep = evaluate_run(run, split="test")
        rows[name] = {"accuracy": rep["accuracy"], "f1_macro": rep["f1_macro"],
                      "num_test": rep["num_samples"], "best_valid_acc": best["valid_acc"],
                      "best_epoch": best["epoch"], "firing_rates": rep["firing_rates"],
                      "train_seconds": round(time.time() - t0, 1), "run_dir": str(run)}
        print(f"{name:7s} test accuracy {rep['accuracy']:.4f} (best valid "
              f"{best['valid_acc']:.4f} at epoch {best['epoch']})", flush=True)
    diff_pp = 100.0 * (rows["spikes"]["accuracy"] - rows["audio"]["accuracy"])
    print(f"spikes - audio: {diff_pp:+.2f} percentage points")
    result = {
        "benchmark": "spikify_vs_audio",
        "config": args.config, "dataset": args.dataset, "root": args.root,
        "overrides": args.overrides,
        "encoder": summary["encoder"], "spikes": {k: summary[k] for k in ("dt", "num_steps", "num_channels", "splits")},
        "rows": rows, "difference_pp": round(diff_pp, 2),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
