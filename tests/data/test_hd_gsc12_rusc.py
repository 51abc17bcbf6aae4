"""Heidelberg Digits (FLAC + lists), GSC 12-class, Russian speech commands layouts."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spikekws.data import build_dataset, dataset_info
from spikekws.data.gsc12 import GSC12_LABELS, KEYWORDS, SILENCE_REGIONS
from spikekws.data.hd import HD_LABELS, parse_hd_name

HD_SR = 48000


# --------------------------------------------------------------------------- HD
def hd_name(lang: str, speaker: int, trial: int, digit: int) -> str:
    return f"lang-{lang}_speaker-{speaker:02d}_trial-{trial}_digit-{digit}.flac"


def make_hd(root: Path, make_wav) -> Path:
    train, test = [], []
    for speaker in range(5):
        for lang in ("english", "german"):
            for digit in (0, 3, 9):
                name = hd_name(lang, speaker, digit, digit)
                make_wav(root / "audio" / name, seconds=0.02, sr=HD_SR, freq=300 + 50 * digit)
                (test if speaker == 4 else train).append(name)
    (root / "train_filenames.txt").write_text("\n".join(train) + "\n")
    (root / "test_filenames.txt").write_text("\n".join(test) + "\n")
    return root


def test_hd_name_parsing():
    rec = parse_hd_name("lang-german_speaker-11_trial-27_digit-7.flac")
    assert (rec.language, rec.speaker, rec.trial, rec.digit, rec.label) == ("german", 11, 27, 7, 17)
    assert parse_hd_name("lang-english_speaker-03_trial-4_digit-0.flac").label == 0
    assert HD_LABELS[17] == "sieben" and HD_LABELS[0] == "zero"
    assert parse_hd_name("speaker-03_digit-0.flac") is None


def test_hd_loader(tmp_path, make_wav):
    root = make_hd(tmp_path / "hd", make_wav)
    info = dataset_info("hd", root)
    assert info.labels == HD_LABELS and info.sample_rate == HD_SR and not info.has_valid
    test = build_dataset("hd", root, "test")
    assert len(test) == 6 and {p.name.split("_")[1] for p in test.paths} == {"speaker-04"}
    wave, label = test[0]
    assert wave.shape == (int(1.4 * HD_SR),)
    assert label == parse_hd_name(test.paths[0].name).label
    assert sorted(test.labels_tensor().tolist()) == [0, 3, 9, 10, 13, 19]
    train = build_dataset("hd", root, "train", valid_fraction=0.3)
    valid = build_dataset("hd", root, "valid", valid_fraction=0.3)
    assert len(train) + len(valid) == 24 and len(valid) > 0
    assert not set(valid.paths) & set(train.paths) and not set(valid.paths) & set(test.paths)
    assert build_dataset("hd", root, "valid", valid_fraction=0.3).paths == valid.paths
    by_spk = build_dataset("hd", root, "valid", valid_speakers="1")
    assert {p.name.split("_")[1] for p in by_spk.paths} == {"speaker-01"}
    with pytest.raises(ValueError, match="valid_speakers"):
        build_dataset("hd", root, "valid", valid_speakers=[4])  # a test speaker


def test_hd_archive_subfolder(tmp_path, make_wav):
    make_hd(tmp_path / "dl" / "hd_audio", make_wav)
    assert len(build_dataset("hd", tmp_path / "dl", "test", sample_rate=HD_SR)) == 6


def test_hd_malformed(tmp_path, make_wav, caplog):
    root = make_hd(tmp_path / "hd", make_wav)
    lines = (root / "train_filenames.txt").read_text().splitlines()
    (root / "train_filenames.txt").write_text("\n".join(lines + ["digit_seven.flac"]) + "\n")
    with pytest.raises(ValueError, match=r"train_filenames\.txt, line 25: 'digit_seven\.flac'"):
        build_dataset("hd", root, "train")
    (root / "train_filenames.txt").write_text("\n".join(lines) + "\n")
    (root / "audio" / lines[0]).unlink()
    (root / "audio" / lines[1]).write_bytes(b"not a flac file")
    with pytest.raises(FileNotFoundError, match="1 listed file"):
        build_dataset("hd", root, "train", valid_fraction=0.0)
    ds = build_dataset("hd", root, "train", valid_fraction=0.0, on_error="skip")
    assert len(ds) == 22 and len(ds.skipped) == 2
    assert "skipped 2 of 24" in caplog.text
    with pytest.raises(FileNotFoundError, match="spikekws download hd"):
        dataset_info("hd", tmp_path / "hd" / "audio")


# --------------------------------------------------------------------------- GSC 12
@pytest.fixture
def gsc_root(tmp_path, make_gsc_tree, make_wav):
    root = make_gsc_tree(tmp_path / "gsc", words=KEYWORDS + ("bed", "cat", "dog"),
                         speakers=("a1", "b2", "c3", "d4", "e5"), valid_speakers=("d4",),
                         test_speakers=("e5",), seconds=0.1)
    make_wav(root / "_background_noise_" / "pink.wav", seconds=6.0, freq=90.0, amplitude=0.3)
    return root


def test_gsc12_labels_unknown_and_silence(gsc_root):
    info = dataset_info("gsc12", gsc_root)
    assert info.labels == GSC12_LABELS and info.num_classes == 12 and info.has_valid
    train = build_dataset("gsc12", gsc_root, "train")
    # 13 words x 3 train speakers = 39 word clips, + round(0.1 * 39) = 4 silence clips
    assert len(train.items) == 39 and len(train.silence) == 4 and len(train) == 43
    counts = train.class_counts()
    assert counts[10] == 9 and counts[11] == 4 and all(counts[:10] == 3)
    x, y = train[len(train) - 1]
    assert y == 11 and x.shape == (16000,)
    again = build_dataset("gsc12", gsc_root, "train")
    assert again.silence == train.silence and torch.equal(again[42][0], x)
    # every split reads its own part of each background recording
    for split in ("train", "valid", "test"):
        ds = build_dataset("gsc12", gsc_root, split, silence_fraction=1.0)
        lo, hi = SILENCE_REGIONS[split]
        for path, start, gain in ds.silence:
            frames = 0.1 * 16000 if path.name == "noise.wav" else 6.0 * 16000
            assert lo * frames <= start <= max(lo * frames, hi * frames - 16000)
            assert 0.0 <= gain <= 1.0


def test_gsc12_unknown_fraction_and_no_silence(gsc_root):
    ds = build_dataset("gsc12", gsc_root, "train", unknown_fraction=0.1, silence_fraction=0)
    assert ds.class_counts()[10] == round(0.1 * 30) and len(ds.silence) == 0
    same = build_dataset("gsc12", gsc_root, "train", unknown_fraction=0.1, silence_fraction=0)
    assert same.paths == ds.paths


def test_gsc12_malformed(tmp_path, make_gsc_tree):
    partial = make_gsc_tree(tmp_path / "p", words=("yes", "no", "bed"))
    with pytest.raises(ValueError, match="keyword folder.*up, down"):
        dataset_info("gsc12", partial)
    root = make_gsc_tree(tmp_path / "nobg", words=KEYWORDS, background=False)
    with pytest.raises(ValueError, match="silence_fraction=0"):
        build_dataset("gsc12", root, "train")
    assert len(build_dataset("gsc12", root, "train", silence_fraction=0)) == 30
    with pytest.raises(ValueError, match="silence_gain"):
        dataset_info("gsc12", root, silence_gain=[1.0, 0.5])


def test_gsc12_corrupt_background_file(gsc_root, caplog):
    (gsc_root / "_background_noise_" / "broken.wav").write_bytes(b"RIFF....not audio")
    with pytest.raises(ValueError, match=r"broken\.wav: cannot read audio"):
        build_dataset("gsc12", gsc_root, "train")
    ds = build_dataset("gsc12", gsc_root, "train", on_error="skip")
    assert len(ds.silence) == 4 and all(p.name != "broken.wav" for p, _, _ in ds.silence)
    assert "broken.wav" in caplog.text


# --------------------------------------------------------------------------- RuSC
WORDS = ("да", "нет", "стоп")


def test_rusc_manifest(tmp_path, make_wav):
    root = tmp_path / "rusc"
    rows = ["path,label,split,speaker"]
    for i, word in enumerate(WORDS):
        for k, split in enumerate(("train", "train", "val", "test")):
            rel = f"clips/{i}_{k}.wav"
            make_wav(root / rel, seconds=0.1, freq=200 + 100 * i)
            rows.append(f"{rel},{word},{split},s{k}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    info = dataset_info("rusc", root)
    assert info.labels == tuple(sorted(WORDS)) and info.has_valid and info.sample_rate == 16000
    sizes = [len(build_dataset("rusc", root, s)) for s in ("train", "valid", "test")]
    assert sizes == [6, 3, 3]
    ordered = dataset_info("rusc", root, labels=list(WORDS))
    assert ordered.labels == WORDS
    x, y = build_dataset("rusc", root, "test", labels=list(WORDS))[0]
    assert x.shape == (16000,) and WORDS[y] == "да"


def test_rusc_folder_layouts(tmp_path, make_wav):
    class_first = tmp_path / "cf"
    split_first = tmp_path / "sf"
    for word in WORDS:
        for split, n in (("train", 2), ("valid", 1), ("test", 1)):
            for k in range(n):
                make_wav(class_first / word / split / f"{k}.wav", seconds=0.05)
                make_wav(split_first / split / word / f"{k}.flac", seconds=0.05)
    for root in (class_first, split_first):
        assert dataset_info("rusc", root).labels == tuple(sorted(WORDS))
        assert [len(build_dataset("rusc", root, s)) for s in ("train", "valid", "test")] == [6, 3, 3]


def test_rusc_malformed(tmp_path, make_wav):
    root = tmp_path / "m"
    make_wav(root / "a.wav", seconds=0.05)
    (root / "manifest.csv").write_text("file,label,split\na.wav,да,train\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"manifest\.csv: missing column\(s\) path"):
        dataset_info("rusc", root)
    (root / "manifest.csv").write_text("path,label,split\na.wav,да,training\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"manifest\.csv, line 2: unknown split 'training'"):
        dataset_info("rusc", root)
    (root / "manifest.csv").write_text("path,label,split\na.wav,да,train\nb.wav,да,train\n",
                                       encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="1 file.*b.wav"):
        build_dataset("rusc", root, "train")
    assert len(build_dataset("rusc", root, "train", on_error="skip")) == 1
    loose = tmp_path / "loose"
    make_wav(loose / "да" / "x.wav", seconds=0.05)
    with pytest.raises(ValueError, match="has no train/, valid/ or test/"):
        dataset_info("rusc", loose)
    with pytest.raises(ValueError, match="labels option"):
        dataset_info("rusc", root, labels=["нет"])
