"""The ``mix`` dataset: a primary dataset plus relabelled extra training data."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from spikekws.data import build_dataset, dataset_info

synth = pytest.importorskip("spikekws.data.synth")

SPEAKERS = ("alice", "bob", "carol")


def make_fsdd(root: Path, digits=(0, 1, 2), per_speaker: int = 3) -> Path:
    rec = root / "recordings"
    rec.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for d in digits:
        for spk in SPEAKERS:
            for k in range(per_speaker):
                n = 3000 + 500 * k  # shorter than the 1 s clip: padded on load
                sf.write(str(rec / f"{d}_{spk}_{k}.wav"),
                         (0.1 * rng.standard_normal(n)).astype(np.float32), 8000,
                         subtype="PCM_16")
    return root


@pytest.fixture(scope="module")
def synth16k(tmp_path_factory) -> Path:
    # 16 kHz on purpose: the mix must resample it to the primary's 8 kHz.
    return synth.generate(tmp_path_factory.mktemp("mix") / "synth", words=("zero", "one", "yes"),
                          speakers=3, sample_rate=16000, clip_seconds=1.0, workers=1,
                          progress=False)


def mix_options(fsdd_root: Path, synth_root: Path, **extra):
    spec = {"name": "synth", "root": str(synth_root),
            "label_map": {"zero": "0", "one": "1"}, "splits": ["train", "valid", "test"]}
    spec.update(extra)
    return {"primary": {"name": "fsdd", "root": str(fsdd_root),
                        "options": {"split_mode": "speaker", "test_speakers": "carol",
                                    "valid_indices": "0"}},
            "extra": [spec]}


def test_mix_train_gets_relabelled_extra_items(tmp_path, synth16k):
    fsdd = make_fsdd(tmp_path / "fsdd")
    opts = mix_options(fsdd, synth16k)
    info = dataset_info("mix", None, **opts)
    assert info == dataset_info("fsdd", fsdd, split_mode="speaker", test_speakers="carol")
    primary = {s: build_dataset("fsdd", fsdd, s, split_mode="speaker", test_speakers="carol",
                                valid_indices="0") for s in ("train", "valid", "test")}
    mixed = {s: build_dataset("mix", None, s, **opts) for s in ("train", "valid", "test")}

    # valid/test: the primary's only
    for s in ("valid", "test"):
        assert mixed[s].items == primary[s].items
    # train: primary + every synth "zero"/"one" clip ("yes" is unmapped and dropped)
    extra = [(p, y) for p, y in mixed["train"].items if synth16k in p.parents]
    assert len(mixed["train"]) == len(primary["train"]) + len(extra)
    assert len(extra) == 2 * 3  # 2 mapped words x 3 speakers, all splits
    assert {p.parent.name for p, _ in extra} == {"zero", "one"}
    for p, y in extra:
        assert info.labels[y] == {"zero": "0", "one": "1"}[p.parent.name]

    # 16 kHz synth audio comes back resampled to 8 kHz at the primary clip length
    i = mixed["train"].items.index(extra[0])
    wave, label = mixed["train"][i]
    assert wave.shape == (info.clip_samples,) == (8000,)
    assert label == extra[0][1]
    assert wave.abs().max() > 0
    wave, _ = mixed["train"][0]  # a short FSDD clip, padded
    assert wave.shape == (8000,)


def test_mix_extra_only_listed_splits(tmp_path, synth16k):
    fsdd = make_fsdd(tmp_path / "fsdd")
    only_train = build_dataset("mix", None, "train", **mix_options(fsdd, synth16k, splits=["train"]))
    everything = build_dataset("mix", None, "train", **mix_options(fsdd, synth16k))
    assert len(only_train) < len(everything)


@pytest.mark.parametrize("label_map", [{"zero": "0", "nope": "1"}, {"zero": "42"}])
def test_mix_bad_label_map_raises(tmp_path, synth16k, label_map):
    fsdd = make_fsdd(tmp_path / "fsdd")
    opts = mix_options(fsdd, synth16k, label_map=label_map)
    with pytest.raises(ValueError, match="label_map"):
        build_dataset("mix", None, "train", **opts)
    with pytest.raises(ValueError, match="label_map"):
        dataset_info("mix", None, **opts)
