"""CPU speed and memory of the fused neuron scans against the torch reference.

For each model configuration and neuron type (lif, adlif, rlif, radlif) this measures, with
``spikekws.models.build_model("snn", ...)``:

- train step: forward + NLL loss + backward + Adam step, in samples/s;
- inference: forward under ``torch.inference_mode()`` in eval mode, in samples/s;

for the fused path (``backend="cpp"``) and the reference (``backend="torch"``, the per-step
Python loop), on every neuron module including the leaky-integrator readout. A second table
times one neuron layer alone (``[T, B, H]`` in, spikes out), which isolates the scan from
the linear layers, batch norm and dropout that both paths share.

Memory, two measures:

- saved for backward: bytes of the distinct tensors autograd keeps between forward and
  backward (``torch.autograd.graph.saved_tensors_hooks``; parameters excluded). Exact and
  deterministic: the activation memory a training step holds at the start of backward.
- peak step RSS: in a fresh subprocess per row, the rise of the process's peak resident set
  (Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` just before) over one train
  step, above the resident set once the model, optimizer, inputs and extension are loaded
  and every code path has run once on a tiny input. The child runs with glibc's
  ``MALLOC_MMAP_THRESHOLD_`` fixed at 128 KiB so that every large tensor is mapped on
  allocation and unmapped on free; the peak RSS then follows the peak of live memory
  instead of what the allocator chose to keep.

Inputs are spectrogram-like: a first-order autoregressive process per feature (correlation
0.95 between frames), so that firing rates are those of slowly varying features rather than
of white noise; the mean firing rate of each configuration is reported with the timings.

If ``snntorch`` is importable, an snnTorch LIF stack of the same sizes (Linear and batch norm
over the sequence, ``snn.Leaky`` stepped in time) is timed as well, for scale: its neuron
and readout equations differ from ours.

Usage::

    python benchmarks/speed.py [--threads 2] [--repeats 5] [--quick]
        [--neurons lif,adlif,rlif,radlif] [--no-memory] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

CONFIGS = [
    {"name": "140in-2x512-20cls", "batch": 32, "steps": 100, "in_features": 140,
     "hidden_sizes": [512, 512], "num_classes": 20},
    {"name": "40in-3x512-35cls", "batch": 32, "steps": 100, "in_features": 40,
     "hidden_sizes": [512, 512, 512], "num_classes": 35},
]
NEURONS = ["lif", "adlif", "rlif", "radlif"]
BACKENDS = {"fused": "cpp", "reference": "torch"}


# --------------------------------------------------------------------------------------
# Workloads
# --------------------------------------------------------------------------------------

def features(batch: int, steps: int, num: int, seed: int = 0, corr: float = 0.95):
    """[batch, steps, num] unit-variance AR(1) features: slowly varying, like a spectrogram."""
    import torch

    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(batch, steps, num, generator=g)
    out = torch.empty_like(noise)
    out[:, 0] = noise[:, 0]
    scale = (1.0 - corr * corr) ** 0.5
    for t in range(1, steps):
        out[:, t] = corr * out[:, t - 1] + scale * noise[:, t]
    return out


def set_backend(model, backend: str) -> None:
    """Every neuron module (spiking layers and the LI readout) uses ``backend``."""
    for m in model.modules():
        if hasattr(m, "backend"):
            m.backend = backend


def build(cfg: dict, neuron: str, backend: str, seed: int = 0):
    import torch

    from spikekws.models import build_model

    torch.manual_seed(seed)
    model = build_model("snn", cfg["in_features"], cfg["num_classes"], neuron=neuron,
                        hidden_sizes=cfg["hidden_sizes"], backend=backend)
    set_backend(model, backend)
    return model


def make_train_step(model, x, y) -> Callable[[], None]:
    import torch
    import torch.nn.functional as F

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        out, _ = model(x)
        F.nll_loss(out, y).backward()
        opt.step()

    return step


def time_call(fn: Callable[[], None], repeats: int, warmup: int) -> Dict[str, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


def saved_for_backward_bytes(model, x, y) -> int:
    """Bytes of the distinct non-parameter tensors autograd saves in one forward."""
    import torch
    import torch.nn.functional as F

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: Dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        ptr = st.data_ptr()
        if ptr not in params and ptr != 0:
            seen[ptr] = max(seen.get(ptr, 0), st.nbytes())
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out, _ = model(x)
        loss = F.nll_loss(out, y)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(seen.values())


# --------------------------------------------------------------------------------------
# Model-level and layer-level measurements
# --------------------------------------------------------------------------------------

def bench_model(cfg: dict, neuron: str, backend: str, repeats: int, warmup: int) -> dict:
    import torch

    x = features(cfg["batch"], cfg["steps"], cfg["in_features"])
    y = torch.randint(0, cfg["num_classes"], (cfg["batch"],), generator=torch.Generator().manual_seed(1))
    model = build(cfg, neuron, backend)
    model.train()
    with torch.no_grad():
        _, rates = model(x)
    saved = saved_for_backward_bytes(model, x, y)
    train = time_call(make_train_step(model, x, y), repeats, warmup)
    model.eval()
    with torch.inference_mode():
        infer = time_call(lambda: model(x), repeats, warmup)
    b = cfg["batch"]
    return {
        "train_samples_per_s": b / train["median_s"], "train_step_ms": 1e3 * train["median_s"],
        "infer_samples_per_s": b / infer["median_s"], "infer_ms": 1e3 * infer["median_s"],
        "train_times_s": train, "infer_times_s": infer,
        "saved_for_backward_mb": saved / 2**20,
        "firing_rates": [round(r, 4) for r in rates.tolist()],
    }


def bench_layer(neuron: str, backend: str, repeats: int, warmup: int, steps: int = 100,
                batch: int = 32, size: int = 512) -> dict:
    """One neuron layer: x [T, B, H] (unit-variance AR(1) drive plus an offset) -> spikes."""
    import torch

    from spikekws.neurons import build_neuron

    torch.manual_seed(0)
    layer = build_neuron(neuron, size, backend=backend)
    x = (0.8 + features(batch, steps, size, seed=2)).transpose(0, 1).contiguous()
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    xg = x.clone().requires_grad_(True)

    def train() -> None:
        layer.zero_grad(set_to_none=True)
        xg.grad = None
        s, _ = layer(xg)
        (s * w).sum().backward()

    with torch.no_grad():
        rate = layer(x)[0].mean().item()
    tr = time_call(train, repeats, warmup)
    with torch.inference_mode():
        inf = time_call(lambda: layer(x), repeats, warmup)
    return {"fwd_bwd_ms": 1e3 * tr["median_s"], "fwd_ms": 1e3 * inf["median_s"],
            "firing_rate": round(rate, 4)}


def bench_snntorch(cfg: dict, repeats: int, warmup: int) -> Optional[dict]:
    """An snnTorch LIF stack of the same sizes, wired like ours: per layer a Linear and a
    batch norm over the whole sequence, then ``snn.Leaky`` (subtract reset) stepped in time;
    the readout is a non-resetting Leaky membrane, scored like our LI readout."""
    try:
        import snntorch as snn
    except Exception:
        return None
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            sizes = [cfg["in_features"], *cfg["hidden_sizes"], cfg["num_classes"]]
            pairs = list(zip(sizes, sizes[1:]))
            self.fcs = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in pairs)
            self.norms = nn.ModuleList(nn.BatchNorm1d(b) for _, b in pairs)
            self.lifs = nn.ModuleList(
                snn.Leaky(beta=0.9, learn_beta=True, reset_mechanism="subtract"
                          if i < len(pairs) - 1 else "none")
                for i in range(len(pairs)))

        def forward(self, x):  # x: [B, T, F]
            h = x.transpose(0, 1)  # [T, B, F]
            for i, (fc, norm, lif) in enumerate(zip(self.fcs, self.norms, self.lifs)):
                cur = fc(h)
                t_, b_, f_ = cur.shape
                cur = norm(cur.reshape(t_ * b_, f_)).reshape(t_, b_, f_)
                mem = lif.init_leaky()
                out = []
                for t in range(t_):
                    spk, mem = lif(cur[t], mem)
                    out.append(mem if i == len(self.lifs) - 1 else spk)
                h = torch.stack(out)
            return torch.log(torch.softmax(h, -1).mean(0) + 1e-12)

    torch.manual_seed(0)
    net = Net()
    x = features(cfg["batch"], cfg["steps"], cfg["in_features"])
    y = torch.randint(0, cfg["num_classes"], (cfg["batch"],), generator=torch.Generator().manual_seed(1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.nll_loss(net(x), y).backward()
        opt.step()

    net.train()
    tr = time_call(step, repeats, warmup)
    net.eval()
    with torch.inference_mode():
        inf = time_call(lambda: net(x), repeats, warmup)
    b = cfg["batch"]
    return {"train_samples_per_s": b / tr["median_s"], "infer_samples_per_s": b / inf["median_s"],
            "snntorch_version": getattr(snn, "__version__", "?")}


# --------------------------------------------------------------------------------------
# Peak RSS of one train step, in a fresh process per row
# --------------------------------------------------------------------------------------

def _proc_status_mb() -> Dict[str, float]:
    """VmRSS (resident now) and VmHWM (peak resident) of this process, in MiB (Linux)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024.0
    return out


