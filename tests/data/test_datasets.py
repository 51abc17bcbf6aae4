"""Dataset loaders (gsc, synth, fsdd, folder) on small generated trees, plus real FSDD."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from spikekws.data import (
    AudioDataset,
    AudioError,
    DatasetInfo,
    build_dataset,
    build_splits,
    dataset_info,
    list_datasets,
)

SPLITS = ("train", "valid", "test")
ALL_TRAIN = {"valid_fraction": 0.0, "test_fraction": 0.0}  # folder option: no hashed holdout


def paths_of(ds: AudioDataset):
    return {p for p, _ in ds.items}


def assert_disjoint(splits):
    seen = set()
    for ds in splits.values():
        ps = paths_of(ds)
        assert not (ps & seen)
        seen |= ps
    return seen


# -- registry and argument checking ----------------------------------------------------


def test_builtin_datasets_registered():
    assert {"gsc", "synth", "fsdd", "folder"} <= set(list_datasets())


def test_unknown_dataset_name_suggests(tmp_path):
    with pytest.raises(KeyError, match="did you mean 'fsdd'"):
        build_dataset("fsd", tmp_path, "train")
    with pytest.raises(KeyError, match="did you mean"):
        dataset_info("synthe", tmp_path)


def test_bad_split_and_unknown_option(tmp_path, make_gsc_tree):
    root = make_gsc_tree(tmp_path / "gsc")
    with pytest.raises(ValueError, match="'train', 'valid', 'test'"):
        build_dataset("gsc", root, "validation")
    with pytest.raises(TypeError, match="sample_rte"):
        build_dataset("folder", root, "train", sample_rte=16000)
    with pytest.raises(TypeError, match="clip_seconds"):
        dataset_info("gsc", root, clip_seconds=2.0)
    with pytest.raises(ValueError, match="on_error"):
        build_dataset("gsc", root, "train", on_error="ignore")


@pytest.mark.parametrize("name", ["gsc", "synth", "fsdd", "folder"])
def test_missing_root(tmp_path, name):
    root = tmp_path / "does" / "not" / "exist"
    with pytest.raises(FileNotFoundError, match="exist") as err:
        build_dataset(name, root, "train")
    assert str(root) in str(err.value)
    with pytest.raises(FileNotFoundError):
        dataset_info(name, root)
    if name == "synth":
        assert f"spikekws synth --out {root}" in str(err.value)


def test_root_is_a_file(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(NotADirectoryError, match="file.txt"):
        dataset_info("gsc", f)


# -- gsc / synth -----------------------------------------------------------------------


def test_gsc_splits_labels_lengths(tmp_path, make_gsc_tree):
    root = make_gsc_tree(tmp_path / "gsc", seconds=0.25)
    info = dataset_info("gsc", root)
    assert info == DatasetInfo("gsc", ("no", "up", "yes"), 16000, True, 1.0)
    splits = build_splits("gsc", root)
    assert {k: len(v) for k, v in splits.items()} == {"train": 9, "valid": 3, "test": 3}
    every = assert_disjoint(splits)
    assert every == set(root.glob("[!_]*/*.wav"))  # background noise ignored
    assert {p.name for p in paths_of(splits["valid"])} == {"dd44_nohash_0.wav"}
    assert {p.name for p in paths_of(splits["test"])} == {"ee55_nohash_0.wav"}
    train = splits["train"]
    assert train.labels_tensor().tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert train.class_counts().tolist() == [3, 3, 3]
    for i in range(len(train)):
        wave, label = train[i]
        path, expected_label = train.items[i]
        assert label == expected_label and info.labels[label] == path.parent.name
        assert wave.shape == (16000,) and wave.dtype == torch.float32
        # 0.25 s centred in a 1 s clip: zeros at both ends, the tone in the middle
        assert wave[:6000].abs().max() == 0 and wave[-6000:].abs().max() == 0
        raw = sf.read(str(path), dtype="float32")[0]
        raw = torch.from_numpy(raw)
        assert torch.allclose(wave[6000:10000], raw - raw.mean())  # DC offset removed


def test_gsc_dataloader_batches(tmp_path, make_gsc_tree):
    root = make_gsc_tree(tmp_path / "gsc")
    ds = build_dataset("gsc", root, "train")
    waves, labels = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert waves.shape == (4, 16000) and labels.dtype == torch.long


def test_gsc_empty_class_folder(tmp_path, make_gsc_tree):
    root = make_gsc_tree(tmp_path / "gsc")
    (root / "down").mkdir()
    with pytest.raises(ValueError, match="down"):
        dataset_info("gsc", root)


def test_gsc_missing_split_list(tmp_path, make_gsc_tree):
    root = make_gsc_tree(tmp_path / "gsc")
    (root / "testing_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match="testing_list.txt"):
        build_dataset("gsc", root, "train")


def test_gsc_listed_file_missing_on_disk_warns(tmp_path, caplog, make_gsc_tree):
    root = make_gsc_tree(tmp_path / "gsc")
    with open(root / "testing_list.txt", "a") as fh:
        fh.write("yes/ghost_nohash_0.wav\n")
    with caplog.at_level(logging.WARNING, logger="spikekws.data"):
        ds = build_dataset("gsc", root, "test")
    assert len(ds) == 3
    assert "ghost_nohash_0.wav" in caplog.text


def test_synth_reads_manifest(tmp_path, make_gsc_tree):
    manifest = {"sample_rate": 8000, "clip_seconds": 0.5}
    root = make_gsc_tree(tmp_path / "synth", sr=8000, seconds=0.75, manifest=manifest)
    (root / "labels.json").write_text(json.dumps({"yes": {"text": "yes", "lang": "en"}}))
    info = dataset_info("synth", root)
    assert (info.name, info.sample_rate, info.clip_seconds) == ("synth", 8000, 0.5)
    assert info.clip_samples == 4000
    assert info.labels == ("no", "up", "yes")
    splits = build_splits("synth", root)
    assert [len(splits[s]) for s in SPLITS] == [9, 3, 3]
    assert_disjoint(splits)
    wave, _ = splits["test"][0]
    assert wave.shape == (4000,)
    raw = sf.read(str(splits["test"].items[0][0]), dtype="float32")[0]  # 6000 samples
    expected = torch.from_numpy(raw - raw.mean())[1000:5000]  # DC removed, centre crop
    assert torch.allclose(wave, expected)


def test_synth_without_manifest(tmp_path, make_gsc_tree):
    root = make_gsc_tree(tmp_path / "synth")  # GSC layout, no manifest: 16 kHz
    assert dataset_info("synth", root).sample_rate == 16000
    assert len(build_dataset("synth", root, "valid")) == 3
    for name in ("validation_list.txt", "testing_list.txt"):
        (root / name).unlink()
    with pytest.raises(ValueError, match="spikekws synth --out"):
        dataset_info("synth", root)


def test_synth_bad_manifest(tmp_path, make_gsc_tree):
    root = make_gsc_tree(tmp_path / "synth", manifest={"sample_rate": -3})
    with pytest.raises(ValueError, match="sample_rate"):
        dataset_info("synth", root)
    (root / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="manifest.json"):
        dataset_info("synth", root)


# -- fsdd --------------------------------------------------------------------------------


def write_fsdd(make_wav, root: Path, speakers=("alice", "bob", "carol"), indices=range(12)):
    for d in range(10):
        for spk in speakers:
            for k in indices:
                make_wav(root / f"{d}_{spk}_{k}.wav", seconds=0.05, sr=8000, freq=300 + 50 * d)
    return root


@pytest.fixture(scope="module")
def fsdd_tree(tmp_path_factory, make_wav):
    return write_fsdd(make_wav, tmp_path_factory.mktemp("fsdd") / "recordings").parent


def fsdd_index(path: Path) -> int:
    return int(path.stem.split("_")[-1])


def fsdd_speaker(path: Path) -> str:
    return path.stem.split("_")[1]


def test_fsdd_info(fsdd_tree):
    info = dataset_info("fsdd", fsdd_tree)
    assert info.labels == tuple(str(d) for d in range(10))
    assert (info.sample_rate, info.has_valid, info.clip_samples) == (8000, False, 8000)
    assert dataset_info("fsdd", fsdd_tree, clip_seconds=0.5).clip_samples == 4000


def test_fsdd_official_split(fsdd_tree):
    splits = build_splits("fsdd", fsdd_tree)  # files found in root/recordings
    assert [len(splits[s]) for s in SPLITS] == [60, 150, 150]
    assert_disjoint(splits)
    assert {fsdd_index(p) for p in paths_of(splits["test"])} == set(range(5))
    assert {fsdd_index(p) for p in paths_of(splits["valid"])} == set(range(5, 10))
    assert {fsdd_index(p) for p in paths_of(splits["train"])} == {10, 11}
    for ds in splits.values():
        for path, label in ds.items:
            assert label == int(path.name[0])
    wave, label = splits["test"][0]
    assert wave.shape == (8000,) and label == 0
    assert 0.4 < wave.abs().max() < 0.51 and wave[:3000].abs().max() == 0


def test_fsdd_valid_indices_come_from_train_only(fsdd_tree):
    splits = build_splits("fsdd", fsdd_tree, valid_indices="5-6")
    assert [len(splits[s]) for s in SPLITS] == [150, 60, 150]
    assert len(build_dataset("fsdd", fsdd_tree, "valid", valid_indices=())) == 0
    assert len(build_dataset("fsdd", fsdd_tree, "train", valid_indices=[])) == 210
    with pytest.raises(ValueError, match="official test"):
        build_dataset("fsdd", fsdd_tree, "valid", valid_indices=[3, 7])
    with pytest.raises(ValueError, match="split_mode='speaker'"):
        build_dataset("fsdd", fsdd_tree, "train", test_speakers="bob")
    with pytest.raises(ValueError, match="split_mode"):
        build_dataset("fsdd", fsdd_tree, "train", split_mode="random")


def test_fsdd_speaker_split(fsdd_tree):
    splits = build_splits("fsdd", fsdd_tree, split_mode="speaker", test_speakers="bob")
    assert [len(splits[s]) for s in SPLITS] == [140, 100, 120]
    assert_disjoint(splits)
    assert {fsdd_speaker(p) for p in paths_of(splits["test"])} == {"bob"}
    assert {fsdd_speaker(p) for p in paths_of(splits["train"])} == {"alice", "carol"}
    assert {fsdd_index(p) for p in paths_of(splits["valid"])} == set(range(5))

    two = build_splits("fsdd", fsdd_tree, split_mode="speaker", test_speakers="alice, bob")
    assert {fsdd_speaker(p) for p in paths_of(two["test"])} == {"alice", "bob"}
    assert [len(two[s]) for s in SPLITS] == [70, 50, 240]

    by_spk = build_splits(
        "fsdd", fsdd_tree, split_mode="speaker", test_speakers=("carol",), valid_speakers=["alice"]
    )
    assert [len(by_spk[s]) for s in SPLITS] == [120, 120, 120]
    assert {fsdd_speaker(p) for p in paths_of(by_spk["valid"])} == {"alice"}
    assert_disjoint(by_spk)


def test_fsdd_train_speakers_leave_the_others_out(fsdd_tree):
    one = build_splits("fsdd", fsdd_tree, split_mode="speaker", test_speakers="bob",
                       train_speakers="carol")
    assert {fsdd_speaker(p) for p in paths_of(one["train"])} == {"carol"}
    assert {fsdd_speaker(p) for p in paths_of(one["valid"])} == {"carol"}
    assert {fsdd_speaker(p) for p in paths_of(one["test"])} == {"bob"}
    assert [len(one[s]) for s in SPLITS] == [70, 50, 120]
    assert_disjoint(one)
    both = build_splits("fsdd", fsdd_tree, split_mode="speaker", test_speakers="bob",
                        train_speakers=["alice", "carol"])
    full = build_splits("fsdd", fsdd_tree, split_mode="speaker", test_speakers="bob")
    for split in SPLITS:
        assert paths_of(both[split]) == paths_of(full[split])
    # with valid speakers, train_speakers only restricts train
    vs = build_splits("fsdd", fsdd_tree, split_mode="speaker", test_speakers="bob",
                      valid_speakers="alice", train_speakers="carol")
    assert {fsdd_speaker(p) for p in paths_of(vs["train"])} == {"carol"}
    assert [len(vs[s]) for s in SPLITS] == [120, 120, 120]
    with pytest.raises(ValueError, match="also test or valid"):
        build_dataset("fsdd", fsdd_tree, "train", split_mode="speaker", test_speakers="bob",
                      train_speakers="bob,carol")
    with pytest.raises(ValueError, match="unknown speaker.*zed"):
        build_dataset("fsdd", fsdd_tree, "train", split_mode="speaker", test_speakers="bob",
                      train_speakers="zed")
    with pytest.raises(ValueError, match="no training speakers"):
        build_dataset("fsdd", fsdd_tree, "train", split_mode="speaker", test_speakers="bob",
                      train_speakers=[])
    with pytest.raises(ValueError, match="split_mode='speaker'"):
        build_dataset("fsdd", fsdd_tree, "train", train_speakers="bob")


def test_fsdd_speaker_errors(fsdd_tree):
    with pytest.raises(ValueError, match="alice, bob, carol") as err:
        build_dataset("fsdd", fsdd_tree, "test", split_mode="speaker", test_speakers="theo")
    assert "theo" in str(err.value)
    with pytest.raises(ValueError, match="both"):
        build_dataset(
            "fsdd", fsdd_tree, "test", split_mode="speaker",
            test_speakers="bob", valid_speakers="bob",
        )
    with pytest.raises(ValueError, match="no training speakers"):
        build_dataset(
            "fsdd", fsdd_tree, "test", split_mode="speaker",
            test_speakers="alice,bob", valid_speakers="carol",
        )


def test_trim_db_trims_every_split_before_padding(tmp_path):
    import numpy as np
    import soundfile as sf

    from spikekws.data.audio import fix_length, load_audio, trim_silence

    root = tmp_path / "fsdd"
    root.mkdir()
    sr = 8000
    rng = np.random.default_rng(0)
    for d in range(10):
        for k in range(7):  # 0-4 test, 5 valid, 6 train
            # 0.3 s of faint noise, 0.2 s tone, 0.1 s faint noise: trimmed, the tone is centred
            noise = lambda n: 1e-3 * rng.standard_normal(n)
            tone = 0.5 * np.sin(2 * np.pi * (300 + 50 * d) * np.arange(1600) / sr)
            sf.write(str(root / f"{d}_x_{k}.wav"), np.concatenate([noise(2400), tone, noise(800)]),
                     sr, subtype="PCM_16")
    for split in ("train", "valid", "test"):
        plain = build_dataset("fsdd", root, split, valid_indices="5")
        trimmed = build_dataset("fsdd", root, split, valid_indices="5", trim_db=40)
        path = trimmed.items[0][0]
        raw = load_audio(path, expected_sample_rate=sr)
        expect = fix_length(trim_silence(raw - raw.mean(), sr, 40.0), 8000)
        assert torch.equal(trimmed[0][0], expect)
        assert not torch.equal(plain[0][0], expect)
        # the tone now sits in the middle of the 1 s clip
        loud = torch.nonzero(trimmed[0][0].abs() > 0.1).flatten()
        assert abs((loud[0] + loud[-1]).item() / 2 - 4000) < 150
    for bad in (0, -10, "40", True):
        with pytest.raises(ValueError, match="trim_db"):
            build_dataset("fsdd", root, "train", trim_db=bad)


def test_fsdd_files_directly_in_root(tmp_path, make_wav):
    root = write_fsdd(make_wav, tmp_path / "flat", speakers=("x",), indices=range(6))
    (root / "README.wav").write_bytes(b"not a recording")  # ignored: name does not match
    assert len(build_dataset("fsdd", root, "train", valid_indices=())) == 10
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty"):
        build_dataset("fsdd", empty, "train")


# -- folder ------------------------------------------------------------------------------


def write_folder(make_wav, root: Path, classes=("bird", "car", "dog"), per_class=20, sr=16000):
    for ci, cls in enumerate(classes):
        for k in range(per_class):
            suffix = (".wav", ".flac", ".ogg")[k % 3] if ci == 0 else ".wav"
            sub = "nested/deeper/" if k % 4 == 0 else ""
            path = root / cls / f"{sub}s{k:02d}{suffix}"
            make_wav(path, seconds=0.05, sr=sr, freq=400 + 100 * ci)
    return root


def test_folder_hashed_splits(tmp_path, make_wav):
    root = write_folder(make_wav, tmp_path / "sounds")
    (root / "_ignored").mkdir()
    (root / "car" / "notes.txt").write_text("not audio")
    info = dataset_info("folder", root)  # sample rate inferred from the first file
    assert info == DatasetInfo("folder", ("bird", "car", "dog"), 16000, False, 1.0)
    opts = dict(valid_fraction=0.2, test_fraction=0.3, seed=1)
    splits = build_splits("folder", root, **opts)
    every = assert_disjoint(splits)
    assert len(every) == 60
    assert all(len(splits[s]) > 0 for s in SPLITS)
    assert len(splits["test"]) > len(splits["valid"]) * 0.5
    assert sum(splits["train"].class_counts().tolist()) == len(splits["train"])
    # deterministic, and adding files never moves the existing ones
    again = build_splits("folder", root, **opts)
    assert all(paths_of(again[s]) == paths_of(splits[s]) for s in SPLITS)
    make_wav(root / "dog" / "new.wav", seconds=0.05)
    make_wav(root / "emu" / "new.wav", seconds=0.05)
    grown = build_splits("folder", root, **opts)
    assert all(paths_of(splits[s]) <= paths_of(grown[s]) for s in SPLITS)
    assert dataset_info("folder", root).labels == ("bird", "car", "dog", "emu")
    # a different seed gives a different assignment
    other = build_splits("folder", root, **{**opts, "seed": 2})
    assert paths_of(other["test"]) != paths_of(grown["test"])


def test_folder_values_formats_and_clip(tmp_path, make_wav):
    root = write_folder(make_wav, tmp_path / "sounds", classes=("bird",), per_class=3)
    ds = build_dataset("folder", root, "train", clip_seconds=0.1, **ALL_TRAIN)
    assert len(ds) == 3 and {p.suffix for p in ds.paths} == {".wav", ".flac", ".ogg"}
    for i in range(3):
        wave, label = ds[i]
        assert wave.shape == (1600,) and label == 0
        assert 0.3 < wave.abs().max() <= 1.0
        assert wave[:400].abs().max() == 0  # 0.05 s centred in 0.1 s


def test_folder_group_regex_keeps_groups_together(tmp_path, make_wav):
    root = tmp_path / "kws"
    for cls in ("a", "b"):
        for spk in range(12):
            for k in range(3):
                make_wav(root / cls / f"spk{spk}_nohash_{k}.wav", seconds=0.02)
    splits = build_splits(
        "folder", root, group_regex=r"^(.+?)_nohash_", valid_fraction=0.3, test_fraction=0.3
    )
    owner = {}
    for split, ds in splits.items():
        for p in ds.paths:
            spk = p.name.split("_")[0]
            assert owner.setdefault(spk, split) == split
    assert len(set(owner.values())) >= 2


def test_folder_sample_rate_enforced(tmp_path, make_wav):
    root = write_folder(make_wav, tmp_path / "sounds", classes=("bird", "car"), per_class=3)
    odd = make_wav(root / "car" / "zz_odd.wav", sr=8000, seconds=0.05)
    ds = build_dataset("folder", root, "train", **ALL_TRAIN)
    assert ds.info.sample_rate == 16000
    with pytest.raises(AudioError, match=r"zz_odd.wav.*sample rate 8000 Hz, expected 16000 Hz"):
        ds[ds.paths.index(odd)]
    assert dataset_info("folder", root, sample_rate=8000).sample_rate == 8000
    with pytest.raises(ValueError, match="sample_rate"):
        dataset_info("folder", root, sample_rate=0)
    with pytest.raises(ValueError, match="test_fraction"):
        dataset_info("folder", root, valid_fraction=0.5, test_fraction=0.5)


def test_folder_multichannel_is_averaged(tmp_path):
    path = tmp_path / "st" / "cls" / "stereo.wav"
    path.parent.mkdir(parents=True)
    tone = np.sin(2 * np.pi * 440 * np.arange(800) / 16000)
    data = np.stack([0.5 * tone + 0.3, 0.1 * tone - 0.1], axis=1).astype(np.float32)
    sf.write(str(path), data, 16000, subtype="FLOAT")
    ds = build_dataset("folder", tmp_path / "st", "train", clip_seconds=0.05, **ALL_TRAIN)
    wave, _ = ds[0]
    mono = data.mean(axis=1)
    assert torch.allclose(wave, torch.from_numpy(mono - mono.mean()), atol=1e-6)


def test_folder_split_subfolders(tmp_path, make_wav):
    root = tmp_path / "pre"
    for split, n in (("train", 4), ("val", 2), ("test", 3)):
        for cls in ("cat", "dog"):
            for k in range(n):
                make_wav(root / split / cls / f"{k}.wav", seconds=0.02)
    make_wav(root / "test" / "owl" / "0.wav", seconds=0.02)
    info = dataset_info("folder", root)
    assert info.labels == ("cat", "dog", "owl") and info.has_valid
    splits = build_splits("folder", root, valid_fraction=0.5)  # fractions unused here
    assert [len(splits[s]) for s in SPLITS] == [8, 4, 7]
    assert all(p.parts[-3] == {"valid": "val"}.get(s, s) for s in SPLITS for p in splits[s].paths)
    assert splits["test"].class_counts().tolist() == [3, 3, 1]


def test_folder_split_subfolders_without_valid(tmp_path, make_wav):
    root = tmp_path / "pre"
    for cls in ("cat", "dog"):
        for k in range(20):
            make_wav(root / "train" / cls / f"{k}.wav", seconds=0.02)
        make_wav(root / "test" / cls / "0.wav", seconds=0.02)
    assert not dataset_info("folder", root).has_valid
    splits = build_splits("folder", root, valid_fraction=0.25)
    assert len(splits["test"]) == 2
    assert len(splits["train"]) + len(splits["valid"]) == 40 and len(splits["valid"]) > 0
    assert_disjoint(splits)


def test_folder_empty_inputs(tmp_path, make_wav):
    root = write_folder(make_wav, tmp_path / "sounds", classes=("bird",), per_class=2)
    (root / "quiet").mkdir()
    (root / "quiet" / "readme.txt").write_text("no audio here")
    with pytest.raises(ValueError, match="quiet"):
        dataset_info("folder", root)
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(ValueError, match="bare"):
        build_dataset("folder", bare, "train")


# -- malformed files, for every loader -----------------------------------------------


def _gsc_like(tmp_path, name, make_wav, make_gsc_tree):
    manifest = {"sample_rate": 16000, "clip_seconds": 1.0} if name == "synth" else None
    root = make_gsc_tree(tmp_path / name, manifest=manifest)
    return root, {}, root / "yes", "zz{}_nohash_0.wav", 16000


def _fsdd(tmp_path, name, make_wav, make_gsc_tree):
    root = write_fsdd(make_wav, tmp_path / "fsdd", speakers=("alice",), indices=range(5, 8))
    return root, {"valid_indices": ()}, root, "9_zz{}_20.wav", 8000


def _folder(tmp_path, name, make_wav, make_gsc_tree):
    root = write_folder(make_wav, tmp_path / "sounds", classes=("bird", "car"), per_class=4)
    opts = {"valid_fraction": 0.0, "test_fraction": 0.0, "sample_rate": 16000}
    return root, opts, root / "car", "zz{}.wav", 16000


BUILDERS = {"gsc": _gsc_like, "synth": _gsc_like, "fsdd": _fsdd, "folder": _folder}


def _add_bad_files(make_wav, folder: Path, pattern: str, sr: int):
    corrupt = folder / pattern.format("corrupt")
    corrupt.write_bytes(np.random.default_rng(1).bytes(300))
    empty = folder / pattern.format("empty")
    sf.write(str(empty), np.zeros(0, dtype=np.float32), sr, subtype="PCM_16")
    wrong = make_wav(folder / pattern.format("wrongrate"), sr=sr * 2, seconds=0.05)
    return {corrupt: "cannot read audio", empty: "empty audio", wrong: f"expected {sr} Hz"}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_malformed_files_raise_naming_the_file(tmp_path, name, make_wav, make_gsc_tree):
    root, opts, folder, pattern, sr = BUILDERS[name](tmp_path, name, make_wav, make_gsc_tree)
    good = len(build_dataset(name, root, "train", **opts))
    bad = _add_bad_files(make_wav, folder, pattern, sr)
    ds = build_dataset(name, root, "train", **opts)
    assert len(ds) == good + 3
    for path, reason in bad.items():
        with pytest.raises(AudioError, match=reason) as err:
            ds[ds.paths.index(path)]
        assert str(path) in str(err.value)
    problems = dict(ds.validate())
    assert set(problems) == set(bad)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_on_error_skip_drops_and_counts(tmp_path, name, caplog, make_wav, make_gsc_tree):
    root, opts, folder, pattern, sr = BUILDERS[name](tmp_path, name, make_wav, make_gsc_tree)
    good = len(build_dataset(name, root, "train", **opts))
    bad = _add_bad_files(make_wav, folder, pattern, sr)
    with caplog.at_level(logging.WARNING, logger="spikekws.data"):
        ds = build_dataset(name, root, "train", on_error="skip", **opts)
    assert len(ds) == good
    assert {p for p, _ in ds.skipped} == set(bad)
    assert f"skipped 3 of {good + 3}" in caplog.text
    for i in range(len(ds)):
        assert ds[i][0].shape == (ds.info.clip_samples,)


def test_on_error_skip_everything_bad_raises(tmp_path):
    root = tmp_path / "junk"
    (root / "cls").mkdir(parents=True)
    for k in range(3):
        (root / "cls" / f"{k}.wav").write_bytes(b"RIFF garbage")
    with pytest.raises(ValueError, match="all 3 audio files are unusable"):
        build_dataset("folder", root, "train", sample_rate=16000, test_fraction=0.0,
                      valid_fraction=0.0, on_error="skip")


# -- real data -----------------------------------------------------------------------------


@pytest.mark.data
def test_real_fsdd(fsdd_root):
    info = dataset_info("fsdd", fsdd_root)
    assert info.num_classes == 10 and info.labels == tuple("0123456789")
    assert info.sample_rate == 8000
    official = build_splits("fsdd", fsdd_root)
    assert len(assert_disjoint(official)) == 2000
    assert [len(official[s]) for s in SPLITS] == [1600, 200, 200]
    speaker = build_splits("fsdd", fsdd_root, split_mode="speaker", test_speakers="theo")
    assert len(assert_disjoint(speaker)) == 2000
    assert len(speaker["test"]) == 500
    assert {fsdd_speaker(p) for p in speaker["test"].paths} == {"theo"}
    assert "theo" not in {fsdd_speaker(p) for p in speaker["train"].paths}
    assert speaker["test"].class_counts().tolist() == [50] * 10
    assert not speaker["test"].validate()  # headers: all 8 kHz mono PCM
    wave, label = speaker["test"][0]
    assert wave.shape == (8000,) and wave.dtype == torch.float32 and 0 <= label < 10
    assert 0 < wave.abs().max() <= 1.0


def test_synth_manifest_args_layout(tmp_path, make_gsc_tree):
    manifest = {"args": {"sample_rate": 8000, "clip_seconds": 0.75}, "files": 15}
    root = make_gsc_tree(tmp_path / "synth", sr=8000, manifest=manifest)
    info = dataset_info("synth", root)
    assert (info.sample_rate, info.clip_seconds, info.clip_samples) == (8000, 0.75, 6000)


def test_synth_loads_generator_output(tmp_path):
    synth = pytest.importorskip("spikekws.data.synth")
    root = synth.generate(
        tmp_path / "gen", langs=("en",), words=("yes", "no"), speakers=3, sample_rate=8000,
        clip_seconds=0.5, workers=1, progress=False,
    )
    manifest = json.loads((root / "manifest.json").read_text())
    info = dataset_info("synth", root)
    assert (info.sample_rate, info.clip_samples) == (8000, 4000)
    assert info.labels == tuple(sorted(json.loads((root / "labels.json").read_text())))
    splits = build_splits("synth", root)
    assert {s: len(splits[s]) for s in SPLITS} == manifest["splits"]
    assert len(assert_disjoint(splits)) == manifest["files"]
    assert not splits["train"].validate(full=True)
    wave, label = splits["test"][0]
    assert wave.shape == (4000,) and info.labels[label] == splits["test"].items[0][0].parent.name


def test_dc_offset_removed_before_padding(tmp_path):
    """A recording with a DC offset comes out zero-mean, and its zero padding stays a
    clean continuation (no step at the edges of the recording)."""
    sr = 8000
    root = tmp_path / "fsdd"
    root.mkdir()
    t = np.arange(2000) / sr
    tone = 0.3 * np.sin(2 * np.pi * 300 * t) + 0.2  # 0.25 s with a +0.2 offset
    for spk in ("aa", "bb"):
        for d in range(10):
            sf.write(str(root / f"{d}_{spk}_0.wav"), tone.astype(np.float32), sr, subtype="FLOAT")
    ds = build_dataset("fsdd", root, "train", split_mode="speaker", test_speakers="bb",
                       valid_indices="1")
    wave, _ = ds[0]
    inner = wave[3000:5000]
    assert abs(float(inner.mean())) < 1e-4
    torch.testing.assert_close(inner, torch.from_numpy((tone - tone.mean()).astype(np.float32)))
    assert wave[:3000].abs().max() == 0 and wave[5000:].abs().max() == 0
