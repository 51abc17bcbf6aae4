"""Fuzzing the audio loader, the HDF5 spike loader and the config parser with malformed input.

Each target may only fail with its documented exceptions and must not hang. The normal
suite runs a fixed (derandomised) 200 examples per target; ``-m slow`` runs 10,000 random
ones per target and prints how many inputs were accepted and how many were rejected, by
exception type (``pytest -m slow -s tests/fuzz``).
"""
from __future__ import annotations

import collections
import io
import os
import signal
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Tuple

import numpy as np
import pytest
import soundfile as sf
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, reject, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from spikekws.config.schema import apply_overrides, config_from_dict, load_config  # noqa: E402
from spikekws.data import build_dataset, dataset_info  # noqa: E402
from spikekws.data.audio import AudioError, check_audio, load_audio  # noqa: E402

FAST, SLOW = 200, 10_000
HANG_SECONDS = 10
MEMORY_HEADROOM = 3 << 30  # bytes of address space the loaders may map beyond the start

#: Documented exceptions of each target.
AUDIO_ERRORS = (AudioError, FileNotFoundError)  # AudioError is a ValueError naming the file
SPIKE_ERRORS = (ValueError, FileNotFoundError)
CONFIG_ERRORS = (ValueError, TypeError, FileNotFoundError, KeyError)

OUTCOMES: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
STARTED: Dict[str, float] = {}
ENDED: Dict[str, float] = {}


class Hang(Exception):
    """An input took longer than HANG_SECONDS (never a documented exception)."""


@contextmanager
def no_hang(seconds: int = HANG_SECONDS):
    def alarm(signum, frame):
        raise Hang(f"no result after {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run_target(name: str, allowed: Tuple[type, ...], fn: Callable[[], object]) -> None:
    """Call ``fn``; count the outcome; anything but success or ``allowed`` fails the test."""
    STARTED.setdefault(name, time.perf_counter())
    try:
        with no_hang():
            fn()
    except allowed as e:
        assert str(e), f"{type(e).__name__} without a message"
        OUTCOMES[name][type(e).__name__] += 1
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # re-raised small: reporting must not need the memory it held
        raise AssertionError(f"{name}: undocumented {type(e).__name__}: {str(e)[:300]}") from None
    else:
        OUTCOMES[name]["ok"] += 1
    finally:
        ENDED[name] = time.perf_counter()


def _vm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


@pytest.fixture(scope="module", autouse=True)
def _print_counts():
    import logging
    logger = logging.getLogger("spikekws")
    level = logger.level
    logger.setLevel(logging.ERROR)  # malformed inputs log warnings by design
    # An input that makes a loader allocate gigabytes must fail here as a MemoryError, not
    # take the machine down: cap the address space at what is mapped now + MEMORY_HEADROOM.
    limits = None
    try:
        import resource
        limits = resource.getrlimit(resource.RLIMIT_AS)
        cap = _vm_bytes() + MEMORY_HEADROOM
        if limits[1] == resource.RLIM_INFINITY or cap < limits[1]:
            resource.setrlimit(resource.RLIMIT_AS, (cap, limits[1]))
    except (ImportError, OSError, ValueError):
        limits = None
    yield
    if limits is not None:
        resource.setrlimit(resource.RLIMIT_AS, limits)
    logger.setLevel(level)
    for name, counts in sorted(OUTCOMES.items()):
        total = sum(counts.values())
        secs = ENDED[name] - STARTED[name]
        detail = ", ".join(f"{k} {v}" for k, v in counts.most_common())
        print(f"\nfuzz {name}: {total} inputs in {secs:.1f} s ({detail})")


def fuzz_settings(n: int):
    return settings(max_examples=n, deadline=None, database=None, derandomize=n <= FAST,
                    suppress_health_check=list(HealthCheck))


# --------------------------------------------------------------------------- audio
def _seed_files() -> Dict[str, bytes]:
    t = np.arange(800) / 8000.0
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    seeds = {}
    for fmt, subtype, data in (("WAV", "PCM_16", tone), ("WAV", "FLOAT", np.stack([tone, -tone], 1)),
                               ("FLAC", "PCM_16", tone), ("WAV", "PCM_U8", tone),
                               ("AIFF", "PCM_24", tone)):
        buf = io.BytesIO()
        sf.write(buf, data, 8000, format=fmt, subtype=subtype)
        seeds[f"{fmt}-{subtype}"] = buf.getvalue()
    return seeds


SEEDS = _seed_files()


@st.composite
def audio_bytes(draw) -> Tuple[bytes, str]:
    kind = draw(st.sampled_from(["mutated"] * 4 + ["random", "header"]))
    suffix = draw(st.sampled_from([".wav", ".flac", ".aiff", ".ogg", ""]))
    if kind == "random":
        return draw(st.binary(max_size=512)), suffix
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    if kind == "header":  # damage the first 64 bytes only, where the format fields live
        for pos, val in draw(st.lists(st.tuples(st.integers(0, 63), st.integers(0, 255)),
                                      min_size=1, max_size=6)):
            data[pos] = val
        return bytes(data), suffix
    for pos, val in draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)),
                                  max_size=8)):
        data[pos] = val
    cut = draw(st.one_of(st.none(), st.integers(0, len(data))))
    if cut is not None:
        data = data[:cut]
    if draw(st.booleans()):  # an absurd 32-bit size field somewhere in the header
        pos = draw(st.integers(0, max(0, min(len(data), 60) - 4)))
        data[pos:pos + 4] = draw(st.integers(0, 2**32 - 1)).to_bytes(4, "little")
    return bytes(data), suffix


