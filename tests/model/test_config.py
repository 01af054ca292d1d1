"""Configs: one override path (from_dict), unknown keys refused by name, invalid values refused."""

from __future__ import annotations

import json

import pytest

from model.config import ModelConfig, TrainConfig


def test_round_trip_through_json():
    cfg = TrainConfig(strategy="lwf", scenario="task_incremental", lr=1e-3, inject_nan_at_step=3)
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert ModelConfig.from_dict(ModelConfig(d_model=32).to_dict()) == ModelConfig(d_model=32)


def test_none_keeps_default_and_ints_become_floats():
    cfg = TrainConfig.from_dict({"lr": None, "weight_decay": 0, "epochs": 3})
    assert cfg.lr == TrainConfig().lr
    assert cfg.weight_decay == 0.0 and isinstance(cfg.weight_decay, float)
    assert cfg.epochs == 3


def test_unknown_key_is_refused_by_name():
    with pytest.raises(ValueError, match="'learning_rate'"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ValueError, match="'width'"):
        ModelConfig.from_dict({"width": 3})


@pytest.mark.parametrize(
    "values",
    [
        {"scenario": "domain_incremental"},
        {"epochs": 0},
        {"grad_accum_steps": 0},
        {"replay_budget": -1},
        {"replay_selection": "random"},
        {"max_samples_per_task": 0},
    ],
)
def test_invalid_train_values_are_refused(values: dict):
    with pytest.raises(ValueError):
        TrainConfig.from_dict(values)


def test_capacity_properties():
    cfg = ModelConfig()
    assert cfg.num_features == 64 and cfg.num_tokens == 16
    assert cfg.feature_dim == 16 * cfg.d_model, "flatten pooling keeps every token"
    assert ModelConfig(pool="cls").feature_dim == cfg.d_model