def _reset_peak_rss() -> bool:
    """Sets VmHWM back to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_child(spec: dict) -> dict:
    import torch

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    cfg = spec["cfg"]
    x = features(cfg["batch"], cfg["steps"], cfg["in_features"])
    y = torch.randint(0, cfg["num_classes"], (cfg["batch"],), generator=torch.Generator().manual_seed(1))
    model = build(cfg, spec["neuron"], spec["backend"])
    step = make_train_step(model, x, y)
    # Load the extension and touch every code path on a tiny input first.
    tiny = x[:2, :3].contiguous()
    out, _ = model(tiny)
    out.sum().backward()
    model.zero_grad(set_to_none=True)
    gc.collect()
    # ru_maxrss is not usable here: Linux carries it over from the parent across exec.
    if not _reset_peak_rss():
        raise RuntimeError("cannot reset the peak RSS (/proc/self/clear_refs)")
    base = _proc_status_mb()["VmRSS"]
    step()
    return {"peak_step_rss_mb": _proc_status_mb()["VmHWM"] - base, "baseline_rss_mb": base}


def memory_in_subprocess(cfg: dict, neuron: str, backend: str, threads: Optional[int]) -> dict:
    spec = {"cfg": cfg, "neuron": neuron, "backend": backend, "threads": threads}
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    proc = subprocess.run([sys.executable, __file__, "--memory-child", json.dumps(spec)],
                          capture_output=True, text=True, env=env, cwd=str(REPO))
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------

def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repetitions per measurement (median reported)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--quick", action="store_true",
                    help="first configuration only, 2 repeats, 1 warm-up, no subprocess memory runs")
    ap.add_argument("--neurons", default=",".join(NEURONS))
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-RSS subprocesses")
    ap.add_argument("--out", default=None,
                    help="JSON file (default: benchmarks/results/speed.json, speed_quick.json with --quick)")
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.memory_child is not None:
        print(json.dumps(memory_child(json.loads(args.memory_child))))
        return 0

    import torch

    from spikekws.neurons.functional.backends import cpp

    if args.threads:
        torch.set_num_threads(args.threads)
    neurons = [n.strip() for n in args.neurons.split(",") if n.strip()]
    unknown = sorted(set(neurons) - set(NEURONS))
    if unknown:
        ap.error(f"--neurons: unknown {unknown}; choose from {NEURONS}")
    configs = CONFIGS[:1] if args.quick else CONFIGS
    repeats = 2 if args.quick else args.repeats
    warmup = 1 if args.quick else args.warmup
    memory = not (args.quick or args.no_memory)

    t_build = time.perf_counter()
    if not cpp.available():
        print(f"fused C++ kernels unavailable ({cpp.build_error()}); nothing to compare", file=sys.stderr)
        return 1
    build_s = time.perf_counter() - t_build

    meta = {
        "benchmark": "neuron_scan_speed_cpu",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "torch": torch.__version__, "python": platform.python_version(), "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
        "repeats": repeats, "warmup": warmup, "extension_load_s": round(build_s, 2),
        "input": "AR(1) features, correlation 0.95 between frames, unit variance",
        "fused_backend": BACKENDS["fused"], "reference_backend": BACKENDS["reference"],
    }
    print(f"torch {meta['torch']}, {meta['threads']} thread(s), {meta['cpu']}", flush=True)

    rows = []
    for cfg in configs:
        for neuron in neurons:
            row = {"config": cfg["name"], "neuron": neuron}
            for label, backend in BACKENDS.items():
                r = bench_model(cfg, neuron, backend, repeats, warmup)
                if memory:
                    r.update(memory_in_subprocess(cfg, neuron, backend, args.threads))
                row[label] = r
            f, ref = row["fused"], row["reference"]
            row["train_speedup"] = f["train_samples_per_s"] / ref["train_samples_per_s"]
            row["infer_speedup"] = f["infer_samples_per_s"] / ref["infer_samples_per_s"]
            rows.append(row)
            print(f"  {cfg['name']:18s} {neuron:7s} train x{row['train_speedup']:.2f}  "
                  f"infer x{row['infer_speedup']:.2f}", flush=True)

    layer_rows = []
    for neuron in neurons:
        lr = {"neuron": neuron}
        for label, backend in BACKENDS.items():
            lr[label] = bench_layer(neuron, backend, repeats, warmup)
        lr["fwd_bwd_speedup"] = lr["reference"]["fwd_bwd_ms"] / lr["fused"]["fwd_bwd_ms"]
        lr["fwd_speedup"] = lr["reference"]["fwd_ms"] / lr["fused"]["fwd_ms"]
        layer_rows.append(lr)

    snn_rows = []
    for cfg in configs:
        r = bench_snntorch(cfg, repeats, warmup)
        if r is not None:
            snn_rows.append({"config": cfg["name"], **r})

    print()
    print("Model: samples/s (fused = backend 'cpp', reference = backend 'torch')")
    hdr = ("| config | neuron | rate | train fused | train ref | train x | infer fused | infer ref "
           "| infer x | saved MB fused/ref |" + (" peak step RSS MB fused/ref |" if memory else ""))
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    for r in rows:
        f, ref = r["fused"], r["reference"]
        rate = sum(f["firing_rates"]) / max(1, len(f["firing_rates"]))
        line = (f"| {r['config']} | {r['neuron']} | {rate:.3f} | {f['train_samples_per_s']:.0f} | "
                f"{ref['train_samples_per_s']:.0f} | {r['train_speedup']:.2f} | "
                f"{f['infer_samples_per_s']:.0f} | {ref['infer_samples_per_s']:.0f} | "
                f"{r['infer_speedup']:.2f} | {f['saved_for_backward_mb']:.0f} / "
                f"{ref['saved_for_backward_mb']:.0f} |")
        if memory:
            fm, rm = f.get("peak_step_rss_mb"), ref.get("peak_step_rss_mb")
            line += (f" {fm:.0f} / {rm:.0f} |" if fm is not None and rm is not None
                     else f" {f.get('error') or ref.get('error')} |")
        print(line)
    print()
    print("One neuron layer alone, T=100, B=32, H=512: ms per call")
    print("| neuron | rate | fwd+bwd fused | fwd+bwd ref | x | fwd fused | fwd ref | x |")
    print("|---|---|---|---|---|---|---|---|")
    for r in layer_rows:
        f, ref = r["fused"], r["reference"]
        print(f"| {r['neuron']} | {f['firing_rate']:.3f} | {f['fwd_bwd_ms']:.1f} | {ref['fwd_bwd_ms']:.1f} | "
              f"{r['fwd_bwd_speedup']:.1f} | {f['fwd_ms']:.2f} | {ref['fwd_ms']:.2f} | {r['fwd_speedup']:.1f} |")
    if snn_rows:
        print()
        print("snnTorch LIF stack (same sizes and wiring, its own LIF equations): samples/s")
        for r in snn_rows:
            print(f"  {r['config']}: train {r['train_samples_per_s']:.0f}, infer {r['infer_samples_per_s']:.0f}")

    result = {**meta, "models": rows, "layers": layer_rows, "snntorch": snn_rows or None}
    out = Path(args.out) if args.out else RESULTS / ("speed_quick.json" if args.quick else "speed.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(out)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