def _audio_case(tmp: Path, blob: bytes, suffix: str, rate, mono: bool) -> None:
    path = tmp / f"clip{suffix}"
    path.write_bytes(blob)

    def call():
        check_audio(path, expected_sample_rate=rate, allow_multichannel=not mono)
        x = load_audio(path, expected_sample_rate=rate, allow_multichannel=not mono)
        assert x.ndim == 1 and x.numel() > 0 and bool(x.isfinite().all())
        assert float(x.abs().max()) <= 1.0

    run_target("audio", AUDIO_ERRORS, call)


def _audio_test(n: int):
    @fuzz_settings(n)
    @given(case=audio_bytes(), rate=st.sampled_from([None, 8000, 16000]), mono=st.booleans())
    def check(case, rate, mono):
        with tempfile.TemporaryDirectory() as d:
            _audio_case(Path(d), case[0], case[1], rate, mono)
    return check


def test_fuzz_audio_loader():
    _audio_test(FAST)()


@pytest.mark.slow
def test_fuzz_audio_loader_10k():
    _audio_test(SLOW)()


def test_audio_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_audio(tmp_path / "nope.wav")


# --------------------------------------------------------------------------- HDF5 spikes
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)


FIELDS = ("times", "units", "events", "labels", "label_values", "keys", "speakers", "attrs",
          "corrupt", "options")


