"""GPU speed of the fused Triton scans against the torch reference, with a correctness check.

The two model configurations of ``benchmarks/speed.py`` (batch 32, T = 100; 140 inputs,
2 x 512, 20 classes and 40 inputs, 3 x 512, 35 classes) for each neuron type, on
``--device`` (default ``cuda``): train step (forward, NLL loss, backward, Adam) and inference
samples/s for the fused backend (``triton`` on CUDA) and the per-step reference (``torch``),
timed alternately (``speed.time_interleaved``) with the device synchronised after each call,
minimum over ``--repeats``.

Before timing, each row compares on the device the fused model's firing rates, outputs and
gradients with the reference's, in float64 copies of the models (relative errors in the
JSON; the script stops when they exceed fp32-level agreement). The kernel tests on the
device are ``pytest -m gpu``. Prints a table, writes JSON with the device
name. ``--device cpu`` runs the same script with the C++ kernels (a dry run on machines
without a GPU). Usage::

    python benchmarks/speed_gpu.py [--device cuda] [--repeats 10] [--neurons lif,adlif,rlif,radlif]
        [--out benchmarks/results/speed_gpu.json]

Target (issue): training step >= 10x faster than the reference on the GPU.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Callable, Dict

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "src"))

import speed  # noqa: E402  (same configurations, model builder, workload and train step)


def _sync(device) -> None:
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _synced(fn: Callable[[], None], device) -> Callable[[], None]:
    """``fn`` followed by a device synchronisation, so that timing it times its kernels."""
    def run() -> None:
        fn()
        _sync(device)
    return run


def _rel(a, b) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def check(models: dict, x, y) -> Dict[str, float]:
    """Fused vs reference on the device, in float64 copies of the models: firing rates,
    output and every parameter gradient. Returns the relative errors (the largest over the
    parameters for the gradients). Dropout is off for the check (the fused backend draws its
    masks differently from ``nn.Dropout``).

    float64, because in float32 the event-driven and recurrent sums round differently from
    the reference's GEMMs, a few spikes near threshold flip, and over 100 steps the
    surrogate gradients of the two runs part completely although both are right."""
    import copy

    import torch
    import torch.nn.functional as F
    outs = {}
    x, models = x.double(), {k: copy.deepcopy(m).double() for k, m in models.items()}
    for label, m in models.items():
        saved = {mod: mod.p for mod in m.modules() if isinstance(mod, torch.nn.Dropout)}
        for mod in saved:
            mod.p = 0.0
        m.train()
        m.zero_grad(set_to_none=True)
        out, rates = m(x)
        F.nll_loss(out, y).backward()
        outs[label] = (out.detach(), rates.detach(),
                       {n: p.grad.detach().clone() for n, p in m.named_parameters() if p.grad is not None})
        m.zero_grad(set_to_none=True)
        for mod, p_drop in saved.items():
            mod.p = p_drop
    (o_f, r_f, g_f), (o_r, r_r, g_r) = outs["fused"], outs["reference"]
    if set(g_f) != set(g_r):
        raise SystemExit(f"gradients for different parameters: {sorted(set(g_f) ^ set(g_r))}")
    err = {"firing_rates": _rel(r_f, r_r), "output": _rel(o_f, o_r),
           "gradients_max": max(_rel(g_f[n], g_r[n]) for n in g_r)}
    # Compiled Triton kernels take thresholds and surrogate constants as fp32 scalars, so on
    # CUDA the float64 runs agree to about fp32 rounding; on CPU to float64 rounding.
    if err["firing_rates"] > 1e-3 or err["output"] > 1e-4 or err["gradients_max"] > 1e-3:
        raise SystemExit(f"fused path disagrees with the reference on this device: {err}")
    return err


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--neurons", default=",".join(speed.NEURONS))
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "speed_gpu.json"))
    args = p.parse_args(argv)
    import torch

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU machine, or --device cpu for a dry run")
    fused = "triton" if device.type == "cuda" else "cpp"
    backends = {"fused": fused, "reference": "torch"}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    rows = []
    for cfg in speed.CONFIGS:
        for neuron in [n for n in args.neurons.split(",") if n]:
            x = speed.features(cfg["batch"], cfg["steps"], cfg["in_features"]).to(device)
            y = torch.randint(0, cfg["num_classes"], (cfg["batch"],),
                              generator=torch.Generator().manual_seed(1)).to(device)
            models = {k: speed.build(cfg, neuron, b).to(device) for k, b in backends.items()}
            err = check(models, x, y)
            _sync(device)
            train = speed.time_interleaved(
                {k: _synced(speed.make_train_step(m, x, y), device) for k, m in models.items()},
                args.repeats, args.warmup)
            for m in models.values():
                m.eval()

            def infer(m):
                def run() -> None:
                    with torch.inference_mode():
                        m(x)
                return run

            inf = speed.time_interleaved({k: _synced(infer(m), device) for k, m in models.items()},
                                         args.repeats, args.warmup)
            b = cfg["batch"]
            row = {"config": cfg["name"], "neuron": neuron, "check": err}
            for k in models:
                row[k] = {"train_samples_per_s": b / train[k]["min_s"], "infer_samples_per_s": b / inf[k]["min_s"],
                          "train_times_s": train[k], "infer_times_s": inf[k]}
            row["train_speedup"] = train["reference"]["min_s"] / train["fused"]["min_s"]
            row["infer_speedup"] = inf["reference"]["min_s"] / inf["fused"]["min_s"]
            rows.append(row)
            print(f"{cfg['name']:>18s} {neuron:>6s}  train x{row['train_speedup']:.2f}  "
                  f"infer x{row['infer_speedup']:.2f}  (vs reference: rates {err['firing_rates']:.1e}, "
                  f"output {err['output']:.1e}, grads {err['gradients_max']:.1e})", flush=True)
    lines = [f"Device: {name}; fused = backend {fused!r}, reference = 'torch'; samples/s, best of "
             f"{args.repeats}", "",
             "| config | neuron | train fused | train ref | train x | infer fused | infer ref | infer x |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f, ref = r["fused"], r["reference"]
        lines.append(f"| {r['config']} | {r['neuron']} | {f['train_samples_per_s']:.0f} | "
                     f"{ref['train_samples_per_s']:.0f} | {r['train_speedup']:.2f} | "
                     f"{f['infer_samples_per_s']:.0f} | {ref['infer_samples_per_s']:.0f} | "
                     f"{r['infer_speedup']:.2f} |")
    print("\n".join(lines))
    out = {"benchmark": "neuron_scan_speed_gpu", "device": name, "device_type": device.type,
           "fused_backend": fused, "torch": torch.__version__,
           "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "repeats": args.repeats, "rows": rows}
    from spikekws.atomic import atomic_write_text
    atomic_write_text(Path(args.out), json.dumps(out, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
