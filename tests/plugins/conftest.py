"""Fixtures for the plugin and the MLflow state reader: a real MLflow SQLite store seeded by the test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.plugins.mlflow_seed import seed_store

EXPERIMENT = "ct-test-experiment"
MODEL = "ct-test-model"


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    """An empty MLflow SQLite store in a tmp folder."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def seeded(tracking_uri: str) -> dict[str, Any]:
    """Three learned tasks; champion = version of task_1, challenger = version of task_2."""
    return {"tracking_uri": tracking_uri, **seed_store(tracking_uri, EXPERIMENT, MODEL)}
