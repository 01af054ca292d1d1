"""Fixtures for the operator CLI: a real MLflow store seeded in a tmp project, once per module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.plugins.mlflow_seed import seed_store


@pytest.fixture(scope="module")
def seeded_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Three learned tasks (champion task_1, challenger task_2, with PNGs) in the configured store; read-only."""
    from include.ops.settings import get_settings

    var = tmp_path_factory.mktemp("cli") / "var"
    (var / "mlflow").mkdir(parents=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CT_VAR_DIR", str(var))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{var / 'mlflow' / 'mlflow.db'}")
        for name in (
            "CT_MLFLOW_EXPERIMENT",
            "CT_REGISTERED_MODEL",
            "CT_REPORTS_DIR",
            "CT_RETENTION_THRESHOLD",
        ):
            mp.delenv(name, raising=False)
        s = get_settings()
        seeded = seed_store(s.mlflow_tracking_uri, s.mlflow_experiment, s.registered_model, with_png=True)
        yield {"settings": s, **seeded}
