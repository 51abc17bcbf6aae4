"""SHD / SSC loaders on generated files in the Zenke lab HDF5 layout."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import pytest
import torch

h5py = pytest.importorskip("h5py")

from spikekws.data import build_dataset, dataset_info  # noqa: E402
from spikekws.data.shd import SHD_LABELS  # noqa: E402
from spikekws.data.spikes import bin_events, read_spike_h5, write_spike_h5  # noqa: E402


def write_zenke_file(
    path: Path,
    times: Sequence[np.ndarray],
    units: Sequence[np.ndarray],
    labels: Sequence[int],
    speakers: Optional[Sequence[int]] = None,
    keys: Optional[Sequence[str]] = SHD_LABELS,
    times_dtype=np.float32,
    skip: Sequence[str] = (),
) -> Path:
    """An HDF5 file laid out like shd_train.h5 (written with h5py directly)."""
    n = len(labels)
    with h5py.File(path, "w") as f:
        if "spikes/times" not in skip:
            t = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.dtype(times_dtype)))
            for i in range(n):
                t[i] = np.asarray(times[i], dtype=times_dtype)
        if "spikes/units" not in skip:
            u = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.dtype("uint16")))
            for i in range(n):
                u[i] = np.asarray(units[i], dtype=np.uint16)
        if "labels" not in skip:
            f.create_dataset("labels", data=np.asarray(labels, dtype=np.uint16))
        if keys is not None:
            f.create_dataset("extra/keys", data=np.array([k.encode("utf-8") for k in keys]))
        if speakers is not None:
            f.create_dataset("extra/speaker", data=np.asarray(speakers, dtype=np.uint16))
            f.create_dataset("extra/meta_info/gender", data=np.array([b"f", b"m"]))
            f.create_dataset("extra/meta_info/age", data=np.array([30, 40], dtype=np.uint16))
            f.create_dataset("extra/meta_info/body_height", data=np.array([170, 180], dtype=np.uint16))
    return path


def random_events(rng: np.random.Generator, n: int, max_time: float = 1.3, channels: int = 700):
    times, units = [], []
    for _ in range(n):
        k = int(rng.integers(5, 60))
        times.append(np.sort(rng.uniform(0, max_time, k)))
        units.append(rng.integers(0, channels, k))
    return times, units


def make_shd(root: Path, n_train: int = 40, n_test: int = 12, seed: int = 0, **kwargs) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for name, n in (("shd_train.h5", n_train), ("shd_test.h5", n_test)):
        t, u = random_events(rng, n)
        labels = rng.integers(0, 20, n)
        speakers = rng.integers(0, 4, n) if name == "shd_train.h5" else np.full(n, 4)
        write_zenke_file(root / name, t, u, labels, speakers=speakers, **kwargs)
    return root


@pytest.fixture
def shd_root(tmp_path) -> Path:
    return make_shd(tmp_path / "shd")


# --------------------------------------------------------------------------- binning
def test_bin_events_counts_pooling_binary_and_cutoff():
    times = np.array([0.0, 0.009, 0.010, 0.025, 0.025, 0.5])
    units = np.array([0, 1, 5, 699, 699, 3])
    x = bin_events(times, units, num_steps=3, dt=0.01, num_channels=700)
    assert x.shape == (3, 700) and x.dtype == torch.float32
    assert x[0, 0] == 1 and x[0, 1] == 1 and x[1, 5] == 1 and x[2, 699] == 2
    assert x.sum() == 5  # the event at 0.5 s lies after 3 * 10 ms
    pooled = bin_events(times, units, 3, 0.01, 700, pool=5)
    assert pooled.shape == (3, 140)
    assert pooled[0, 0] == 2 and pooled[1, 1] == 1 and pooled[2, 139] == 2
    assert bin_events(times, units, 3, 0.01, 700, pool=5, binary=True)[2, 139] == 1
    assert bin_events(times, units, 3, 0.01, 700, pool=3).shape == (3, 234)  # ceil(700 / 3)


# --------------------------------------------------------------------------- shd
def test_shd_info_and_items(shd_root):
    info = dataset_info("shd", shd_root)
    assert info.kind == "spikes" and info.labels == SHD_LABELS and info.num_classes == 20
    assert info.num_steps == 140 and info.num_channels == 700 and not info.has_valid
    assert info.clip_samples == 140
    pooled = dataset_info("shd", shd_root, pool=5, dt=0.02, max_time=1.0)
    assert (pooled.num_steps, pooled.num_channels) == (50, 140)

    test = build_dataset("shd", shd_root, "test", pool=5)
    x, y = test[3]
    assert x.shape == (140, 140) and x.dtype == torch.float32 and isinstance(y, int)
    raw = read_spike_h5(shd_root / "shd_test.h5")
    assert x.sum() == len(raw["times"][3]) and y == raw["labels"][3]
    expected = bin_events(raw["times"][3], raw["units"][3], 140, 0.01, 700, pool=5)
    assert torch.equal(x, expected)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_shd_reads_any_float_width(tmp_path, dtype):
    root = make_shd(tmp_path / "s", n_train=5, n_test=3, times_dtype=dtype)
    x, _ = build_dataset("shd", root, "test")[0]
    assert x.sum() > 0


def test_shd_valid_is_carved_from_train_deterministically(shd_root):
    train = build_dataset("shd", shd_root, "train", valid_fraction=0.25)
    valid = build_dataset("shd", shd_root, "valid", valid_fraction=0.25)
    test = build_dataset("shd", shd_root, "test")
    assert train.file.path.name == valid.file.path.name == "shd_train.h5"
    assert test.file.path.name == "shd_test.h5"
    assert not set(train.rows) & set(valid.rows)
    assert sorted(train.rows + valid.rows) == list(range(40)) and len(valid) > 0
    again = build_dataset("shd", shd_root, "valid", valid_fraction=0.25)
    assert again.rows == valid.rows
    other = build_dataset("shd", shd_root, "valid", valid_fraction=0.25, seed=1)
    assert other.rows != valid.rows
    assert len(build_dataset("shd", shd_root, "valid", valid_fraction=0.0)) == 0


def test_shd_valid_speakers(shd_root):
    valid = build_dataset("shd", shd_root, "valid", valid_speakers=[1, 2])
    train = build_dataset("shd", shd_root, "train", valid_speakers="1,2")
    speakers = read_spike_h5(shd_root / "shd_train.h5")["speakers"]
    assert {int(speakers[r]) for r in valid.rows} == {1, 2}
    assert not {int(speakers[r]) for r in train.rows} & {1, 2}
    with pytest.raises(ValueError, match="valid_speakers"):
        build_dataset("shd", shd_root, "valid", valid_speakers=[9])


def test_ssc_three_files(tmp_path):
    root = tmp_path / "ssc"
    root.mkdir()
    rng = np.random.default_rng(1)
    keys = [f"w{i}" for i in range(35)]
    for split, n in (("train", 6), ("valid", 4), ("test", 5)):
        t, u = random_events(rng, n, max_time=0.9)
        write_zenke_file(root / f"ssc_{split}.h5", t, u, rng.integers(0, 35, n), keys=keys)
    info = dataset_info("ssc", root)
    assert info.has_valid and info.num_classes == 35 and info.num_steps == 100
    assert [len(build_dataset("ssc", root, s)) for s in ("train", "valid", "test")] == [6, 4, 5]
    (root / "ssc_test.h5").unlink()
    with pytest.raises(FileNotFoundError, match=r"no test file next to .*ssc_train\.h5"):
        dataset_info("ssc", root)


def test_folder_of_split_files_and_files_option(tmp_path):
    root = tmp_path / "spk"
    rng = np.random.default_rng(2)
    for split in ("train", "valid", "test"):
        t, u = random_events(rng, 4, max_time=0.5, channels=20)
        write_spike_h5(root / f"{split}.h5", t, u, [0, 1, 0, 1], keys=["a", "b"],
                       attrs={"spikekws_dt": 0.005, "spikekws_max_time": 0.5,
                              "spikekws_num_channels": 20})
    info = dataset_info("shd", root)
    assert (info.labels, info.num_steps, info.num_channels, info.has_valid) == (("a", "b"), 100, 20, True)
    assert dataset_info("shd", root, dt=0.01).num_steps == 50
    named = {"train": "train.h5", "test": "test.h5"}
    assert not dataset_info("shd", root, files=named).has_valid
    assert len(build_dataset("shd", root, "valid", files="", valid_fraction=0.5)) == 4


# --------------------------------------------------------------------------- malformed files
def test_missing_files_and_datasets(tmp_path):
    with pytest.raises(FileNotFoundError, match="spikekws download shd"):
        dataset_info("shd", tmp_path)
    root = tmp_path / "bad"
    root.mkdir()
    write_zenke_file(root / "shd_train.h5", [np.zeros(1)], [np.zeros(1)], [0], skip=["spikes/units"])
    write_zenke_file(root / "shd_test.h5", [np.zeros(1)], [np.zeros(1)], [0])
    with pytest.raises(ValueError, match=r"shd_train\.h5.*missing dataset 'spikes/units'"):
        dataset_info("shd", root)


def test_not_hdf5_and_length_mismatch(tmp_path):
    root = make_shd(tmp_path / "a", n_train=4, n_test=2)
    (root / "shd_test.h5").write_bytes(b"this is not HDF5")
    with pytest.raises(ValueError, match=r"shd_test\.h5: not a readable HDF5 file"):
        build_dataset("shd", root, "test")
    root = make_shd(tmp_path / "b", n_train=4, n_test=2)
    with h5py.File(root / "shd_test.h5", "a") as f:
        del f["labels"]
        f.create_dataset("labels", data=np.zeros(3, dtype=np.uint16))
    with pytest.raises(ValueError, match=r"spikes/times has 2 samples.*labels 3"):
        build_dataset("shd", root, "test")


def test_labels_out_of_range_raise_or_skip(tmp_path, caplog):
    root = tmp_path / "lab"
    root.mkdir()
    rng = np.random.default_rng(3)
    t, u = random_events(rng, 5)
    write_zenke_file(root / "shd_train.h5", t, u, [0, 1, 2, 3, 4])
    write_zenke_file(root / "shd_test.h5", t, u, [0, 25, 2, 31, 4])
    with pytest.raises(ValueError, match=r"shd_test\.h5: 2 label\(s\) out of range for 20"):
        build_dataset("shd", root, "test")
    ds = build_dataset("shd", root, "test", on_error="skip")
    assert ds.rows == [0, 2, 4] and [r for r, _ in ds.skipped] == [1, 3]
    assert "skipped 2 of 5" in caplog.text


def test_malformed_samples_raise_when_read_or_are_skipped(tmp_path, caplog):
    root = tmp_path / "ev"
    root.mkdir()
    good_t, good_u = np.array([0.1, 0.2]), np.array([1, 2])
    times: List[np.ndarray] = [good_t, np.array([0.1, 0.2, 0.3]), np.array([-0.5, 0.1]), good_t]
    units: List[np.ndarray] = [good_u, good_u, good_u, np.array([1, 900])]
    write_zenke_file(root / "shd_train.h5", [good_t], [good_u], [0])
    write_zenke_file(root / "shd_test.h5", times, units, [0, 1, 2, 3])
    ds = build_dataset("shd", root, "test")
    assert ds[0][0].sum() == 2
    with pytest.raises(ValueError, match=r"shd_test\.h5: sample 1: spikes/times has 3 events but "
                                         r"spikes/units has 2"):
        ds[1]
    with pytest.raises(ValueError, match="sample 2: 1 negative event time"):
        ds[2]
    with pytest.raises(ValueError, match="sample 3: unit 900 is out of range for 700 channels"):
        ds[3]
    skipped = build_dataset("shd", root, "test", on_error="skip")
    assert skipped.rows == [0] and len(skipped.skipped) == 3
    assert "skipped 3 of 4" in caplog.text


def test_bad_options(shd_root):
    with pytest.raises(TypeError, match="unknown option"):
        dataset_info("shd", shd_root, bins=10)
    with pytest.raises(ValueError, match="dt must be a positive number"):
        dataset_info("shd", shd_root, dt=0)
    with pytest.raises(ValueError, match="pool"):
        dataset_info("shd", shd_root, pool=701)
    with pytest.raises(ValueError, match="valid_fraction"):
        build_dataset("shd", shd_root, "valid", valid_fraction=1.5)


def test_trim_db_is_refused_for_spike_data(shd_root):
    with pytest.raises(ValueError, match="trim_db applies to audio"):
        build_dataset("shd", shd_root, "test", trim_db=40)
