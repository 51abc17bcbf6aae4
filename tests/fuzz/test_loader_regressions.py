"""Regression tests for loader bugs found by the fuzzer (tests/fuzz/test_fuzz_loaders.py)."""
from __future__ import annotations

import numpy as np
import pytest

from spikekws.data.spikes import SpikeFile, bin_events, write_spike_h5

h5py = pytest.importorskip("h5py")


def _valid(path):
    write_spike_h5(path, [np.array([0.01, 0.02])], [np.array([1, 2])], np.array([0]),
                   keys=["a"])
    return path


def test_far_future_event_is_dropped_not_wrapped_into_a_bin():
    # floor(1e300 / dt) overflowed int64 and landed in a valid bin
    x = bin_events(np.array([0.0, 1e300, 5e18, 0.095, 0.1]), np.array([1, 2, 3, 0, 0]),
                   num_steps=10, dt=0.01, num_channels=4)
    assert x.sum().item() == 2.0
    assert x[0, 1] == 1 and x[9, 0] == 1


@pytest.mark.parametrize("name", ["spikes/times", "spikes/units", "labels"])
def test_scalar_dataset_is_a_value_error_naming_the_file(tmp_path, name):
    path = _valid(tmp_path / "f.h5")
    with h5py.File(path, "a") as f:
        del f[name]
        f.create_dataset(name, data=3)
    with pytest.raises(ValueError, match=f"{path}.*'{name}' must be a dataset with one entry"):
        SpikeFile(path)


def test_group_instead_of_dataset_is_a_value_error(tmp_path):
    path = _valid(tmp_path / "f.h5")
    with h5py.File(path, "a") as f:
        del f["spikes/times"]
        f.create_group("spikes/times")
    with pytest.raises(ValueError, match="'spikes/times' must be a dataset"):
        SpikeFile(path)


def test_undecodable_class_names_are_a_value_error_naming_the_file(tmp_path):
    path = _valid(tmp_path / "f.h5")
    with h5py.File(path, "a") as f:
        del f["extra/keys"]
        f.create_dataset("extra/keys", data=np.array([b"\xff\xfe"], dtype=object),
                         dtype=h5py.string_dtype("ascii"))
    with pytest.raises(ValueError, match=f"{path}: extra/keys is not UTF-8 text"):
        SpikeFile(path)


def test_scalar_class_names_are_refused_not_split_into_characters(tmp_path):
    path = _valid(tmp_path / "f.h5")
    with h5py.File(path, "a") as f:
        del f["extra/keys"]
        f.create_dataset("extra/keys", data=b"one")
    with pytest.raises(ValueError, match="extra/keys must be a 1-D list of class names"):
        SpikeFile(path)


def test_undecodable_attribute_is_a_value_error(tmp_path):
    path = _valid(tmp_path / "f.h5")
    with h5py.File(path, "a") as f:
        f.attrs["spikekws_encoder"] = np.bytes_(b"\xff\xfe")
    with pytest.raises(ValueError, match="root attribute is not UTF-8"):
        SpikeFile(path)


def test_scalar_speaker_dataset_is_ignored_with_a_warning(tmp_path, caplog):
    path = _valid(tmp_path / "f.h5")
    with h5py.File(path, "a") as f:
        f.create_dataset("extra/speaker", data=4)
    sf = SpikeFile(path)
    assert sf.speakers is None
    assert "extra/speaker has shape ()" in caplog.text


@pytest.mark.parametrize("attrs, options, needle", [
    ({"spikekws_dt": 1e-9}, {}, "values per sample"),  # 1.4e9 steps x 700 channels
    ({"spikekws_dt": 5e-324}, {}, "dt must be at least 1e-9 s"),  # max_time / dt is inf
    ({}, {"max_time": float("inf")}, "values per sample"),
    ({"spikekws_num_channels": float("inf")}, {}, "num_channels must be a positive integer"),
    ({}, {"dt": 5e-324, "max_time": 5e-324}, "dt must be at least 1e-9 s"),  # 1/dt = inf
])
def test_absurd_geometry_is_refused_before_allocating(tmp_path, attrs, options, needle):
    from spikekws.data import dataset_info
    write_spike_h5(tmp_path / "train.h5", [np.array([0.01])], [np.array([1])], np.array([0]),
                   keys=["a"], attrs=attrs)
    with pytest.raises(ValueError, match=needle):
        dataset_info("ssc", tmp_path, files={"train": "train.h5", "test": "train.h5"}, **options)


# --------------------------------------------------------------------------- audio
def _flac_claiming_billions_of_frames(path):
    import io

    import soundfile as sf
    buf = io.BytesIO()
    sf.write(buf, np.full(800, 0.1, dtype=np.float32), 8000, format="FLAC", subtype="PCM_16")
    data = bytearray(buf.getvalue())
    i = 8 + 13  # STREAMINFO total-samples field (36 bits) after "fLaC" and the block header
    data[i] = (data[i] & 0xF0) | 0x0F
    data[i + 1:i + 5] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    return path


def test_damaged_header_claiming_huge_length_does_not_allocate_it(tmp_path):
    # load_audio allocated the header's 2**36 frames (256 GiB) up front: MemoryError
    import soundfile as sf

    from spikekws.data.audio import AudioError, load_audio
    path = _flac_claiming_billions_of_frames(tmp_path / "big.flac")
    assert sf.info(str(path)).frames == 2**36 - 1
    with pytest.raises(AudioError, match="big.flac: cannot decode audio"):
        load_audio(path)


@pytest.mark.parametrize("channels", [1, 3])
def test_block_reading_returns_the_whole_file(tmp_path, channels):
    import soundfile as sf
    import torch

    from spikekws.data.audio import _BLOCK_SAMPLES, load_audio
    n = _BLOCK_SAMPLES // channels * 2 + 123  # two full blocks and a partial one
    rng = np.random.default_rng(0)
    data = (rng.uniform(-0.5, 0.5, (n, channels))).astype(np.float32)
    sf.write(str(tmp_path / "long.wav"), data, 16000, subtype="FLOAT")
    x = load_audio(tmp_path / "long.wav")
    assert x.shape == (n,)
    assert torch.allclose(x, torch.from_numpy(data.mean(1)), atol=1e-7)
