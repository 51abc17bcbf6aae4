"""Typed run configuration: YAML -> dataclasses -> dotted command-line overrides."""
from .schema import (Config, DataConfig, FeatureConfig, ModelConfig, TrainConfig, config_to_dict,
                     config_from_dict, load_config, apply_overrides, save_config)

__all__ = ["Config", "DataConfig", "FeatureConfig", "ModelConfig", "TrainConfig",
           "config_to_dict", "config_from_dict", "load_config", "apply_overrides", "save_config"]
