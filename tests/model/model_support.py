"""Model-test fixtures: the real Split-Digits stream on disk and a tiny, fast training config."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Split-Digits written once per session; returns the manifest path."""
    from model.data import write_split_digits

    return write_split_digits(tmp_path_factory.mktemp("split_digits"))


def tiny(**overrides):
    """A TrainConfig that trains a task in about a second on CPU."""
    from model.config import TrainConfig

    values = {"epochs": 1, "max_samples_per_task": 96, "finetune_epochs": 1, "log_every": 1}
    values.update(overrides)
    return TrainConfig(**values)
