"""spikify: audio dataset -> SHD-format spike files -> shd loader -> training."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

h5py = pytest.importorskip("h5py")

from spikekws.cli import main  # noqa: E402
from spikekws.data import build_dataset, dataset_info  # noqa: E402
from spikekws.data.spikes import read_spike_h5  # noqa: E402
from spikekws.data.spikify import spikes_to_events, spikify  # noqa: E402
from spikekws.features import build_encoder, build_features  # noqa: E402

FEATS = {"n_mels": 16}


@pytest.fixture
def audio_root(tmp_path, make_gsc_tree):
    return make_gsc_tree(tmp_path / "audio", words=("no", "up", "yes"), seconds=0.3)


@pytest.fixture
def restore_logging():
    logger = logging.getLogger("spikekws")
    state = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers, logger.propagate = state[0], state[2]
    logger.setLevel(state[1])


def test_spikes_to_events():
    s = torch.zeros(4, 3)
    s[0, 2] = s[2, 0] = s[2, 1] = 1
    t, u = spikes_to_events(s, 0.01)
    assert t.dtype == np.float32 and u.dtype == np.uint16
    assert np.allclose(t, [0.005, 0.025, 0.025]) and u.tolist() == [2, 0, 1]


def test_spikify_writes_shd_format_and_reads_back(audio_root, tmp_path):
    dst = tmp_path / "spk"
    summary = spikify("synth", audio_root, dst, encoder="rate",
                      encoder_options={"mode": "deterministic", "repeat": 2},
                      feature_options=FEATS)
    assert summary["dt"] == pytest.approx(0.005) and summary["num_channels"] == 16
    assert summary["num_steps"] == 101 * 2
    assert {s: v["samples"] for s, v in summary["splits"].items()} == {"train": 9, "valid": 3, "test": 3}
    assert json.loads((dst / "spikify.json").read_text())["encoder"]["mode"] == "deterministic"

    with h5py.File(dst / "train.h5", "r") as f:  # same names and dtypes as shd_train.h5
        assert h5py.check_vlen_dtype(f["spikes/times"].dtype) == np.float32
        assert h5py.check_vlen_dtype(f["spikes/units"].dtype) == np.uint16
        assert f["labels"].dtype == np.uint16
        assert [k.decode() for k in f["extra/keys"][()]] == ["no", "up", "yes"]

    # the written events are exactly the encoder's spikes
    src = build_dataset("synth", audio_root, "test")
    front = build_features("logmel", sample_rate=16000, **FEATS)
    enc = build_encoder("rate", mode="deterministic", repeat=2)
    waves = torch.stack([src[i][0] for i in range(len(src))])
    spikes = enc(front(waves))
    raw = read_spike_h5(dst / "test.h5")
    assert raw["labels"].tolist() == src.labels_tensor().tolist()
    for i in range(len(src)):
        t, u = spikes_to_events(spikes[i], summary["dt"])
        assert np.array_equal(raw["times"][i], t) and np.array_equal(raw["units"][i], u)

    # and the shd loader bins them back into the same tensor
    info = dataset_info("shd", dst)
    assert (info.kind, info.num_steps, info.num_channels, info.labels) == (
        "spikes", 202, 16, ("no", "up", "yes"))
    spk = build_dataset("shd", dst, "test")
    for i in range(len(spk)):
        x, y = spk[i]
        assert torch.equal(x, spikes[i]) and y == src[i][1]


def test_spikify_errors(audio_root, tmp_path):
    dst = tmp_path / "spk"
    spikify("synth", audio_root, dst, encoder="latency", encoder_options={"window": 2},
            feature_options=FEATS, splits=("test",))
    assert sorted(p.name for p in dst.glob("*.h5")) == ["test.h5"]
    with pytest.raises(ValueError, match="already holds test.h5"):
        spikify("synth", audio_root, dst, feature_options=FEATS)
    with pytest.raises(ValueError, match="augment option is not allowed"):
        spikify("synth", audio_root, tmp_path / "x", options={"augment": {"shift_ms": 5}})
    full = tmp_path / "full"
    spikify("synth", audio_root, full, feature_options=FEATS)
    with pytest.raises(ValueError, match="needs an audio dataset"):
        spikify("shd", full, tmp_path / "again")
    with pytest.raises(KeyError, match="unknown encoder"):
        spikify("synth", audio_root, tmp_path / "y", encoder="burst")


def test_cli_spikify_then_train_and_evaluate(audio_root, tmp_path, capsys, restore_logging):
    from spikekws.config import load_config
    from spikekws.train.runner import evaluate_run, train_run

    dst = tmp_path / "spk"
    rc = main(["-q", "spikify", "--dataset", "synth", "--root", str(audio_root), "--to", str(dst),
               "--encoder", "delta", "--encoder-option", "threshold=0.5",
               "--feature-option", "n_mels=8", "--no-progress"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "data.name=shd" in out.out and (dst / "valid.h5").is_file()
    assert dataset_info("shd", dst).num_channels == 16  # up + down channels
    rc = main(["-q", "spikify", "--root", str(audio_root), "--to", str(tmp_path / "z")])
    assert rc == 2 and "source dataset name" in capsys.readouterr().err

    cfg = load_config(None, ["data.name=shd", f"data.root={dst}", "model.hidden_sizes=[8]",
                             "train.epochs=1", "train.batch_size=4", "train.progress=false",
                             "train.device=cpu"])
    summary = train_run(cfg, tmp_path / "run")
    assert summary["best"]["epoch"] == 1
    rep = evaluate_run(tmp_path / "run", split="test", write=False)
    assert rep["num_samples"] == 3 and 0.0 <= rep["accuracy"] <= 1.0
