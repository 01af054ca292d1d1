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
    small = TinyTransformer(ModelConfig(num_classes=10, max_tasks=5)).num_parameters()
    assert TinyTransformer(ModelConfig(num_classes=10, max_tasks=5)).num_parameters() == small


@pytest.mark.parametrize("kwargs", [{"patch_size": 3}, {"d_model": 30, "n_heads": 4}, {"num_classes": 0}])
def test_invalid_config_is_refused(kwargs):
    with pytest.raises(ValueError):
        ModelConfig(**kwargs)
