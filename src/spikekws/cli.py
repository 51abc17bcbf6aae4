"""``spikekws <command>``: parse -> config -> build -> call.

User errors (bad paths, names, config keys, audio files) print one line
``spikekws: error: ...`` and exit with status 2, without a traceback.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional

from . import __version__

log = logging.getLogger("spikekws")

USER_ERRORS = (ValueError, TypeError, KeyError, FileNotFoundError, NotADirectoryError,
               PermissionError, FloatingPointError)


def _setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("spikekws")
    root.handlers = [h for h in root.handlers if isinstance(h, logging.NullHandler)] + [handler]
    root.setLevel(level)
    root.propagate = False


def _parse_kv(items: Optional[List[str]]) -> dict:
    from .config.schema import apply_overrides
    return apply_overrides({}, items or [])


# ----------------------------------------------------------------------------- commands
def cmd_synth(args: argparse.Namespace) -> int:
    from .data.synth import generate
    langs = tuple(s.strip() for s in args.lang.split(",") if s.strip())
    words = None
    if args.words is not None:
        words = [w.strip() for w in args.words.split(",") if w.strip()]
        if not words:
            raise ValueError("--words needs at least one word (comma-separated)")
    out = generate(args.out, langs=langs, speakers=args.speakers, per_speaker=args.per_speaker,
                   seed=args.seed, sample_rate=args.sample_rate, workers=args.workers,
                   progress=not args.no_progress, words=words)
    print(f"synthetic dataset ready: {out}")
    return 0


def _interruptible(train_run, cfg, out, **kwargs):
    """Ctrl-C: last.pt keeps the last complete epoch (written atomically); say how to resume."""
    try:
        return train_run(cfg, out, **kwargs)
    except KeyboardInterrupt:
        last = Path(out) / "checkpoints" / "last.pt"
        hint = (f"{last} holds the last complete epoch; continue with: spikekws train --out "
                f"{out} --resume" if last.is_file() else "no epoch was completed")
        raise KeyboardInterrupt(hint) from None


def cmd_train(args: argparse.Namespace) -> int:
    from .config import load_config
    from .train.runner import train_run
    if args.resume:
        if args.config or args.overrides:
            raise ValueError("--resume continues with the run's stored config; "
                             "do not pass a config file or overrides")
        summary = _interruptible(train_run, None, args.out, resume=True)
    else:
        config_path = args.config
        overrides = list(args.overrides)
        if config_path is not None and "=" in config_path and not Path(config_path).exists():
            overrides.insert(0, config_path)
            config_path = None
        cfg = load_config(config_path, overrides)
        if args.no_progress:
            cfg.train.progress = False
        summary = _interruptible(train_run, cfg, args.out)
    best = summary["best"]
    from .train.distributed import env_context
    if env_context().is_main:  # under torchrun, one line for the run, not one per process
        print(f"trained {summary['run_dir']}: best valid accuracy {best['valid_acc']:.4f} "
              f"at epoch {best['epoch']}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .train.runner import evaluate_run
    options = _parse_kv(args.option) if args.option else None
    rep = evaluate_run(args.run, split=args.split, dataset=args.dataset, root=args.root,
                       options=options, checkpoint=args.checkpoint, device=args.device,
                       progress=not args.no_progress)
    rates = ", ".join(f"{r:.3f}" for r in rep["firing_rates"])
    print(f"{rep['dataset']}/{args.split}: accuracy {rep['accuracy']:.4f}  "
          f"F1 micro {rep['f1_micro']:.4f}  F1 macro {rep['f1_macro']:.4f}  "
          f"({rep['num_samples']} samples)  firing rates [{rates}]")
    if rep.get("energy"):
        from .train.energy import energy_table
        print(f"operations and energy per sample (T={rep['energy']['timesteps']}):")
        print(energy_table(rep["energy"]))
    print(f"wrote {Path(args.run) / 'metrics.json'} and {Path(args.run) / 'report.md'}")
    return 0


def _int_list(text: str, name: str) -> List[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{name} must be comma-separated integers, got {text!r}") from None
    if not values:
        raise ValueError(f"{name} needs at least one integer, got {text!r}")
    return values


def cmd_distill(args: argparse.Namespace) -> int:
    from .train.distill import distill_run
    curriculum = _int_list(args.curriculum, "--curriculum") if args.curriculum else None
    summary = distill_run(args.teacher, args.out, timesteps=args.timesteps, curriculum=curriculum,
                          temperature=args.temperature, alpha=args.alpha, epochs=args.epochs,
                          student_config=args.student_config, overrides=list(args.overrides),
                          init=args.init, scale_dt=not args.no_scale_dt,
                          checkpoint=args.checkpoint, progress=False if args.no_progress else None,
                          stage_epochs=(_int_list(args.stage_epochs, "--stage-epochs")
                                        if args.stage_epochs else None))
    best = summary["best"]
    stages = " -> ".join(str(s) for s in summary["stages"])
    print(f"distilled {summary['run_dir']}: T {summary['teacher_timesteps']} (teacher valid accuracy "
          f"{summary['teacher_valid_acc']:.4f}) -> {stages}; best valid accuracy "
          f"{best['valid_acc']:.4f} at epoch {best['epoch']}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report.html import write_html_report
    res = write_html_report(args.run, split=args.split, checkpoint=args.checkpoint,
                            samples=args.samples, hist_samples=args.hist_samples,
                            embed=args.embed, device=args.device, progress=not args.no_progress)
    where = "embedded" if args.embed else f"in {Path(args.run) / 'report'}"
    print(f"wrote {res['path']} ({len(res['figures'])} figures {where}, {res['seconds']:.1f}s)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .report.compare import compare_runs, format_table
    groups = compare_runs(args.runs, split=args.split)
    if args.json:
        print(json.dumps(groups, indent=2))
    else:
        print(format_table(groups))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .convert.runner import convert_run, markdown_table
    rep = convert_run(args.run, timesteps=args.timesteps, calibration=args.calibration,
                      shift=args.shift, per_channel=args.per_channel, percentile=args.percentile,
                      calibration_samples=args.calibration_samples, checkpoint=args.checkpoint,
                      device=args.device, batch_size=args.batch_size, integer=args.integer,
                      seed=args.seed, progress=not args.no_progress)
    print(markdown_table(rep))
    run = Path(args.run)
    print(f"wrote {run / 'conversion.json'}, {run / 'conversion.md'} and {run / 'conversion.png'}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from .data.download import DownloadError, download_dataset
    try:
        root = download_dataset(args.name, args.to, base_url=args.base_url,
                                keep_archives=args.keep_archives, timeout=args.timeout,
                                progress=not args.no_progress)
    except DownloadError as e:
        print(f"spikekws: error: {e}", file=sys.stderr)
        return 2
    print(f"{args.name} ready: use data.name={args.name} data.root={root}")
    return 0


def cmd_spikify(args: argparse.Namespace) -> int:
    from .data.spikify import spikify
    name = args.dataset_opt or args.dataset
    if not name:
        raise ValueError("spikify needs the source dataset name (e.g. spikekws spikify synth "
                         "--root data/synth --to data/synth-spikes)")
    if args.dataset and args.dataset_opt and args.dataset != args.dataset_opt:
        raise ValueError(f"two source datasets given: {args.dataset!r} and --dataset "
                         f"{args.dataset_opt!r}")
    if args.root is None:
        raise ValueError("spikify needs --root, the source dataset's folder")
    summary = spikify(name, args.root, args.to, encoder=args.encoder,
                      encoder_options=_parse_kv(args.encoder_option),
                      features=args.features, feature_options=_parse_kv(args.feature_option),
                      options=_parse_kv(args.option), batch_size=args.batch_size, seed=args.seed,
                      overwrite=args.overwrite, progress=not args.no_progress)
    counts = ", ".join(f"{k} {v['samples']}" for k, v in summary["splits"].items())
    print(f"wrote spike files to {args.to} ({counts}; {summary['num_channels']} channels, "
          f"{summary['num_steps']} steps of {summary['dt'] * 1e3:g} ms): train with "
          f"data.name=shd data.root={args.to}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from .convert.calibrate import CALIBRATIONS
    from .data import list_datasets
    from .data.augment import AUGMENT_KEYS
    from .export.targets import list_targets
    from .features import FEATURES
    from .features.encoders import ENCODERS
    from .models import MODELS
    from .neurons import NEURONS, SURROGATES
    tables = {"datasets": list_datasets(), "features": FEATURES.list(), "encoders": ENCODERS.list(),
              "models": MODELS.list(), "neurons": NEURONS.list(), "surrogates": SURROGATES.list(),
              "calibrations": CALIBRATIONS.list(), "targets": list(list_targets()),
              "augment": [k for k in AUGMENT_KEYS if k != "seed"]}
    what = args.what
    if what and what not in tables:
        raise ValueError(f"unknown list {what!r}; choose from {', '.join(tables)}")
    if args.json:
        print(json.dumps(tables if not what else tables[what], indent=2))
        return 0
    for name, entries in tables.items():
        if what and name != what:
            continue
        print(f"{name}: {', '.join(entries)}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    try:
        if args.format == "nir":
            from .export.nir import export_run
            path = export_run(args.run, args.out, checkpoint=args.checkpoint)
        else:
            from .export.onnx import export_run_onnx
            path = export_run_onnx(args.run, args.out, checkpoint=args.checkpoint)
    except ImportError as e:  # optional dependency missing: one-line user error
        raise ValueError(str(e)) from None
    print(f"wrote {path}")
    return 0


def cmd_check_hw(args: argparse.Namespace) -> int:
    from .export.targets import get_target
    from .train.runner import load_run
    profile = get_target(args.target)
    _, _, model, _ = load_run(args.run, args.checkpoint)
    violations = profile.check(model)
    for v in violations:
        print(f"{v.layer}: {v.message}")
    if violations:
        print(f"{len(violations)} violation(s) of the {profile.name} profile ({profile.description})")
        return 1
    print(f"fits the {profile.name} profile ({profile.description})")
    return 0


def cmd_stream(args: argparse.Namespace) -> int:
    from .stream.runner import KeywordStreamer, read_wave, stream_microphone
    if args.mic == (args.file is not None):
        raise ValueError("give an audio FILE or --mic (not both)")
    if args.mic:
        try:
            import sounddevice  # noqa: F401
        except (ImportError, OSError):
            raise ValueError("--mic needs the sounddevice package (and PortAudio): "
                             "pip install sounddevice") from None
    kws = KeywordStreamer.from_run(args.run, args.checkpoint, threshold=args.threshold,
                                   refractory_s=args.refractory, hangover_s=args.hangover,
                                   preroll=args.preroll, floor_quantile=args.floor_quantile)
    if args.mic:
        print("listening (Ctrl-C to stop)")
        stream_microphone(kws, lambda d: print(f"{d.time_s:8.2f} s  {d.word}  (score {d.score:.2f})",
                                               flush=True))
    else:
        for d in kws.process(read_wave(args.file, kws.sample_rate)):
            print(f"{d.time_s:8.2f} s  {d.word}  (score {d.score:.2f})")
    st = kws.stats()
    if st.get("frames"):
        print(f"latency per {st['hop_ms']:g} ms frame: median {st['latency_ms_median']:.3f} ms, "
              f"p95 {st['latency_ms_p95']:.3f} ms; real-time factor {st['rtf']:.4f} "
              f"(thread CPU time: {st['rtf_cpu']:.4f}; {st['frames']} frames, "
              f"{st['audio_s']:.2f} s of audio)")
    return 0


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spikekws", description="Keyword spotting with spiking neural networks.")
    p.add_argument("--version", action="version", version=f"spikekws {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=1)
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and results")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("synth", help="generate the synthetic speech-commands dataset (eSpeak NG)")
    s.add_argument("--out", required=True, help="output folder (Google Speech Commands layout)")
    s.add_argument("--lang", default="en", help="en, ru or en,ru (default: en)")
    s.add_argument("--speakers", type=int, default=100)
    s.add_argument("--per-speaker", type=int, default=1, help="clips per word and speaker")
    s.add_argument("--words", default=None,
                   help="comma-separated subset of the vocabulary (or new words); default: all")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--sample-rate", type=int, default=16000, help="output sample rate in Hz")
    s.add_argument("--workers", type=int, default=None)
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_synth)

    t = sub.add_parser("train", help="train a model from a YAML config with dotted overrides")
    t.add_argument("config", nargs="?", default=None, help="YAML config (optional)")
    t.add_argument("overrides", nargs="*", help="section.key=value overrides")
    t.add_argument("--out", required=True, help="run directory")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="evaluate a trained run; writes metrics.json and report.md")
    e.add_argument("run", help="run directory")
    e.add_argument("--split", default="test", choices=("train", "valid", "test"))
    e.add_argument("--dataset", default=None, help="evaluate on another dataset (same labels)")
    e.add_argument("--root", default=None, help="dataset folder (default: the run's)")
    e.add_argument("--option", action="append", help="dataset option key=value (repeatable)")
    e.add_argument("--checkpoint", default="best", choices=("best", "last"))
    e.add_argument("--device", default="auto")
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("report", help="write RUN/report.html: curves, confusion, F1, spike rasters, "
                                       "membranes, firing-rate histograms, energy, config")
    r.add_argument("run", help="run directory")
    r.add_argument("--split", default="test", choices=("train", "valid", "test"),
                   help="split of the metrics and sample clips (evaluated first if missing)")
    r.add_argument("--checkpoint", default="best", choices=("best", "last"))
    r.add_argument("--samples", type=int, default=3, help="clips with rasters and membranes")
    r.add_argument("--hist-samples", type=int, default=64,
                   help="clips for the firing-rate histograms (default: 64)")
    r.add_argument("--embed", action="store_true", help="embed the figures in the HTML file")
    r.add_argument("--device", default="cpu")
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=cmd_report)

    cm = sub.add_parser("compare", help="compare runs side by side (seeds of one config pooled "
                                         "as mean ± std)")
    cm.add_argument("runs", nargs="+", help="run directories")
    cm.add_argument("--split", default="test", choices=("train", "valid", "test"),
                    help="split of metrics.json to compare (default: test)")
    cm.add_argument("--json", action="store_true", help="print JSON instead of a table")
    cm.set_defaults(func=cmd_compare)

    c = sub.add_parser("convert", help="convert a trained ANN run (cnn2d, mlp) to a spiking network "
                                        "and tabulate accuracy vs time steps")
    c.add_argument("run", help="run directory")
    c.add_argument("--timesteps", default="16,32,50,100,200",
                   help="comma-separated numbers of time steps (default: 16,32,50,100,200)")
    c.add_argument("--calibration", default="mse", choices=("mse", "max", "percentile", "qcfs"),
                   help="threshold per layer: mse (ReLU vs ClipFloor), max, percentile, or the "
                        "learned clip value of a QCFS model (default: mse)")
    c.add_argument("--percentile", type=float, default=99.9,
                   help="percentile for --calibration percentile (default: 99.9)")
    c.add_argument("--shift", action="store_true",
                   help="start membranes at half the threshold (rounding instead of flooring)")
    c.add_argument("--per-channel", action="store_true",
                   help="one int8 weight scale per output channel (default: per layer)")
    c.add_argument("--calibration-samples", type=int, default=512,
                   help="training clips used to calibrate thresholds (default: 512)")
    c.add_argument("--integer", action="store_true",
                   help="evaluate the SNN with the integer-only simulation (slower)")
    c.add_argument("--checkpoint", default="best", choices=("best", "last"))
    c.add_argument("--device", default="auto")
    c.add_argument("--batch-size", type=int, default=None)
    c.add_argument("--seed", type=int, default=0, help="seed of the calibration subset")
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=cmd_convert)

    d = sub.add_parser("download", help="download a benchmark dataset (checksummed, resumable)")
    d.add_argument("name", help="shd, ssc, hd, gsc, gsc12 or fsdd")
    d.add_argument("--to", required=True, help="target folder")
    d.add_argument("--base-url", default=None, help="mirror to use instead of the official URL")
    d.add_argument("--keep-archives", action="store_true", help="keep the archives after unpacking")
    d.add_argument("--timeout", type=float, default=30.0, help="network timeout in seconds")
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=cmd_download)

    sp = sub.add_parser("spikify", help="convert an audio dataset to SHD-format spike files "
                                         "(features + spike encoder)")
    sp.add_argument("dataset", nargs="?", default=None, help="source dataset name (e.g. synth)")
    sp.add_argument("--dataset", dest="dataset_opt", default=None, help="same as the positional name")
    sp.add_argument("--root", default=None, help="source dataset folder")
    sp.add_argument("--to", required=True, help="output folder (train.h5, valid.h5, test.h5)")
    sp.add_argument("--encoder", default="rate", help="rate, latency or delta (default: rate)")
    sp.add_argument("--encoder-option", action="append", help="encoder argument key=value (repeatable)")
    sp.add_argument("--features", default="logmel", help="front-end (default: logmel)")
    sp.add_argument("--feature-option", action="append", help="front-end argument key=value (repeatable)")
    sp.add_argument("--option", action="append", help="dataset option key=value (repeatable)")
    sp.add_argument("--batch-size", type=int, default=64)
    sp.add_argument("--seed", type=int, default=0, help="seed of random encoders")
    sp.add_argument("--overwrite", action="store_true")
    sp.add_argument("--no-progress", action="store_true")
    sp.set_defaults(func=cmd_spikify)

    kd = sub.add_parser("distill", help="distil a trained run into a student with fewer time "
                                         "steps (KD with a time-step curriculum)")
    kd.add_argument("teacher", help="trained teacher run directory")
    kd.add_argument("overrides", nargs="*", help="section.key=value overrides of the student config")
    kd.add_argument("--out", required=True, help="student run directory")
    kd.add_argument("--timesteps", type=int, required=True,
                    help="the student's time steps per clip (features resampled along time)")
    kd.add_argument("--curriculum", default=None,
                    help="comma-separated step counts of the stages, ending at --timesteps "
                         "(e.g. 100,70,40; default: one stage)")
    kd.add_argument("--temperature", type=float, default=4.0, help="softmax temperature (default: 4)")
    kd.add_argument("--alpha", type=float, default=0.5,
                    help="weight of the distillation term; 1 - alpha weighs the label loss (default: 0.5)")
    kd.add_argument("--epochs", type=int, default=None,
                    help="total epochs over all stages, split evenly (default: the student "
                         "config's train.epochs)")
    kd.add_argument("--stage-epochs", default=None,
                    help="comma-separated epochs of each curriculum stage (e.g. 5,5,20), "
                         "instead of an even split of --epochs")
    kd.add_argument("--student-config", default=None,
                    help="YAML config of the student (default: the teacher's config)")
    kd.add_argument("--init", default="scratch", choices=("scratch", "teacher"),
                    help="first stage starts from fresh weights or the teacher's (same architecture)")
    kd.add_argument("--no-scale-dt", action="store_true",
                    help="keep the neurons' dt instead of scaling it by T_teacher / T")
    kd.add_argument("--checkpoint", default="best", choices=("best", "last"),
                    help="teacher checkpoint (default: best)")
    kd.add_argument("--no-progress", action="store_true")
    kd.set_defaults(func=cmd_distill)

    ls = sub.add_parser("list", help="list registered datasets, features, encoders, models, "
                                     "neurons, surrogates, calibrations, chip targets, augmentation keys")
    ls.add_argument("what", nargs="?", default=None)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    ex = sub.add_parser("export", help="export a trained run: SNN to NIR, ANN baseline to ONNX")
    ex.add_argument("run", help="run directory")
    ex.add_argument("--format", required=True, choices=("nir", "onnx"))
    ex.add_argument("--out", default=None, help="output file (default: RUN/model.nir or RUN/model.onnx)")
    ex.add_argument("--checkpoint", default="best", choices=("best", "last"))
    ex.set_defaults(func=cmd_export)

    hw = sub.add_parser("check-hw", help="check a trained SNN against a chip profile "
                                          "(exit 1 when it violates it)")
    hw.add_argument("run", help="run directory")
    hw.add_argument("--target", required=True, help="chip profile: altai, loihi2, truenorth, xylo")
    hw.add_argument("--checkpoint", default="best", choices=("best", "last"))
    hw.set_defaults(func=cmd_check_hw)

    st = sub.add_parser("stream", help="spot keywords in an audio file (or the microphone) frame "
                                        "by frame; prints detections, latency and real-time factor")
    st.add_argument("run", help="run directory")
    st.add_argument("file", nargs="?", default=None, help="audio file at the run's sample rate")
    st.add_argument("--mic", action="store_true", help="listen to the microphone (needs sounddevice)")
    st.add_argument("--threshold", type=float, default=0.3,
                    help="smoothed posterior needed to report a word (default: 0.3)")
    st.add_argument("--refractory", type=float, default=0.5,
                    help="seconds without detections after one (default: 0.5)")
    st.add_argument("--hangover", type=float, default=0.4,
                    help="seconds a segment stays open after the sound drops (default: 0.4)")
    st.add_argument("--preroll", type=int, default=30,
                    help="background frames replayed after the state reset at a speech onset "
                         "(default: 30)")
    st.add_argument("--floor-quantile", type=float, default=0.0,
                    help="quantile of the last 3 s of frame energies taken as the noise floor "
                         "of the voice-activity gate (default 0: the minimum; 0.1 ignores a few "
                         "unusually quiet frames, e.g. in streams that join recordings)")
    st.add_argument("--checkpoint", default="best", choices=("best", "last"))
    st.set_defaults(func=cmd_stream)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Overrides may come after options (``train cfg.yaml --out R a.b=1``).
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = list(args.overrides) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    _setup_logging(0 if args.quiet else args.verbose)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as e:
        if os.environ.get("SPIKEKWS_DEBUG"):
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"spikekws: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        detail = f"; {e.args[0]}" if e.args else ""
        print(f"spikekws: interrupted{detail}", file=sys.stderr)
        return 130
    except ImportError as e:  # optional dependencies say which pip line installs them
        if "pip install" not in str(e) or os.environ.get("SPIKEKWS_DEBUG"):
            raise
        print(f"spikekws: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
