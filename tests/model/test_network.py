"""The patch transformer: under 100k parameters, fixed size, shapes asserted."""

from __future__ import annotations

import pytest
import torch

from model.config import ModelConfig
from model.network import TinyTransformer


def test_size_and_shapes():
    model = TinyTransformer(ModelConfig())
    assert 10_000 < model.num_parameters() < 100_000
    flat = model(torch.rand(5, 64))
    image = model(torch.rand(5, 1, 8, 8))
    assert flat.shape == image.shape == (5, 10)


def test_capacity_is_fixed_by_config_not_by_tasks():
    cfg = ModelConfig()
    base = TinyTransformer(cfg).num_parameters()
    # the task budget sizes nothing: one head over every class, no per-task parameters
    assert TinyTransformer(ModelConfig(max_tasks=1)).num_parameters() == base
    assert TinyTransformer(ModelConfig(max_tasks=50)).num_parameters() == base
    # the class budget does, by exactly one head row (weights + bias) per class
    grown = TinyTransformer(ModelConfig(num_classes=cfg.num_classes + 10)).num_parameters()
    assert grown - base == 10 * (cfg.feature_dim + 1)


@pytest.mark.parametrize("kwargs", [{"patch_size": 3}, {"d_model": 30, "n_heads": 4}, {"num_classes": 0}])
def test_invalid_config_is_refused(kwargs):
    with pytest.raises(ValueError):
        ModelConfig(**kwargs)
