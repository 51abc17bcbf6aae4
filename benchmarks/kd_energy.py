"""Spiking global-local hybrid vs RadLIF, and distillation to fewer time steps, with energy.

For each dataset (the built-in synthetic commands; FSDD with held-out speaker theo, ``fsdd``;
FSDD with its official split, recordings 0-4 of every speaker as test, ``fsdd-official``):

(a) ``spikescr`` (dim 64, 2 blocks) vs the RadLIF stack (``snn``/``radlif``, 2 x 124), about
    the same parameter count, both at T = 100 steps per clip;
(b) the ``spikescr`` run of (a) as teacher (T = 100) distilled to a student at T = 40 with the
    curriculum 100 -> 70 -> 40, next to two references: the same student trained at T = 40
    without a teacher, and distillation straight to 40 (no curriculum). Students start from
    the teacher's weights (``--kd-init teacher``, each curriculum stage from the previous
    one) with soft-target weight ``--kd-alpha 0.9``.

Every run is evaluated on the test split with ``evaluate_run`` (accuracy, firing rates,
MAC/AC counts and energy per sample from :mod:`spikekws.train.energy`). Prints a table and
writes JSON. Usage::

    spikekws synth --out data/synth_kd --lang en --speakers 120 \\
        --words yes,no,up,down,left,right,on,off,stop,go
    spikekws synth --out data/synth_kd_eval --lang en --speakers 100 --seed 1 \\
        --words yes,no,up,down,left,right,on,off,stop,go   # 1000 clips of unseen speakers
    python benchmarks/kd_energy.py [--datasets synth,fsdd,fsdd-official] [--synth-root data/synth_kd]
        [--fsdd-root ../shared/data/fsdd] [--epochs 20] [--seeds 0,1] [--runs runs/kd_energy]
        [--kd-stage-epochs 5,5,20] [--kd-ema 0.99] [--ema 0.99] [--features mfcc] [--augment]
        [--out benchmarks/results/kd_energy.json]

``--kd-stage-epochs`` gives each curriculum stage its own length instead of an even split of
``--epochs`` (the direct distillation keeps ``--epochs``); ``--ema`` averages the weights of
every run (``train.ema_decay``), ``--kd-ema`` those of the students only; ``--features mfcc``
gives every run FSDD's front-end of ``configs/fsdd.yaml`` (13 MFCCs with deltas), and
``--augment`` its waveform augmentation (VTLP and tempo, drawn anew every epoch; students
see it too). Results of
such variants are stored under "DATASET (variant)", their runs under "DATASET_variant/".

Runs already in ``--runs`` are reused (delete them to retrain). Everything runs on one CPU
thread (``train.threads=1``).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parents[1]
TEACHER_T, STUDENT_T, CURRICULUM = 100, 40, [100, 70, 40]
RADLIF = ["model.name=snn", "model.neuron=radlif", "model.hidden_sizes=[124,124]",
          "model.options={tau_mem: [0.02, 0.1]}"]


DATASETS = ("synth", "fsdd", "fsdd-official")
# Front-ends: spikescr.yaml's 40 log-mels, or configs/fsdd.yaml's 13 MFCCs with deltas.
FEATURES = {
    "logmel": [],
    "mfcc": ["features.name=mfcc", "features.options={n_mfcc: 13, n_mels: 40, deltas: 1, "
             "win_ms: 25.0, hop_ms: 10.0, normalize: utterance}"],
}


# configs/fsdd.yaml's waveform augmentation: formants moved by up to 15 %, speaking rate 0.8-1.25x.
AUGMENT = ["data.options.augment={vtlp: [0.85, 1.15], tempo: [0.8, 1.25]}"]


def _data_overrides(name: str, root: str) -> List[str]:
    if name == "synth":
        return ["data.name=synth", f"data.root={root}"]
    if name == "fsdd-official":  # every speaker in training; validation = recordings 5-9
        return ["data.name=fsdd", f"data.root={root}", "data.options.split_mode=official"]
    return ["data.name=fsdd", f"data.root={root}", "data.options.split_mode=speaker",
            "data.options.test_speakers=theo"]


def _train(path: Path, overrides: List[str]) -> float:
    from spikekws.config import load_config
    from spikekws.train.runner import train_run

    if (path / "checkpoints" / "best.pt").is_file():
        print(f"reusing {path}", flush=True)
        return 0.0
    cfg = load_config(REPO / "configs" / "spikescr.yaml", overrides)
    t0 = time.time()
    s = train_run(cfg, path)
    print(f"trained {path}: best valid {s['best']['valid_acc']:.4f} ({time.time() - t0:.0f}s)", flush=True)
    return time.time() - t0


def _distill(path: Path, teacher: Path, curriculum, epochs: int, alpha: float, init: str,
             stage_epochs=None, ema: float = 0.0) -> float:
    from spikekws.train.distill import distill_run

    if (path / "checkpoints" / "best.pt").is_file():
        print(f"reusing {path}", flush=True)
        return 0.0
    t0 = time.time()
    s = distill_run(teacher, path, STUDENT_T, curriculum=curriculum, temperature=4.0, alpha=alpha,
                    epochs=None if stage_epochs else epochs, init=init, progress=False,
                    stage_epochs=stage_epochs,
                    overrides=[f"train.ema_decay={ema}"] if ema > 0 else [])
    print(f"distilled {path}: best valid {s['best']['valid_acc']:.4f} ({time.time() - t0:.0f}s)", flush=True)
    return time.time() - t0


def _unseen_accuracy(path: Path, root: str) -> Dict[str, Any]:
    """Accuracy over every clip (all three splits) of another data set with the same labels,
    e.g. synthetic speakers drawn with another seed: none of them was seen in training."""
    from spikekws.train.runner import evaluate_run

    correct = total = 0
    for split in ("train", "valid", "test"):
        rep = evaluate_run(path, split=split, root=root, device="cpu", write=False)
        correct += round(rep["accuracy"] * rep["num_samples"])
        total += rep["num_samples"]
    return {"unseen_acc": correct / total, "unseen_clips": total}


def _row(label: str, path: Path, train_s: float, unseen_root: str = "") -> Dict[str, Any]:
    from spikekws.train.runner import evaluate_run

    rep = evaluate_run(path, split="test", device="cpu")
    hist = [json.loads(line) for line in (path / "history.jsonl").read_text().splitlines() if line]
    e = rep["energy"]["total"]
    return {"run": label, "dir": str(path), "timesteps": rep["energy"]["timesteps"],
            "params": rep["num_params"], "test_acc": rep["accuracy"],
            "best_valid_acc": max(h["valid_acc"] for h in hist if h.get("timesteps", STUDENT_T) ==
                                  rep["energy"]["timesteps"] or "stage" not in h),
            "firing_rates": rep["firing_rates"], "macs": e["macs"], "acs": e["acs"],
            "energy_nj_fp32": e["energy_pj_fp32"] / 1e3, "energy_nj_int8": e["energy_pj_int8"] / 1e3,
            "dense_energy_nj_fp32": e["dense_energy_pj_fp32"] / 1e3, "train_s": round(train_s, 1),
            **(_unseen_accuracy(path, unseen_root) if unseen_root else {})}


def run_dataset(name: str, root: str, runs: Path, epochs: int, seed: int = 0, alpha: float = 0.9,
                init: str = "teacher", unseen_root: str = "", stage_epochs=None,
                ema: float = 0.0, features: str = "logmel", train_ema: float = 0.0,
                augment: bool = False) -> Dict[str, Any]:
    base = [*_data_overrides(name, root), f"features.timesteps={TEACHER_T}", f"train.epochs={epochs}",
            f"train.seed={seed}", "train.threads=1", "train.device=cpu", "train.progress=false",
            *FEATURES[features], *([f"train.ema_decay={train_ema}"] if train_ema > 0 else []),
            *(AUGMENT if augment else [])]
    suffix = (("" if features == "logmel" else f"_{features}") + ("_aug" if augment else "")
              + (f"_ema{train_ema:g}" if train_ema > 0 else ""))
    d = runs / (name + suffix) / f"seed{seed}"
    dt40 = 0.01 * TEACHER_T / STUDENT_T  # the step length distillation gives the student
    t_rad = _train(d / "radlif_T100", [*base, *RADLIF])
    t_scr = _train(d / "spikescr_T100", base)
    t_40 = _train(d / "spikescr_T40_noKD", [*base, f"features.timesteps={STUDENT_T}",
                                             f"model.options.dt={dt40}"])
    tag = f"init-{init}_alpha{alpha:g}" + (f"_ema{ema:g}" if ema > 0 else "")
    ctag = tag + ("_stages" + "-".join(str(e) for e in stage_epochs) if stage_epochs else "")
    t_kd = _distill(d / f"kd_curriculum_T40_{ctag}", d / "spikescr_T100", CURRICULUM, epochs, alpha,
                    init, stage_epochs, ema)
    t_kd1 = _distill(d / f"kd_direct_T40_{tag}", d / "spikescr_T100", None, epochs, alpha, init,
                     None, ema)
    curriculum_label = "KD 100->70->40 (curriculum" + (
        f", stages of {'/'.join(str(e) for e in stage_epochs)} epochs" if stage_epochs else "") + ")"
    rows = [_row("RadLIF 2x124 (T=100)", d / "radlif_T100", t_rad, unseen_root),
            _row("spikescr 64x2 (T=100, teacher)", d / "spikescr_T100", t_scr, unseen_root),
            _row("spikescr T=40, no KD", d / "spikescr_T40_noKD", t_40, unseen_root),
            _row(curriculum_label, d / f"kd_curriculum_T40_{ctag}", t_kd, unseen_root),
            _row("KD 100->40 (no curriculum)", d / f"kd_direct_T40_{tag}", t_kd1, unseen_root)]
    return {"dataset": name, "root": root, "epochs": epochs, "seed": seed, "features": features,
            "augment": AUGMENT[0] if augment else None,
            "train_ema_decay": train_ema, "kd_alpha": alpha,
            "kd_init": init, "kd_stage_epochs": list(stage_epochs) if stage_epochs else None,
            "kd_ema_decay": ema, "unseen_root": unseen_root or None, "rows": rows,
            "targets": _targets(rows)}


def _targets(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    rad, teacher, _, student, _ = rows
    drop = 100 * (teacher["test_acc"] - student["test_acc"])
    return {
        "hybrid_beats_radlif": teacher["test_acc"] > rad["test_acc"],
        "param_ratio_hybrid_over_radlif": teacher["params"] / rad["params"],
        "timestep_cut": 1 - student["timesteps"] / teacher["timesteps"],
        "kd_acc_drop_pp": drop,
        "kd_acc_drop_within_1pp": drop <= 1.0,
        "kd_energy_ratio_fp32": student["energy_nj_fp32"] / teacher["energy_nj_fp32"],
        **({"hybrid_beats_radlif_unseen": teacher["unseen_acc"] > rad["unseen_acc"],
            "kd_acc_drop_pp_unseen": 100 * (teacher["unseen_acc"] - student["unseen_acc"]),
            "kd_acc_drop_within_1pp_unseen": 100 * (teacher["unseen_acc"] - student["unseen_acc"]) <= 1.0}
           if "unseen_acc" in teacher else {}),
    }


def mean_over_seeds(per_seed: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Rows averaged over seeds (``test_acc_std`` added); targets recomputed on the means."""
    import statistics

    rows = []
    for i, first in enumerate(per_seed[0]["rows"]):
        group = [res["rows"][i] for res in per_seed]
        row = dict(first, dir=None, seeds=len(group))
        for k in ("test_acc", "best_valid_acc", "macs", "acs", "energy_nj_fp32", "energy_nj_int8",
                  "train_s", "unseen_acc"):
            if all(k in r for r in group):
                row[k] = statistics.fmean(r[k] for r in group)
            else:
                row.pop(k, None)
        if "unseen_acc" in row:
            row["unseen_acc_std"] = statistics.pstdev(r["unseen_acc"] for r in group)
        row["test_acc_std"] = statistics.pstdev(r["test_acc"] for r in group)
        row["firing_rates"] = [statistics.fmean(r["firing_rates"][j] for r in group)
                               for j in range(len(first["firing_rates"]))]
        rows.append(row)
    first = per_seed[0]
    return {"dataset": first["dataset"], "root": first["root"], "epochs": first["epochs"],
            "kd_stage_epochs": first.get("kd_stage_epochs"), "kd_ema_decay": first.get("kd_ema_decay", 0.0),
            "features": first.get("features", "logmel"), "train_ema_decay": first.get("train_ema_decay", 0.0),
            "seed": "mean of " + ",".join(str(r["seed"]) for r in per_seed), "rows": rows,
            "targets": _targets(rows)}


