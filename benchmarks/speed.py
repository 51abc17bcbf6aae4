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

Fused and reference runs alternate, and each time is the minimum over ``--repeats`` runs
(median and maximum are in the JSON): on a shared machine the minimum is the run least
disturbed by other processes.

Inputs are spectrogram-like: a first-order autoregressive process per feature (correlation
0.95 between frames), so that firing rates are those of slowly varying features rather than
of white noise; the mean firing rate of each configuration is reported with the timings.

If ``snntorch`` is importable, an snnTorch LIF stack of the same sizes (Linear and batch norm
over the sequence, ``snn.Leaky`` stepped in time) is timed as well and shown as a third column
next to the LIF rows, for scale: its neuron and readout equations differ from ours.

Other processes on the machine change every timing: the 1-minute load average is recorded
before and after each row (``os.getloadavg``) and for the whole run.

Usage::

    python benchmarks/speed.py [--threads 2] [--repeats 5] [--quick]
        [--neurons lif,adlif,rlif,radlif] [--no-memory] [--clock wall|cpu] [--out FILE.json]
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
# Reported time per call: the minimum over the repeats, the run least disturbed by other
# processes (median and maximum are kept in the JSON).
TIME_KEY = "min_s"
# Clock of every timing: wall time (default), or with --clock cpu the CPU time of this process
# (user + system, all threads), which other processes on a shared machine disturb less; with
# one thread it is the work done, with several it also counts threads waiting at barriers.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


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


def _summary(times: List[float]) -> Dict[str, float]:
    return {"min_s": min(times), "median_s": statistics.median(times), "max_s": max(times)}


