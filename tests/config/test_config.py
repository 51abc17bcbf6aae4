"""Run configuration: defaults, YAML files, dotted overrides and error messages."""
from __future__ import annotations

from pathlib import Path

import pytest

from spikekws.config import (Config, apply_overrides, config_from_dict, config_to_dict,
                             load_config, save_config)

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_defaults():
    cfg = load_config()
    assert cfg == Config()
    assert cfg.data.name == "synth" and cfg.data.options == {}
    assert cfg.features.name == "logmel"
    assert cfg.model.name == "snn" and cfg.model.neuron == "radlif"
    assert cfg.model.hidden_sizes == [128, 128]
    assert cfg.train.lr == 1e-3 and cfg.train.batch_size == 64
    assert cfg.train.grad_clip is None
    # Mutable defaults are not shared between instances.
    a, b = Config(), Config()
    a.model.hidden_sizes.append(5)
    a.model.options["x"] = 1
    assert b.model.hidden_sizes == [128, 128] and b.model.options == {}


def test_yaml_load(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "model:\n"
        "  neuron: lif\n"
        "  hidden_sizes: [64, 32]\n"
        "  options: {tau_mem: [0.02, 0.1]}\n"
        "train:\n"
        "  lr: 0.002\n"
        "  epochs: 5\n"
        "  grad_clip: 1\n"
        "  progress: false\n"
    )
    cfg = load_config(path)
    assert cfg.model.neuron == "lif"
    assert cfg.model.hidden_sizes == [64, 32]
    assert cfg.model.options == {"tau_mem": [0.02, 0.1]}
    assert cfg.train.lr == 0.002 and cfg.train.epochs == 5
    assert cfg.train.grad_clip == 1.0 and isinstance(cfg.train.grad_clip, float)
    assert cfg.train.progress is False
    # Untouched keys keep their defaults.
    assert cfg.train.batch_size == 64 and cfg.data.name == "synth"


def test_empty_yaml_is_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing\n")
    assert load_config(path) == Config()


@pytest.mark.skipif(not (REPO_ROOT / "configs" / "demo.yaml").is_file(), reason="no demo config")
def test_shipped_demo_config_loads():
    cfg = load_config(REPO_ROOT / "configs" / "demo.yaml")
    assert isinstance(cfg, Config)


def test_dotted_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  lr: 0.1\n  epochs: 3\n")
    cfg = load_config(path, [
        "train.epochs=12",
        "train.lr=3e-3",
        "train.weight_decay=1e-5",
        "train.scheduler_factor=0.5",
        "train.progress=false",
        "train.cache_features=True",
        "train.grad_clip=null",
        "model.hidden_sizes=[256, 128, 64]",
        "model.options.tau_mem=[0.02,0.1]",
        "model.options.learn_tau=false",
        "model.bidirectional=true",
        "data.root=/tmp/some where",
        "data.options.n=7",
    ])
    assert cfg.train.epochs == 12 and isinstance(cfg.train.epochs, int)
    assert cfg.train.lr == pytest.approx(3e-3) and isinstance(cfg.train.lr, float)
    assert cfg.train.weight_decay == pytest.approx(1e-5)
    assert cfg.train.scheduler_factor == 0.5
    assert cfg.train.progress is False and cfg.train.cache_features is True
    assert cfg.train.grad_clip is None
    assert cfg.model.hidden_sizes == [256, 128, 64]
    assert cfg.model.options == {"tau_mem": [0.02, 0.1], "learn_tau": False}
    assert cfg.model.bidirectional is True
    assert cfg.data.root == "/tmp/some where"
    assert cfg.data.options == {"n": 7}


def test_overrides_apply_in_order_and_int_becomes_float():
    cfg = load_config(None, ["train.lr=1", "train.lr=2", "train.grad_clip=5"])
    assert cfg.train.lr == 2.0 and isinstance(cfg.train.lr, float)
    assert cfg.train.grad_clip == 5.0 and isinstance(cfg.train.grad_clip, float)


def test_apply_overrides_on_dict():
    data = {"model": {"options": {"a": 1}}}
    apply_overrides(data, ["model.options.b=2", "model.options.a=x"])
    assert data == {"model": {"options": {"a": "x", "b": 2}}}


@pytest.mark.parametrize("bad", ["train.lr", "=3", "train.lr=[1,"])
def test_malformed_override_raises(bad):
    with pytest.raises(ValueError):
        load_config(None, [bad])


def test_unknown_key_suggests_close_one():
    with pytest.raises(ValueError) as info:
        load_config(None, ["train.lrr=0.1"])
    msg = str(info.value)
    assert "train.lrr" in msg
    assert "did you mean 'train.lr'" in msg


def test_unknown_section_and_yaml_key(tmp_path):
    with pytest.raises(ValueError, match="'modle'.*did you mean 'model'"):
        load_config(None, ["modle.neuron=lif"])
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  hiden_sizes: [4]\n")
    with pytest.raises(ValueError, match="model.hiden_sizes.*did you mean 'model.hidden_sizes'"):
        load_config(path)


@pytest.mark.parametrize("override,key", [
    ("train.epochs=abc", "train.epochs"),
    ("train.epochs=2.5", "train.epochs"),
    ("train.epochs=true", "train.epochs"),
    ("train.lr=fast", "train.lr"),
    ("train.lr=true", "train.lr"),
    ("train.progress=3", "train.progress"),
    ("model.hidden_sizes=128", "model.hidden_sizes"),
    ("model.hidden_sizes=[128, x]", "model.hidden_sizes[1]"),
    ("model.neuron=5", "model.neuron"),
    ("model.options=5", "model.options"),
    ("train.grad_clip=abc", "train.grad_clip"),
])
def test_wrong_type_raises_type_error_naming_key(override, key):
    with pytest.raises(TypeError) as info:
        load_config(None, [override])
    assert repr(key) in str(info.value)


def test_section_that_is_not_a_mapping():
    with pytest.raises(TypeError, match="train"):
        config_from_dict({"train": 5})


def test_malformed_yaml_names_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("model:\n  neuron: [lif\n  hidden: {\n")
    with pytest.raises(ValueError) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_yaml_top_level_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="list.yaml"):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml")


def test_save_and_reload_roundtrip(tmp_path):
    cfg = load_config(None, ["train.lr=3e-3", "model.options.tau_mem=[0.02,0.1]",
                             "model.hidden_sizes=[8]"])
    path = tmp_path / "out" / "config.yaml"
    save_config(cfg, path)
    assert load_config(path) == cfg
    assert config_to_dict(load_config(path)) == config_to_dict(cfg)
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.yaml"]