def table(res: Dict[str, Any]) -> str:
    ema = f", students' weights averaged (EMA {res['kd_ema_decay']:g})" if res.get("kd_ema_decay") else ""
    ema += f", every model's weights averaged (EMA {res['train_ema_decay']:g})" if res.get("train_ema_decay") else ""
    feats = ", 13 MFCCs + deltas" if res.get("features") == "mfcc" else ""
    lines = [f"## {res['dataset']} ({res['root']}, {res['epochs']} epochs, seed {res['seed']}, test split{feats}{ema})", "",
             "| run | T | params | test acc | unseen-speaker acc | rates | MACs | ACs | fp32 nJ | int8 nJ | dense fp32 nJ |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        rates = "/".join(f"{x:.3f}" for x in r["firing_rates"])
        acc = f"{r['test_acc']:.4f}" + (f" ± {r['test_acc_std']:.4f}" if "test_acc_std" in r else "")
        unseen = (f"{r['unseen_acc']:.4f}" + (f" ± {r['unseen_acc_std']:.4f}" if "unseen_acc_std" in r else "")
                  if "unseen_acc" in r else "-")
        lines.append(f"| {r['run']} | {r['timesteps']} | {r['params']} | {acc} | {unseen} | {rates} | "
                     f"{r['macs']:.3g} | {r['acs']:.3g} | {r['energy_nj_fp32']:.1f} | "
                     f"{r['energy_nj_int8']:.2f} | {r['dense_energy_nj_fp32']:.1f} |")
    t = res["targets"]
    lines += ["", f"hybrid beats RadLIF: {t['hybrid_beats_radlif']} (params ratio "
              f"{t['param_ratio_hybrid_over_radlif']:.3f}); KD cuts time steps by "
              f"{t['timestep_cut']:.0%} with {t['kd_acc_drop_pp']:+.2f} pp accuracy drop "
              f"(within 1 pp: {t['kd_acc_drop_within_1pp']}); energy x{t['kd_energy_ratio_fp32']:.3f}"]
    if "kd_acc_drop_pp_unseen" in t:
        lines.append(f"on the unseen-speaker set: hybrid beats RadLIF: {t['hybrid_beats_radlif_unseen']}; "
                     f"KD accuracy drop {t['kd_acc_drop_pp_unseen']:+.2f} pp "
                     f"(within 1 pp: {t['kd_acc_drop_within_1pp_unseen']})")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="synth,fsdd")
    p.add_argument("--synth-root", default="data/synth_kd")
    p.add_argument("--synth-unseen-root", default="data/synth_kd_eval",
                   help="a second synthetic set with the same words and other speakers (another "
                        "seed); every run is also scored on all its clips, when it exists")
    p.add_argument("--fsdd-root", default=str((REPO / ".." / "shared" / "data" / "fsdd").resolve()))
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default: 0)")
    p.add_argument("--runs", default="runs/kd_energy")
    p.add_argument("--kd-alpha", type=float, default=0.9,
                   help="weight of the soft-target loss (0.9 had the higher validation accuracy "
                        "than 0.5 on synth seeds 0 and 1: 0.967 vs 0.954)")
    p.add_argument("--kd-init", default="teacher", choices=["teacher", "scratch"],
                   help="students start from the teacher's weights (default) or from scratch")
    p.add_argument("--kd-stage-epochs", default=None,
                   help="comma-separated epochs of the curriculum stages (e.g. 5,5,20); default: "
                        "--epochs split evenly")
    p.add_argument("--kd-ema", type=float, default=None,
                   help="train.ema_decay of the distilled students (default: --ema)")
    p.add_argument("--ema", type=float, default=0.0,
                   help="train.ema_decay of every trained model (default: 0, off)")
    p.add_argument("--features", default="logmel", choices=sorted(FEATURES),
                   help="front-end of every run: 40 log-mels (spikescr.yaml) or 13 MFCCs with "
                        "deltas (fsdd.yaml)")
    p.add_argument("--augment", action="store_true",
                   help="waveform augmentation of configs/fsdd.yaml (VTLP 0.85-1.15, tempo "
                        "0.8-1.25) in every run")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "kd_energy.json"))
    args = p.parse_args(argv)
    if args.kd_ema is None:
        args.kd_ema = args.ema
    stage_epochs = ([int(e) for e in args.kd_stage_epochs.split(",")] if args.kd_stage_epochs
                    else None)
    # Results of a distillation variant are kept apart from the default ones.
    variant = ", ".join(v for v in (
        "MFCC" if args.features == "mfcc" else "",
        "augmented" if args.augment else "",
        f"EMA {args.ema:g}" if args.ema > 0 else "",
        f"stages {args.kd_stage_epochs}" if stage_epochs else "",
        f"KD EMA {args.kd_ema:g}" if args.kd_ema > 0 and args.kd_ema != args.ema else "") if v)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    sys.path.insert(0, str(REPO / "src"))
    from spikekws.config.schema import atomic_write_text

    out = Path(args.out)
    results: Dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
    for name in filter(None, (s.strip() for s in args.datasets.split(","))):
        if name not in DATASETS:
            raise SystemExit(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
        root = args.synth_root if name == "synth" else args.fsdd_root
        for seed in (int(x) for x in args.seeds.split(",") if x.strip()):
            unseen = args.synth_unseen_root if name == "synth" and Path(args.synth_unseen_root).is_dir() else ""
            res = run_dataset(name, root, Path(args.runs), args.epochs, seed, args.kd_alpha, args.kd_init,
                              unseen, stage_epochs, args.kd_ema, args.features, args.ema,
                              args.augment)
            print(table(res), flush=True)
            results = json.loads(out.read_text()) if out.is_file() else {}  # other processes' datasets
            key = f"{name} ({variant})" if variant else name
            entry = results.get(key, {})
            entry = entry if "per_seed" in entry else {"per_seed": {}}
            entry["per_seed"][str(seed)] = res
            seeds = sorted(entry["per_seed"], key=int)
            entry["mean"] = mean_over_seeds([entry["per_seed"][k] for k in seeds])
            results[key] = entry
            atomic_write_text(out, json.dumps(results, indent=2))
            if len(seeds) > 1:
                print(table(entry["mean"]), flush=True)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
