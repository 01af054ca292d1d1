"""Fixtures for the plugin and the MLflow state reader: a real MLflow SQLite store seeded by the test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.plugins.mlflow_seed import EXPERIMENT, MODEL, seed_store


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    """An empty MLflow SQLite store in a tmp folder."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three learned tasks, seeded once per module and only read by tests; champion task_1, challenger task_2."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('seeded') / 'mlflow.db'}"
    return {"tracking_uri": uri, **seed_store(uri, EXPERIMENT, MODEL)}
