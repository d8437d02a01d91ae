"""Config data: round-trips and a clear ValueError for every invalid value tried (overrides: tests/test_gate.py)."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from plsearch.config.gate import resolve
from plsearch.config.schema import ConfigError, ModelConfig, RunConfig, from_dict, to_yaml


def test_model_config_round_trips_through_yaml():
    cfg = ModelConfig(ocs=0.75, steps=3, fsc=(True, False, True, True), block="residual")
    again = ModelConfig.from_dict(yaml.safe_load(to_yaml(cfg)))
    assert again == cfg


def test_run_config_round_trips_through_yaml():
    run = resolve(RunConfig(), ["model.ocs=0.5", "train.epochs=3", "data.image_size=64", "model.bsc=false"])
    assert RunConfig.from_dict(yaml.safe_load(to_yaml(run))) == run


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"steps": 0}, "steps"),
        ({"stages": 0}, "stages"),
        ({"ocs": 0.0}, "ocs"),
        ({"ocs": -1.0}, "ocs"),
        ({"depth": 1}, "depth"),
        ({"spatial_dims": 1}, "spatial_dims"),
        ({"num_classes": 0}, "num_classes"),
        ({"in_channels": 0}, "in_channels"),
        ({"plan": "wide"}, "plan"),
        ({"ipl": "loop"}, "ipl"),
        ({"block": "nope"}, "block"),
        ({"up": "bilinear"}, "up"),
        ({"fusion": "mean"}, "fusion"),
        ({"stages": 4, "depth": 4}, "stages"),
        ({"iterations": 3}, "iterations"),
        ({"ipl": "recurrent"}, "iterations"),
        ({"fsc": [True, False]}, "fsc"),
        ({"transition": "none"}, "bsc"),
        ({"stem": 0}, "bsc"),
        ({"integrate": True}, "integrate"),
    ],
)
def test_invalid_model_configs_raise_value_error_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        from_dict(ModelConfig, kwargs)


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"stepz": 2}, "valid keys"),
        ({"steps": "two"}, "steps"),
        ({"ocs": "big"}, "ocs"),
        ({"bsc": "yes"}, "bsc"),
        ({"steps": 2.5}, "steps"),
    ],
)
def test_bad_keys_and_types_are_named(data, needle):
    with pytest.raises(ConfigError, match=needle):
        ModelConfig.from_dict(data)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelConfig().steps = 3  # type: ignore[misc]