def time_call(fn: Callable[[], None], repeats: int, warmup: int) -> Dict[str, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return _summary(times)


def time_interleaved(fns: Dict[str, Callable[[], None]], repeats: int,
                     warmup: int) -> Dict[str, Dict[str, float]]:
    """Times several callables in turn (A B A B ...), so that load from other processes on a
    shared machine hits them alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = clock()
            fn()
            times[k].append(clock() - t0)
    return {k: _summary(v) for k, v in times.items()}


def _inference(fn: Callable[[], object]) -> Callable[[], None]:
    import torch

    def run() -> None:
        with torch.inference_mode():
            fn()

    return run


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

def load_average() -> Optional[List[float]]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def bench_model(cfg: dict, neuron: str, repeats: int, warmup: int) -> Dict[str, dict]:
    """Fused and reference models of one row, timed in turn. Times are per call."""
    import torch

    x = features(cfg["batch"], cfg["steps"], cfg["in_features"])
    y = torch.randint(0, cfg["num_classes"], (cfg["batch"],), generator=torch.Generator().manual_seed(1))
    models = {label: build(cfg, neuron, backend) for label, backend in BACKENDS.items()}
    out: Dict[str, dict] = {}
    for label, model in models.items():
        model.train()
        with torch.no_grad():
            _, rates = model(x)
        out[label] = {"saved_for_backward_mb": saved_for_backward_bytes(model, x, y) / 2**20,
                      "firing_rates": [round(r, 4) for r in rates.tolist()]}
    train = time_interleaved({k: make_train_step(m, x, y) for k, m in models.items()}, repeats, warmup)
    for model in models.values():
        model.eval()
    infer = time_interleaved({k: _inference(lambda m=m: m(x)) for k, m in models.items()},
                             repeats, warmup)
    b = cfg["batch"]
    for label in models:
        tr, inf = train[label][TIME_KEY], infer[label][TIME_KEY]
        out[label].update({
            "train_samples_per_s": b / tr, "train_step_ms": 1e3 * tr,
            "infer_samples_per_s": b / inf, "infer_ms": 1e3 * inf,
            "train_times_s": train[label], "infer_times_s": infer[label]})
    return out


def bench_layer(neuron: str, repeats: int, warmup: int, steps: int = 100, batch: int = 32,
                size: int = 512) -> Dict[str, dict]:
    """One neuron layer: x [T, B, H] (unit-variance AR(1) drive plus an offset) -> spikes."""
    import torch

    from spikekws.neurons import build_neuron

    x = (0.8 + features(batch, steps, size, seed=2)).transpose(0, 1).contiguous()
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    layers = {}
    for label, backend in BACKENDS.items():
        torch.manual_seed(0)
        layers[label] = build_neuron(neuron, size, backend=backend)

    def train_fn(layer):
        xg = x.clone().requires_grad_(True)

        def train() -> None:
            layer.zero_grad(set_to_none=True)
            xg.grad = None
            s, _ = layer(xg)
            (s * w).sum().backward()

        return train

    with torch.no_grad():
        rate = layers["fused"](x)[0].mean().item()
    tr = time_interleaved({k: train_fn(m) for k, m in layers.items()}, repeats, warmup)
    inf = time_interleaved({k: _inference(lambda m=m: m(x)) for k, m in layers.items()},
                           repeats, warmup)
    return {k: {"fwd_bwd_ms": 1e3 * tr[k][TIME_KEY], "fwd_ms": 1e3 * inf[k][TIME_KEY],
                "firing_rate": round(rate, 4), "fwd_bwd_times_s": tr[k], "fwd_times_s": inf[k]}
            for k in layers}


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
    return {"train_samples_per_s": b / tr[TIME_KEY], "infer_samples_per_s": b / inf[TIME_KEY],
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
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="wall time (default) or this process's CPU time (less disturbed by "
                         "other processes; use with --threads 1)")
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
    global clock
    clock = CLOCKS[args.clock]
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
        "time_statistic": "minimum over repeats; fused and reference runs interleaved",
        "clock": args.clock,
        "input": "AR(1) features, correlation 0.95 between frames, unit variance",
        "fused_backend": BACKENDS["fused"], "reference_backend": BACKENDS["reference"],
    }
    meta["load_average_start"] = load_average()
    print(f"torch {meta['torch']}, {meta['threads']} thread(s), {meta['cpu']}, "
          f"load average {meta['load_average_start']}", flush=True)

    rows = []
    for cfg in configs:
        for neuron in neurons:
            load_before = load_average()
            row = {"config": cfg["name"], "neuron": neuron, **bench_model(cfg, neuron, repeats, warmup)}
            row["load_average"] = {"before": load_before, "after": load_average()}
            if memory:
                for label, backend in BACKENDS.items():
                    row[label].update(memory_in_subprocess(cfg, neuron, backend, args.threads))
            f, ref = row["fused"], row["reference"]
            row["train_speedup"] = f["train_samples_per_s"] / ref["train_samples_per_s"]
            row["infer_speedup"] = f["infer_samples_per_s"] / ref["infer_samples_per_s"]
            rows.append(row)
            print(f"  {cfg['name']:18s} {neuron:7s} train x{row['train_speedup']:.2f}  "
                  f"infer x{row['infer_speedup']:.2f}  (load {row['load_average']['after']})",
                  flush=True)

    layer_rows = []
    for neuron in neurons:
        lr = {"neuron": neuron, **bench_layer(neuron, repeats, warmup)}
        lr["fwd_bwd_speedup"] = lr["reference"]["fwd_bwd_ms"] / lr["fused"]["fwd_bwd_ms"]
        lr["fwd_speedup"] = lr["reference"]["fwd_ms"] / lr["fused"]["fwd_ms"]
        layer_rows.append(lr)

    snn_rows = []
    for cfg in configs:
        r = bench_snntorch(cfg, repeats, warmup)
        if r is not None:
            snn_rows.append({"config": cfg["name"], **r})
    snn_by_config = {r["config"]: r for r in snn_rows}
    meta["load_average_end"] = load_average()

    print()
    print("Model: samples/s (fused = backend 'cpp', reference = backend 'torch'; best of "
          f"{repeats} interleaved runs, {args.clock} clock)")
    hdr = ("| config | neuron | rate | train fused | train ref | train snnTorch | train x "
           "| infer fused | infer ref | infer snnTorch | infer x | saved MB fused/ref |"
           + (" peak step RSS MB fused/ref |" if memory else ""))
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    for r in rows:
        f, ref = r["fused"], r["reference"]
        rate = sum(f["firing_rates"]) / max(1, len(f["firing_rates"]))
        snn = snn_by_config.get(r["config"]) if r["neuron"] == "lif" else None
        snn_tr = f"{snn['train_samples_per_s']:.0f}" if snn else "-"
        snn_inf = f"{snn['infer_samples_per_s']:.0f}" if snn else "-"
        line = (f"| {r['config']} | {r['neuron']} | {rate:.3f} | {f['train_samples_per_s']:.0f} | "
                f"{ref['train_samples_per_s']:.0f} | {snn_tr} | {r['train_speedup']:.2f} | "
                f"{f['infer_samples_per_s']:.0f} | {ref['infer_samples_per_s']:.0f} | {snn_inf} | "
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
        print("snnTorch column: an snn.Leaky stack of the same sizes and wiring (its own LIF "
              "equations), on the LIF rows; timed after the fused/reference pairs, not interleaved")
    print(f"load average (1, 5, 15 min): start {meta['load_average_start']}, "
          f"end {meta['load_average_end']}")

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