@st.composite
def spike_file_spec(draw) -> dict:
    """A well-formed SHD-layout file with up to three of its parts malformed."""
    bad = draw(st.sets(st.sampled_from(FIELDS), max_size=3))

    def pick(field, hostile, common):
        return draw(hostile if field in bad else common)

    n = draw(st.integers(0, 5))
    spec = {"n": n}
    spec["times"] = pick("times", st.sampled_from(["missing", "regular", "scalar", "group",
                                                   "strings"]), st.just("vlen"))
    spec["units"] = pick("units", st.sampled_from(["missing", "regular", "floats", "scalar"]),
                         st.just("vlen"))
    events = []
    for _ in range(n + pick("events", st.integers(0, 2), st.just(0))):
        k = draw(st.integers(0, 6))
        times = pick("events", st.lists(FLOATS, max_size=6),
                     st.lists(st.floats(0, 1.5), min_size=k, max_size=k))
        units = pick("events", st.lists(st.integers(-5, 70_000), max_size=6),
                     st.lists(st.integers(0, 699), min_size=k, max_size=k))
        events.append((times, units))
    spec["events"] = events
    spec["labels"] = pick("labels", st.sampled_from(["missing", "floats", "2d", "short", "strings",
                                                     "scalar"]), st.just("ok"))
    spec["label_values"] = pick("label_values",
                                st.lists(st.integers(-3, 70_000), min_size=n, max_size=n),
                                st.lists(st.integers(0, 3), min_size=n, max_size=n))
    spec["keys"] = pick("keys", st.one_of(st.lists(st.binary(max_size=6), max_size=6),
                                          st.just("scalar")),
                        st.sampled_from([None, [b"a", b"b", b"c", b"d"]]))
    spec["speakers"] = pick("speakers", st.one_of(st.lists(st.integers(0, 9), max_size=6),
                                                  st.integers(0, 9)), st.none())
    spec["attrs"] = pick("attrs", st.dictionaries(
        st.sampled_from(["spikekws_dt", "spikekws_max_time", "spikekws_num_channels"]),
        st.one_of(FLOATS, st.integers(-10, 10**12), st.text(max_size=4), st.binary(max_size=4)),
        max_size=3), st.just({}))
    spec["corrupt"] = pick("corrupt", st.tuples(st.integers(0, 4000), st.integers(0, 255),
                                                st.booleans()), st.none())
    spec["options"] = pick("options", st.fixed_dictionaries({}, optional={
        "pool": st.integers(-1, 800), "binary": st.booleans(),
        "dt": st.one_of(st.none(), FLOATS, st.integers(-1, 3)),
        "max_time": st.one_of(st.none(), FLOATS), "num_channels": st.integers(-1, 70_000),
        "on_error": st.sampled_from(["raise", "skip"]),
        "valid_fraction": st.one_of(FLOATS, st.integers(-1, 2)),
    }), st.fixed_dictionaries({}, optional={"pool": st.integers(1, 8), "binary": st.booleans(),
                                            "on_error": st.sampled_from(["raise", "skip"])}))
    return spec


def _write_spike_file(path: Path, spec: dict) -> None:
    import h5py

    n = spec["n"]
    events = spec["events"]
    with h5py.File(path, "w") as f:
        g = f.create_group("spikes")
        if spec["times"] != "missing":
            times = [np.asarray(t, dtype=np.float64) for t, _ in events]
            kind = spec["times"]
            if kind == "vlen":
                ds = g.create_dataset("times", (len(times),), dtype=h5py.vlen_dtype(np.float64))
                for i, t in enumerate(times):
                    ds[i] = t
            elif kind == "regular":
                g.create_dataset("times", data=np.zeros((len(times), 3)))
            elif kind == "scalar":
                g.create_dataset("times", data=1.5)
            elif kind == "group":
                g.create_group("times")
            else:
                g.create_dataset("times", data=np.array([b"ab"] * len(times)))
        if spec["units"] != "missing":
            units = [np.asarray(u, dtype=np.int64) for _, u in events]
            kind = spec["units"]
            if kind in ("vlen", "floats"):
                dt = np.float32 if kind == "floats" else np.int32
                ds = g.create_dataset("units", (len(units),), dtype=h5py.vlen_dtype(dt))
                for i, u in enumerate(units):
                    ds[i] = u.astype(dt)
            elif kind == "regular":
                g.create_dataset("units", data=np.zeros((len(units), 3), dtype=np.int16))
            else:
                g.create_dataset("units", data=3)
        lab = spec["labels"]
        values = np.asarray(spec["label_values"], dtype=np.int64)
        if lab == "ok":
            f.create_dataset("labels", data=values)
        elif lab == "floats":
            f.create_dataset("labels", data=values.astype(np.float64) + 0.5)
        elif lab == "2d":
            f.create_dataset("labels", data=np.zeros((n, 2), dtype=np.int64))
        elif lab == "short":
            f.create_dataset("labels", data=values[:-1])
        elif lab == "strings":
            f.create_dataset("labels", data=np.array([b"x"] * n))
        elif lab == "scalar":
            f.create_dataset("labels", data=2)
        if spec["keys"] == "scalar":
            f.create_dataset("extra/keys", data=b"one")
        elif spec["keys"] is not None:
            f.create_dataset("extra/keys", data=np.array(spec["keys"] or [b""], dtype=object),
                             dtype=h5py.string_dtype("ascii"))
        if spec["speakers"] is not None:
            f.create_dataset("extra/speaker", data=np.asarray(spec["speakers"], dtype=np.int64))
        for k, v in spec["attrs"].items():
            f.attrs[k] = np.void(v) if isinstance(v, bytes) else v
    if spec["corrupt"] is not None:
        pos, val, truncate = spec["corrupt"]
        data = bytearray(path.read_bytes())
        pos %= len(data)
        if truncate:
            data = data[:pos]
        else:
            data[pos] = val
        path.write_bytes(bytes(data))


