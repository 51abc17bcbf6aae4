"""Tests of the eSpeak NG binding and the synthetic speech-commands generator."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from spikekws.data import synth
from spikekws.data.espeak import ESpeak, list_variants

WORDS = ("yes", "no", "да")
SMALL = dict(langs=("en", "ru"), words=WORDS, speakers=4, per_speaker=1, seed=3, progress=False)


def _tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return synth.generate(tmp_path_factory.mktemp("synth") / "ds", workers=1, **SMALL)


def test_espeak_engine():
    eng = ESpeak()
    assert eng is ESpeak()
    assert eng.sample_rate > 8000
    x = eng.synth("yes", "en-us+m3", 170, 50, 50)
    assert x.dtype == np.float32 and x.size > 0.1 * eng.sample_rate
    assert 0.05 < np.abs(x).max() <= 1.0
    y = eng.synth("вперёд", "ru+f2", 170, 50, 50)
    assert np.abs(y).max() > 0.05
    with pytest.raises(ValueError, match="xx-nope"):
        eng.synth("yes", "xx-nope", 170, 50, 50)
    with pytest.raises(ValueError, match="nope"):
        eng.synth("yes", "en-us+nope", 170, 50, 50)
    variants = list_variants()
    assert variants == sorted(variants) and {"m3", "f2"} <= set(variants)


def test_layout_and_splits(small: Path):
    labels = json.loads((small / "labels.json").read_text(encoding="utf-8"))
    assert labels == {"yes": {"text": "yes", "lang": "en"}, "no": {"text": "no", "lang": "en"},
                      "da": {"text": "да", "lang": "ru"}}
    speakers = json.loads((small / "speakers.json").read_text(encoding="utf-8"))
    assert len(speakers) == 4
    wavs = sorted(p.relative_to(small).as_posix() for p in small.rglob("*.wav"))
    assert len(wavs) == 3 * 4
    for rel in wavs:
        folder, name = rel.split("/")
        assert folder in labels
        spk, k = name[:-4].split("_nohash_")
        assert spk in speakers and k == "0"
    valid = (small / "validation_list.txt").read_text().splitlines()
    test = (small / "testing_list.txt").read_text().splitlines()
    assert valid == sorted(valid) and test == sorted(test)
    assert set(valid) | set(test) <= set(wavs) and not set(valid) & set(test)

    def spk_of(paths):
        return {p.split("/")[1].split("_nohash_")[0] for p in paths}

    train = set(wavs) - set(valid) - set(test)
    assert len(spk_of(valid)) == 1 and len(spk_of(test)) == 1 and len(spk_of(train)) == 2
    assert not spk_of(train) & (spk_of(valid) | spk_of(test))
    assert not spk_of(valid) & spk_of(test)
    # every clip of a held-out speaker is listed
    for s in spk_of(valid) | spk_of(test):
        assert {w for w in wavs if f"/{s}_" in w} <= set(valid) | set(test)
    split = {s: v["split"] for s, v in speakers.items()}
    assert sorted(split.values()) == ["test", "train", "train", "valid"]
    manifest = json.loads((small / "manifest.json").read_text())
    assert manifest["files"] == 12 and manifest["args"]["seed"] == 3


def test_clips_are_speech(small: Path):
    win = 1600  # 100 ms at 16 kHz
    for p in small.rglob("*.wav"):
        info = sf.info(str(p))
        assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
        x, sr = sf.read(str(p), dtype="float64")
        assert x.shape == (16000,)
        assert np.abs(x).max() > 0.05
        frames = x[: len(x) // win * win].reshape(-1, win)
        rms = np.sqrt((frames ** 2).mean(axis=1))
        # loudest 100 ms well above the noise floor (quietest 100 ms); SNR >= 5 dB over the word
        assert rms.max() > 2.0 * rms.min(), p


def test_russian_word(tmp_path: Path):
    out = synth.generate(tmp_path / "ru", langs="ru", words=["да"], speakers=3, snr_db=None,
                         workers=1, progress=False)
    files = sorted((out / "da").glob("*.wav"))
    assert len(files) == 3
    for f in files:
        x, _ = sf.read(str(f))
        assert np.sqrt(np.mean(x ** 2)) > 1e-3


def test_deterministic_across_workers(small: Path, tmp_path: Path):
    again = synth.generate(tmp_path / "w2", workers=2, **SMALL)
    assert _tree(again) == _tree(small)
    other = synth.generate(tmp_path / "seed4", workers=1, **{**SMALL, "seed": 4})
    a = (small / "yes").glob("*.wav")
    assert {p.read_bytes() for p in a}.isdisjoint(p.read_bytes() for p in (other / "yes").glob("*.wav"))


def test_cache_and_mismatch(tmp_path: Path, caplog):
    out = tmp_path / "c"
    args = dict(SMALL, words=("yes",), speakers=3)
    synth.generate(out, workers=1, **args)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    with caplog.at_level("INFO", logger="spikekws.data.synth"):
        synth.generate(out, workers=1, **args)
    assert "cached" in caplog.text
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == mtimes
    with pytest.raises(ValueError, match="seed"):
        synth.generate(out, workers=1, **dict(args, seed=99))
    with pytest.raises(ValueError, match="speakers"):
        synth.generate(out, workers=1, **dict(args, speakers=5))


def test_resume_interrupted_and_foreign_folders(tmp_path: Path):
    out = tmp_path / "r"
    args = dict(SMALL, words=("yes",), speakers=3)
    synth.generate(out, workers=1, **args)
    reference = _tree(out)
    # simulate a killed run: no manifest, a truncated clip, a stale clip, and a user file
    (out / "manifest.json").unlink()
    victim = sorted((out / "yes").glob("*.wav"))[0]
    victim.write_bytes(b"garbage")
    stale = out / "yes" / "ffff0000_nohash_0.wav"
    stale.write_bytes(b"stale")
    (out / "notes.txt").write_text("mine")
    synth.generate(out, workers=1, **args)
    assert not stale.exists()
    assert (out / "notes.txt").read_text() == "mine"
    tree = _tree(out)
    del tree["notes.txt"]
    assert tree == reference
    # a non-empty folder the generator did not create is left alone
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.wav").write_bytes(b"x")
    with pytest.raises(ValueError, match="not empty"):
        synth.generate(foreign, workers=1, **args)


@pytest.mark.parametrize("bad, match", [
    (dict(langs=("en", "de")), "'en', 'ru'"),
    (dict(speakers=2), "speakers"),
    (dict(per_speaker=0), "per_speaker"),
    (dict(seed=-1), "seed"),
    (dict(clip_seconds=0), "clip_seconds"),
    (dict(valid_fraction=0.6, test_fraction=0.5), "fraction"),
    (dict(snr_db=(30, 5)), "snr_db"),
    (dict(words=("yes", "xyz!")), "xyz!"),
    (dict(langs="en", words=("да",)), "да"),
    (dict(workers=0), "workers"),
])
def test_bad_arguments(tmp_path: Path, bad, match):
    args = dict(SMALL, **bad)
    with pytest.raises(ValueError, match=match):
        synth.generate(tmp_path / "bad", workers=args.pop("workers", 1), **args)
    assert not (tmp_path / "bad").exists()


def test_vocabularies():
    assert len(synth.VOCAB_EN) == 35 and len(set(synth.VOCAB_EN)) == 35
    both = synth.vocabulary(("en", "ru"))
    assert len(both) == len(synth.VOCAB_EN) + len(synth.VOCAB_RU)
    assert all(name.isascii() for name in both)
    assert both["stop"]["lang"] == "en" and both["stop_ru"]["text"] == "стоп"
    assert both["vpered"]["text"] == "вперёд" and both["vverkh"]["text"] == "вверх"


@pytest.mark.parametrize("up, down, n", [(320, 441, 4000), (441, 320, 3001), (2, 1, 257), (1, 3, 1000)])
def test_resample_matches_scipy(up, down, n):
    signal = pytest.importorskip("scipy.signal")
    x = np.random.default_rng(0).standard_normal(n)
    y = synth.resample_poly(x, up, down)
    ref = signal.resample_poly(x, up, down)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-10)
