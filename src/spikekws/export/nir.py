"""Export to and import from NIR (Neuromorphic Intermediate Representation).

Graph layout written by :func:`to_nir` (node names in quotes)::

    "input" -> "fc0" (Affine) -> "lif0" (LIF)      -> "fc1" -> ... -> "fc_out" (Affine)
                                 "rlif0" (NIRGraph: input -> lif <-> rec (Linear) -> output)
                                 "if0" (IF)                  -> "readout" (LI) -> "output"

BatchNorm is folded into each Affine (:func:`~spikekws.export.graph.fold_affine`).
A recurrent layer is a subgraph whose ``lif`` node feeds itself through the ``rec``
Linear node (weights ``V``, zero diagonal); the edge carries the spikes of the previous
step: ``I_t = x_t + V s_{t-1}``.

**Time step and time constants.** Our kernels are discrete (``dt`` seconds per frame,
stored in the graph metadata as ``dt``)::

    LIF: v_t = alpha (v_{t-1} - theta s_{t-1}) + (1 - alpha) I_t,  s_t = 1[v_t >= theta]
    LI:  v_t = alpha v_{t-1} + (1 - alpha) I_t                     alpha = exp(-dt / tau_mem)
    IF:  v_t = v_{t-1} - theta s_{t-1} + I_t

NIR's LIF/LI are ``tau dv/dt = (v_leak - v) + r I``. Their forward-Euler step with ``dt``
is ``v_t = (1 - dt/tau) v_{t-1} + (dt/tau) r I_t``, which is our update exactly when::

    tau = dt / (1 - alpha)     r = 1     v_leak = 0          (float64 in the file)

So the NIR ``tau`` is the *Euler-equivalent* time constant (slightly larger than our
``tau_mem``: for dt = 10 ms, tau_mem = 50 ms -> tau = 55.2 ms), chosen so that any
simulator that integrates NIR with forward Euler at ``dt`` (snnTorch, Norse, Lava,
Rockpool do) reproduces our decay. The importer inverts it: ``alpha = 1 - dt / tau``.
NIR's IF is ``dv/dt = r I``; Euler at ``dt`` gives ``v += dt r I``, so ``r = 1 / dt``.

**Threshold and reset.** ``v_threshold = theta``. NIR defines reset-to-value
(``v = v_reset`` after a spike, spike when ``v > v_threshold``); our neurons reset by
subtraction and fire at ``v >= theta``. NIR has no field for this, so every spiking node
carries ``metadata = {"reset": "subtract", "spike": ">="}`` and ``v_reset = 0``. Our
importer honours the metadata (and, for files without it, uses NIR's literal rule);
other tools read the file as reset-to-zero LIF, which differs after the first spike.

Adaptive neurons (adLIF, RadLIF) have no NIR node: export raises ValueError naming the
layer (never a silent plain-LIF export). The readout rule (``log mean_t softmax(v_t)``)
is recorded in the graph metadata; NIR itself only carries the LI membrane.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from .graph import GraphLayer, GraphReadout, GraphSNN, fold_snn

log = logging.getLogger("spikekws")

PathLike = Union[str, Path]
FORMAT = "spikekws-snn"
SPIKE_META = {"reset": "subtract", "spike": ">="}


def _nir():
    try:
        import nir
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("NIR export needs the nir package: pip install nir") from None
    return nir


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy().copy()


def _tau(alpha: torch.Tensor, dt: float) -> np.ndarray:
    a = alpha.detach().cpu().double()
    if not bool(((a > 0) & (a < 1)).all()):
        raise ValueError("membrane decay alpha must lie in (0, 1) to map to a NIR tau")
    return (dt / (1.0 - a)).numpy()


# --------------------------------------------------------------------------- export
def to_nir(model: nn.Module) -> Any:
    """NIRGraph of ``model`` (an SNN or :class:`GraphSNN`; BatchNorm folded)."""
    nir = _nir()
    g = fold_snn(model)
    dt = g.dt
    nodes: Dict[str, Any] = {"input": nir.Input(input_type={"input": np.array([g.input_size])})}
    edges: List[Tuple[str, str]] = []
    prev = "input"
    for i, layer in enumerate(g.layers):
        fc = f"fc{i}"
        nodes[fc] = nir.Affine(weight=_np(layer.weight), bias=_np(layer.bias))
        h = layer.size
        th = _np(layer.v_threshold)
        if layer.neuron == "if":
            name = f"if{i}"
            nodes[name] = nir.IF(r=np.full(h, 1.0 / dt), v_threshold=th, v_reset=np.zeros(h),
                                 metadata=dict(SPIKE_META))
        else:
            lif = nir.LIF(tau=_tau(layer.alpha, dt), r=np.ones(h), v_leak=np.zeros(h),
                          v_threshold=th, v_reset=np.zeros(h), metadata=dict(SPIKE_META))
            if layer.recurrent:
                name = f"rlif{i}"
                nodes[name] = nir.NIRGraph(
                    nodes={"input": nir.Input(input_type={"input": np.array([h])}), "lif": lif,
                           "rec": nir.Linear(weight=_np(layer.recurrent_weight)),
                           "output": nir.Output(output_type={"output": np.array([h])})},
                    edges=[("input", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")],
                    metadata={"kind": "rlif"})
            else:
                name = f"lif{i}"
                nodes[name] = lif
        edges += [(prev, fc), (fc, name)]
        prev = name
    readout = "spike_count"
    if g.readout is not None:
        c = g.readout.size
        nodes["fc_out"] = nir.Affine(weight=_np(g.readout.weight), bias=_np(g.readout.bias))
        nodes["readout"] = nir.LI(tau=_tau(g.readout.alpha, dt), r=np.ones(c), v_leak=np.zeros(c))
        edges += [(prev, "fc_out"), ("fc_out", "readout")]
        prev = "readout"
        readout = "log_mean_softmax"
    nodes["output"] = nir.Output(output_type={"output": np.array([g.num_classes])})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges,
                        metadata={"dt": float(dt), "format": FORMAT, "readout": readout})


def write_nir(model: nn.Module, path: PathLike) -> Path:
    """Export ``model`` and write it with ``nir.write`` -> the path written."""
    nir = _nir()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nir.write(str(path), to_nir(model))
    log.info("wrote NIR graph to %s", path)
    return path


def export_run(run_dir: PathLike, out: Optional[PathLike] = None, checkpoint: str = "best") -> Path:
    """Export a trained run's SNN to ``out`` (default ``RUN/model.nir``)."""
    from ..train.runner import load_run
    _, _, model, _ = load_run(run_dir, checkpoint)
    return write_nir(model, Path(run_dir) / "model.nir" if out is None else out)


