"""Feature extraction speed: log-mel throughput and the WAV -> features data path.

Prints samples/s (1 s clips at 16 kHz) for

- ``logmel``: :class:`spikekws.features.LogMel` (40 mels, 25/10 ms, utterance
  normalisation) on random waveforms already in memory, batch 64 and 256, with 1 and 2
  torch threads;
- ``load+logmel``: the training data path: an ``AudioDataset`` over 16-bit WAV files read
  by a ``DataLoader`` (``num_workers=0``) followed by the same front-end, i.e. what
  ``spikekws train`` does once per split before training;
- ``load``: reading the WAV files alone;

and writes the table as JSON (default ``benchmarks/results/features_speed.json``).

Usage::

    python benchmarks/features_speed.py [--clips 512] [--repeats 3] [--threads 1,2]
        [--batches 64,256] [--quick] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SR = 16000


def _time(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs (after one warm-up run)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _write_clips(folder: Path, n: int) -> None:
    """A GSC-layout dataset of ``n`` 1 s noise-and-tone clips (two classes)."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    for i in range(n):
        word = ("a", "b")[i % 2]
        clip = 0.3 * np.sin(2 * np.pi * (200 + 10 * (i % 50)) * t) + 0.05 * rng.standard_normal(SR)
        path = folder / word / f"s{i:05d}_nohash_0.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), clip.astype("float32"), SR, subtype="PCM_16")
    (folder / "validation_list.txt").write_text("")
    (folder / "testing_list.txt").write_text("")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=512, help="clips per measurement")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="64,256")
    ap.add_argument("--quick", action="store_true", help="256 clips, 1 repeat")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "features_speed.json"))
    args = ap.parse_args()
    if args.quick:
        args.clips, args.repeats = 256, 1

    import torch
    from torch.utils.data import DataLoader

    from spikekws.data import build_dataset
    from spikekws.features import build_features

    threads = [int(t) for t in args.threads.split(",") if t]
    batches = [int(b) for b in args.batches.split(",") if b]
    front = build_features("logmel", sample_rate=SR, n_mels=40, win_ms=25.0, hop_ms=10.0)
    front.eval()
    rows = []
    with tempfile.TemporaryDirectory(prefix="features-speed-") as tmp:
        root = Path(tmp)
        _write_clips(root, args.clips)
        ds = build_dataset("gsc", root, "train")
        waves = torch.randn(args.clips, SR) * 0.1
        for n_threads in threads:
            torch.set_num_threads(n_threads)
            for batch in batches:
                def logmel():
                    with torch.inference_mode():
                        for i in range(0, args.clips, batch):
                            front(waves[i:i + batch])

                def load_logmel():
                    with torch.inference_mode():
                        for wave, _ in DataLoader(ds, batch_size=batch, num_workers=0):
                            front(wave)

                def load_only():
                    for _ in DataLoader(ds, batch_size=batch, num_workers=0):
                        pass

                for name, fn in (("logmel", logmel), ("load+logmel", load_logmel), ("load", load_only)):
                    sec = _time(fn, args.repeats)
                    rows.append({"stage": name, "threads": n_threads, "batch": batch,
                                 "clips": args.clips, "seconds": round(sec, 4),
                                 "samples_per_s": round(args.clips / sec, 1)})
                    print(f"{name:12s} threads={n_threads} batch={batch:4d}  "
                          f"{args.clips / sec:10.1f} samples/s", flush=True)
    result = {
        "benchmark": "features_speed",
        "clip": {"seconds": 1.0, "sample_rate": SR},
        "frontend": {"name": "logmel", "n_mels": 40, "win_ms": 25.0, "hop_ms": 10.0},
        "rows": rows,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