def _spike_case(tmp: Path, spec: dict) -> None:
    try:
        _write_spike_file(tmp / "train.h5", spec)
    except (ValueError, TypeError, OSError):
        reject()  # h5py cannot even write this combination

    def call():
        opts = dict(spec["options"], files={"train": "train.h5", "test": "train.h5"})
        info = dataset_info("ssc", tmp, **opts)
        for split in ("train", "valid"):
            ds = build_dataset("ssc", tmp, split, **opts)
            for i in range(min(len(ds), 6)):
                x, y = ds[i]
                assert x.shape == (info.num_steps, info.num_channels)
                assert 0 <= y < info.num_classes

    run_target("spikes", SPIKE_ERRORS, call)


def _spike_test(n: int):
    @fuzz_settings(n)
    @given(spec=spike_file_spec())
    def check(spec):
        with tempfile.TemporaryDirectory() as d:
            _spike_case(Path(d), spec)
    return check


def test_fuzz_spike_loader():
    _spike_test(FAST)()


@pytest.mark.slow
def test_fuzz_spike_loader_10k():
    _spike_test(SLOW)()


# --------------------------------------------------------------------------- config
KEYS = ["data", "features", "model", "train", "data.name", "data.root", "data.options",
        "data.options.pool", "features.options.n_mels", "model.hidden_sizes", "model.dropout",
        "model.options", "train.lr", "train.epochs", "train.grad_clip", "train.augment",
        "train.tensorboard", "train.seed", "model.bidirectional", "nope", "train.nope"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), FLOATS, st.text(max_size=8))
VALUES = st.recursive(SCALARS, lambda c: st.one_of(st.lists(c, max_size=3),
                                                    st.dictionaries(st.text(max_size=6), c, max_size=3)),
                      max_leaves=8)
RAW = st.one_of(st.sampled_from(["", "[", "{a: 1", "1e-3", "3e-3", "!!python/object:os.system",
                                 "&a [*a]", "*x", "- - -", "[1, 2", "0x1F", "~", "yes", "'",
                                 "2020-13-45", ".inf", "-.nan", "{? [a]: 1}", "[16, 16]"]),
                st.text(max_size=20))


@st.composite
def config_case(draw):
    kind = draw(st.sampled_from(["yaml_text", "yaml_doc", "overrides", "dict"]))
    if kind == "yaml_text":
        return kind, draw(st.one_of(st.text(max_size=80), st.binary(max_size=80))), []
    if kind == "yaml_doc":
        doc = {}
        for key, value in draw(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=5)):
            node = doc
            parts = key.split(".")
            for p in parts[:-1]:
                node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else {}
            node[parts[-1]] = value
        return kind, yaml.safe_dump(doc, allow_unicode=True), []
    overrides = draw(st.lists(st.one_of(
        st.builds(lambda k, v: f"{k}={v}", st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), RAW),
        st.text(max_size=12)), max_size=4))
    if kind == "overrides":
        return kind, None, overrides
    return kind, draw(st.dictionaries(st.one_of(st.sampled_from(KEYS[:4]), st.text(max_size=5)),
                                      VALUES, max_size=4)), overrides


def _config_case(tmp: Path, case) -> None:
    kind, payload, overrides = case

    def call():
        if kind in ("yaml_text", "yaml_doc"):
            path = tmp / "cfg.yaml"
            path.write_bytes(payload if isinstance(payload, bytes) else payload.encode("utf-8"))
            load_config(path, overrides)
        elif kind == "overrides":
            load_config(None, overrides)
        else:
            config_from_dict(apply_overrides(payload, overrides))

    run_target("config", CONFIG_ERRORS, call)


def _config_test(n: int):
    @fuzz_settings(n)
    @given(case=config_case())
    def check(case):
        with tempfile.TemporaryDirectory() as d:
            _config_case(Path(d), case)
    return check


def test_fuzz_config_parser():
    _config_test(FAST)()


@pytest.mark.slow
def test_fuzz_config_parser_10k():
    _config_test(SLOW)()


def test_missing_config_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "nope.yaml")