# --------------------------------------------------------------------------- import
def _text(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf8")
    if isinstance(v, np.ndarray) and v.shape == ():
        return _text(v.item())
    return v


def _meta(node: Any) -> Dict[str, Any]:
    return {k: _text(v) for k, v in (getattr(node, "metadata", None) or {}).items()}


def _t(a: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def _chain(graph: Any) -> List[str]:
    """Node names from the Input to the Output of a graph that is a simple chain."""
    nir = _nir()
    succ: Dict[str, List[str]] = {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
    starts = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    if len(starts) != 1:
        raise ValueError(f"graph must have exactly one Input node, found {len(starts)}")
    order, cur, seen = [], starts[0], set()
    while True:
        if cur in seen:
            raise ValueError(f"top-level graph has a cycle at {cur!r}; recurrence must live "
                             "in a subgraph")
        seen.add(cur)
        order.append(cur)
        nxt = succ.get(cur, [])
        if not nxt:
            break
        if len(nxt) != 1:
            raise ValueError(f"node {cur!r} has {len(nxt)} successors; only chains are supported")
        cur = nxt[0]
    if not isinstance(graph.nodes[order[-1]], nir.Output):
        raise ValueError(f"the chain from the input ends at {order[-1]!r}, not an Output node")
    return order


def _affine(node: Any) -> Tuple[torch.Tensor, torch.Tensor]:
    nir = _nir()
    w = _t(node.weight)
    if w.dim() != 2:
        raise ValueError(f"only 2-D Affine/Linear weights are supported, got shape {list(w.shape)}")
    b = _t(node.bias) if isinstance(node, nir.Affine) else torch.zeros(w.shape[0], dtype=torch.float64)
    return w, b


def _recurrent(sub: Any, name: str) -> Tuple[Any, torch.Tensor]:
    """(neuron node, recurrent weight) of a recurrent-layer subgraph."""
    nir = _nir()
    neurons = [k for k, n in sub.nodes.items() if isinstance(n, (nir.LIF, nir.IF))]
    if len(neurons) != 1:
        raise ValueError(f"subgraph {name!r}: expected one LIF/IF node, found {len(neurons)}")
    nk = neurons[0]
    edges = set(map(tuple, sub.edges))
    recs = [k for k, n in sub.nodes.items() if isinstance(n, (nir.Linear, nir.Affine))
            and (nk, k) in edges and (k, nk) in edges]
    if len(recs) != 1:
        raise ValueError(f"subgraph {name!r}: expected one Linear/Affine node on a cycle "
                         f"through {nk!r}, found {len(recs)}")
    w, b = _affine(sub.nodes[recs[0]])
    if bool((b != 0).any()):
        raise ValueError(f"subgraph {name!r}: a recurrent bias is not supported")
    return sub.nodes[nk], w


def _layer(node: Any, w: torch.Tensor, b: torch.Tensor, dt: float, name: str,
           rec: Optional[torch.Tensor]) -> GraphLayer:
    nir = _nir()
    meta = _meta(node)
    reset = "subtract" if meta.get("reset") == "subtract" else "value"
    th = _t(node.v_threshold).reshape(-1)
    v_reset = _t(node.v_reset).reshape(-1)
    if isinstance(node, nir.IF):
        gain = _t(node.r).reshape(-1) * dt
        gain = torch.where((gain - 1).abs() < 1e-12, torch.ones_like(gain), gain)
        return GraphLayer(w, b, "if", None, th, rec, reset, v_reset, gain, name=name)
    if bool((_t(node.v_leak) != 0).any()):
        raise ValueError(f"node {name!r}: v_leak != 0 is not supported")
    alpha = 1.0 - dt / _t(node.tau).reshape(-1)
    if not bool(((alpha > 0) & (alpha < 1)).all()):
        raise ValueError(f"node {name!r}: tau must exceed dt={dt} (forward-Euler stability)")
    return GraphLayer(w, b, "lif", alpha, th, rec, reset, v_reset, _t(node.r).reshape(-1), name=name)


def from_nir(graph: Union[PathLike, Any], dt: Optional[float] = None,
             dtype: torch.dtype = torch.float32) -> GraphSNN:
    """Rebuild a runnable :class:`GraphSNN` from a NIR graph or file.

    ``dt`` (seconds per step) defaults to the graph's ``metadata["dt"]``; graphs without
    it need the argument. Supported: a chain Input -> (Affine|Linear -> LIF|IF|recurrent
    subgraph)* [-> Affine|Linear -> LI] -> Output.
    """
    nir = _nir()
    if isinstance(graph, (str, Path)):
        if not Path(graph).is_file():
            raise FileNotFoundError(f"NIR file not found: {graph}")
        graph = nir.read(str(graph))
    meta = _meta(graph)
    if dt is None:
        if "dt" not in meta:
            raise ValueError("the NIR graph has no metadata 'dt'; pass dt= (seconds per step)")
        dt = float(meta["dt"])
    if not dt > 0:
        raise ValueError(f"dt must be positive (seconds), got {dt}")
    order = _chain(graph)
    layers: List[GraphLayer] = []
    readout: Optional[GraphReadout] = None
    pending: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
    for name in order[1:-1]:
        node = graph.nodes[name]
        if readout is not None:
            raise ValueError(f"node {name!r} follows the LI readout; the readout must be last")
        if isinstance(node, (nir.Affine, nir.Linear)):
            if pending is not None:  # two affine maps in a row: compose them
                w2, b2 = _affine(node)
                pending = (w2 @ pending[0], w2 @ pending[1] + b2)
            else:
                pending = _affine(node)
            continue
        if isinstance(node, nir.NIRGraph):
            neuron, rec = _recurrent(node, name)
        elif isinstance(node, (nir.LIF, nir.IF, nir.LI)):
            neuron, rec = node, None
        else:
            raise ValueError(f"node {name!r}: NIR type {type(node).__name__} is not supported "
                             "(supported: Affine, Linear, LIF, IF, LI, recurrent subgraphs)")
        size = int(np.asarray(getattr(neuron, "tau", getattr(neuron, "r"))).size)
        if pending is None:
            prev = layers[-1].size if layers else size
            pending = (torch.eye(size, prev, dtype=torch.float64), torch.zeros(size, dtype=torch.float64))
        w, b = pending
        pending = None
        if isinstance(neuron, nir.LI):
            if bool((_t(neuron.v_leak) != 0).any()):
                raise ValueError(f"node {name!r}: v_leak != 0 is not supported")
            readout = GraphReadout(w, b, 1.0 - dt / _t(neuron.tau).reshape(-1),
                                   gain=_t(neuron.r).reshape(-1))
        else:
            layers.append(_layer(neuron, w, b, dt, name, rec))
    if pending is not None:
        raise ValueError("the graph ends with an Affine/Linear node not followed by a neuron")
    return GraphSNN(layers, readout, dt=dt).to(dtype).eval()


def read_nir(path: PathLike, dt: Optional[float] = None, dtype: torch.dtype = torch.float32) -> GraphSNN:
    """:func:`from_nir` on a file."""
    return from_nir(Path(path), dt=dt, dtype=dtype)


__all__ = ["to_nir", "write_nir", "export_run", "from_nir", "read_nir", "FORMAT"]
