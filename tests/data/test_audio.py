"""load_audio / check_audio / fix_length on generated files."""
from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from spikekws.data.audio import AudioError, check_audio, fix_length, load_audio


def test_load_mono_wav_values(tmp_path, make_wav):
    path = make_wav(tmp_path / "tone.wav", seconds=0.1, sr=16000, freq=500.0, amplitude=0.5)
    wave = load_audio(path, expected_sample_rate=16000)
    assert isinstance(wave, torch.Tensor)
    assert wave.dtype == torch.float32 and wave.shape == (1600,)
    expected = 0.5 * np.sin(2 * np.pi * 500.0 * np.arange(1600) / 16000)
    assert np.allclose(wave.numpy(), expected, atol=1e-3)
    assert wave.abs().max() <= 1.0


@pytest.mark.parametrize("suffix", [".flac", ".ogg"])
def test_load_other_formats(tmp_path, make_wav, suffix):
    path = make_wav(tmp_path / f"tone{suffix}", seconds=0.2, sr=16000, freq=300.0)
    wave = load_audio(path, expected_sample_rate=16000)
    assert wave.shape == (3200,) and wave.dtype == torch.float32
    assert 0.3 < wave.abs().max() <= 1.0


def test_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        load_audio(path)
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        check_audio(path)


def test_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.wav"
    path.write_bytes(np.random.default_rng(0).bytes(512))
    with pytest.raises(AudioError, match="corrupt.wav") as err:
        load_audio(path)
    assert isinstance(err.value, ValueError)
    assert err.value.path == path
    assert "cannot read audio" in str(err.value)
    with pytest.raises(AudioError, match="corrupt.wav"):
        check_audio(path)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "zero.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match="zero.wav"):
        load_audio(path)


def test_empty_audio(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(str(path), np.zeros(0, dtype=np.float32), 16000, subtype="PCM_16")
    with pytest.raises(AudioError, match="empty audio") as err:
        load_audio(path)
    assert "empty.wav" in str(err.value)
    with pytest.raises(AudioError, match="empty audio"):
        check_audio(path)


def test_wrong_sample_rate_is_an_error_not_resampled(tmp_path, make_wav):
    path = make_wav(tmp_path / "slow.wav", sr=8000)
    with pytest.raises(AudioError, match=r"sample rate 8000 Hz, expected 16000 Hz") as err:
        load_audio(path, expected_sample_rate=16000)
    assert "slow.wav" in str(err.value)
    with pytest.raises(AudioError, match="expected 16000 Hz"):
        check_audio(path, expected_sample_rate=16000)
    assert load_audio(path).shape == (2000,)  # no expectation: loads at its own rate


def test_multichannel_average_or_reject(tmp_path):
    path = tmp_path / "stereo.wav"
    data = np.stack([np.full(100, 0.5), np.full(100, 0.25)], axis=1).astype(np.float32)
    sf.write(str(path), data, 16000, subtype="FLOAT")
    wave = load_audio(path)
    assert wave.shape == (100,)
    assert torch.allclose(wave, torch.full((100,), 0.375))
    with pytest.raises(AudioError, match="2 channels, expected mono"):
        load_audio(path, allow_multichannel=False)
    with pytest.raises(AudioError, match="stereo.wav"):
        check_audio(path, allow_multichannel=False)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_samples(tmp_path, bad):
    path = tmp_path / "nan.wav"
    sf.write(str(path), np.array([0.1, bad, -0.1], dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="non-finite") as err:
        load_audio(path)
    assert "nan.wav" in str(err.value)
    with pytest.raises(AudioError, match="non-finite"):
        check_audio(path)  # float files are decoded even by the cheap check


def test_float_overshoot_is_clipped(tmp_path):
    path = tmp_path / "loud.wav"
    sf.write(str(path), np.array([1.5, -2.0, 0.25], dtype=np.float32), 16000, subtype="FLOAT")
    assert load_audio(path).tolist() == [1.0, -1.0, 0.25]


def test_directory_is_not_audio(tmp_path):
    os.mkdir(tmp_path / "dir.wav")
    with pytest.raises(AudioError, match="directory"):
        load_audio(tmp_path / "dir.wav")


def test_fix_length_center():
    x = torch.arange(1, 6, dtype=torch.float32)  # 1..5
    assert fix_length(x, 5) is x
    assert fix_length(x, 8).tolist() == [0, 1, 2, 3, 4, 5, 0, 0]
    assert fix_length(x, 3).tolist() == [2, 3, 4]
    assert fix_length(x, 4).tolist() == [1, 2, 3, 4]


def test_fix_length_start():
    x = torch.arange(1, 6, dtype=torch.float32)
    assert fix_length(x, 7, mode="start").tolist() == [1, 2, 3, 4, 5, 0, 0]
    assert fix_length(x, 2, mode="start").tolist() == [1, 2]


def test_fix_length_batch_and_errors():
    x = torch.ones(3, 10)
    assert fix_length(x, 16).shape == (3, 16)
    assert fix_length(x, 4).shape == (3, 4)
    with pytest.raises(ValueError, match="mode"):
        fix_length(x, 4, mode="end")
    with pytest.raises(ValueError, match="positive"):
        fix_length(x, 0)
    with pytest.raises(TypeError):
        fix_length(x, 2.5)


def test_trim_silence_cuts_quiet_edges_and_keeps_inner_pauses():
    from spikekws.data.audio import trim_silence

    sr = 8000
    g = torch.Generator().manual_seed(0)
    quiet = lambda n: 1e-3 * torch.randn(n, generator=g)  # -60 dB against the tone
    tone = lambda n: torch.sin(2 * torch.pi * 440 * torch.arange(n) / sr)
    wave = torch.cat([quiet(2400), tone(1600), quiet(800), tone(1600), quiet(3200)])
    out = trim_silence(wave, sr, top_db=40)
    # the output is a slice of the input: find where it starts
    starts = [i for i in range(wave.shape[0] - out.shape[0] + 1)
              if torch.equal(wave[i:i + out.shape[0]], out)]
    assert len(starts) == 1
    start, end = starts[0], starts[0] + out.shape[0]
    # tones at [2400, 4000) and [4800, 6400); 25 ms frames (200 samples) every 10 ms: the
    # cut lands within one frame outside the tones, and the pause between them is kept
    assert 2400 - 200 <= start <= 2400
    assert 6400 <= end <= 6400 + 200
    # a lower threshold keeps the quiet parts
    assert trim_silence(wave, sr, top_db=80).shape == wave.shape
    # nothing to trim: silent, too short
    assert torch.equal(trim_silence(torch.zeros(4000), sr), torch.zeros(4000))
    assert trim_silence(torch.ones(100), sr).shape == (100,)
    with pytest.raises(ValueError, match="trim_db"):
        trim_silence(wave, sr, top_db=0)
    with pytest.raises(ValueError, match="1-D"):
        trim_silence(wave[None], sr)
