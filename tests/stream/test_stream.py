"""Streaming: online front-end == offline frames, stateful model == offline trace,
detector logic, and detection of words in a continuous stream."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from spikekws.features import build_features
from spikekws.models import build_model
from spikekws.stream import Detector, KeywordStreamer, OnlineFrontend, StreamingSNN

from .conftest import WORDS, sentence


@pytest.mark.parametrize("name", ["logmel", "mfcc"])
@pytest.mark.parametrize("chunk", [160, 37, 1000])
@pytest.mark.parametrize("normalize", ["none", "pcen"])
def test_online_frontend_is_frame_exact(name, chunk, normalize):
    fe = build_features(name, sample_rate=16000, normalize=normalize, n_mels=24)
    x = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, 12345).astype(np.float32))
    off = fe(x)
    on = OnlineFrontend(fe, window=None)
    parts = [on.push(x[i:i + chunk]) for i in range(0, x.numel(), chunk)] + [on.flush()]
    got = torch.cat(parts)
    assert got.shape == off.shape
    torch.testing.assert_close(got, off, rtol=1e-5, atol=2e-5)


def test_sliding_normalisation_equals_utterance_normalisation_over_one_window():
    fe = build_features("logmel", sample_rate=16000, n_mels=16)  # normalize="utterance"
    x = torch.from_numpy(np.random.default_rng(1).normal(0, 0.1, 16000).astype(np.float32))
    off = fe(x)  # 101 frames
    on = OnlineFrontend(fe, window=off.shape[0])
    got = torch.cat([on.push(x[i:i + 160]) for i in range(0, 16000, 160)] + [on.flush()])
    torch.testing.assert_close(got[-1], off[-1], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(got[10], off[10], atol=1e-2)  # earlier frames: causal statistics


def test_lookahead_delays_frames_and_matches_offline_at_the_end():
    fe = build_features("logmel", sample_rate=16000, n_mels=16)
    x = torch.from_numpy(np.random.default_rng(2).normal(0, 0.1, 16000).astype(np.float32))
    off = fe(x)
    on = OnlineFrontend(fe, window=off.shape[0], lookahead=50)
    parts = [on.push(x[i:i + 160]) for i in range(0, 16000, 160)]
    # frames 0..98 are complete before the end (t*160 + 256 <= 16000); 50 of them held back
    assert sum(p.shape[0] for p in parts) == 99 - 50
    last = on.flush()
    assert last.shape[0] == 52
    # frame 49 left when frame 99 arrived; frames 50..100 with the whole clip's statistics
    torch.testing.assert_close(last[1:], off[-51:], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="lookahead"):
        OnlineFrontend(fe, window=10, lookahead=10)


def test_frontend_refuses_deltas():
    with pytest.raises(ValueError, match="deltas"):
        OnlineFrontend(build_features("logmel", deltas=1))


@pytest.mark.parametrize("neuron", ["lif", "rlif", "radlif"])
def test_stateful_model_matches_offline_trace(neuron):
    torch.manual_seed(0)
    model = build_model("snn", 8, 4, neuron=neuron, hidden_sizes=[12, 10]).eval()
    x = torch.randn(1, 60, 8) * 3
    want = model.trace(x)["readout"][:, 0]
    for fold in (True, False):
        sm = StreamingSNN(model, fold=fold)
        got = torch.cat([sm.run(x[0, :25]), sm.run(x[0, 25:])])  # state persists across calls
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        sm.reset()
        torch.testing.assert_close(sm.run(x[0, :25]), want[:25], rtol=1e-5, atol=1e-5)
    assert StreamingSNN(model)._folded is not None


def test_streaming_refuses_bidirectional():
    m = build_model("snn", 8, 4, neuron="lif", hidden_sizes=[6, 6], bidirectional=True)
    with pytest.raises(ValueError, match="bidirectional"):
        StreamingSNN(m)


def test_detector_segments_threshold_refractory():
    labels = ["_silence_", "yes", "no"]
    det = Detector(labels, frame_s=0.01, threshold=0.5, hangover_s=0.05, refractory_s=1.0,
                   min_segment_s=0.05)
    quiet, loud = 0.0, 5.0
    p_yes = torch.tensor([0.1, 0.8, 0.1])
    p_sil = torch.tensor([0.9, 0.05, 0.05])
    frames = ([(p_sil, quiet)] * 50 + [(p_yes, loud)] * 20 + [(p_sil, quiet)] * 30  # yes
              + [(p_yes, loud)] * 20 + [(p_sil, quiet)] * 100  # inside the refractory period
              + [(p_sil, loud)] * 20 + [(p_sil, quiet)] * 30  # only _silence_: never reported
              + [(p_yes, loud)] * 2 + [(p_sil, quiet)] * 30  # a click: too short
              + [(torch.tensor([0.1, 0.2, 0.7]), loud)] * 20 + [(p_sil, quiet)] * 30)
    out = det.run(torch.stack([p for p, _ in frames]), torch.tensor([e for _, e in frames]))
    assert [d.word for d in out] == ["yes", "no"]
    # the yes segment is frames 50..69 plus 5 hangover frames; decided at frame 76
    assert out[0].time_s == pytest.approx(0.76)
    assert out[0].score == pytest.approx(0.8 * 20 / 25 + 0.05 * 5 / 25)
    with pytest.raises(ValueError, match="threshold"):
        Detector(labels, threshold=0.0)


@pytest.mark.parametrize("quantile", [0.0, 0.1])
def test_noise_floor_quantile_ignores_a_few_very_quiet_frames(quantile):
    """Background at level 0 with a short dip to -6 (quieter than the room) between two
    words: with the minimum as floor the background after the dip counts as active (it is
    6 above the floor, margin 2.3), so the segment of the first word never closes; the
    10 % quantile keeps the floor at the background and the two words apart."""
    det = Detector(["a", "b"], frame_s=0.01, threshold=0.1, hangover_s=0.05, refractory_s=0.0,
                   floor_quantile=quantile, min_segment_s=0.0)
    energy = [0.0] * 100 + [8.0] * 30 + [-6.0] * 5 + [0.0] * 60 + [8.0] * 30 + [0.0] * 60
    post = torch.tensor([0.9, 0.1]).repeat(len(energy), 1)
    out = det.run(post, torch.tensor(energy))
    assert [d.time_s for d in out] == ([] if quantile == 0 else [1.36, 2.31])
    assert det.noise_floor() == (min(energy[-300:]) if quantile == 0 else 0.0)
    with pytest.raises(ValueError, match="floor_quantile"):
        Detector(["a"], floor_quantile=1.0)


def test_stream_detects_words_and_times(tone_run):
    assert tone_run.train_accuracy == 1.0
    words = ["low", "high", "mid", "mid", "low", "high", "low"]
    signal, truth = sentence(words, gap_s=0.7, seed=3)
    kws = KeywordStreamer.from_run(tone_run.path)
    dets = kws.process(signal, chunk=160)
    assert [d.word for d in dets] == words
    for d, (w, start, end) in zip(dets, truth):
        assert end < d.time_s <= end + 0.5, (d, start, end)
    st = kws.stats()
    assert st["frames"] == 1 + signal.size // 160
    assert st["audio_s"] == pytest.approx(signal.size / 16000)
    assert st["latency_ms_p95"] >= st["latency_ms_median"] > 0 and st["rtf"] > 0
    assert st["cpu_latency_ms_p95"] >= st["cpu_latency_ms_median"] > 0 and st["rtf_cpu"] > 0
    assert kws.onsets == len(words)  # one state reset per word onset
    # any chunking gives the same detections (state persists across pushes)
    kws.reset()
    assert [(d.word, d.time_s) for d in kws.process(signal, chunk=999)] == \
        [(d.word, d.time_s) for d in dets]
    assert set(w for w in WORDS) >= set(d.word for d in dets)
    # one state for the whole stream (no reset at onsets): same words on this easy stream
    kws = KeywordStreamer.from_run(tone_run.path, reset_on_onset=False)
    assert [d.word for d in kws.process(signal)] == words and kws.onsets == 0
