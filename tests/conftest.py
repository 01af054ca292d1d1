"""Test session setup: Airflow/MLflow environment is fixed here, before anything imports airflow."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.paths import ROOT

TEST_VAR = ROOT / "var" / "test"
os.environ["AIRFLOW_HOME"] = str(TEST_VAR / "airflow")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{TEST_VAR / 'airflow' / 'airflow.db'}"
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MPLBACKEND", "Agg")
# the project root is on sys.path through pyproject's pytest `pythonpath`; subprocesses get it here
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
(TEST_VAR / "airflow").mkdir(parents=True, exist_ok=True)

import pytest  # noqa: E402

# Shared fixtures live in *_support modules (importable, never a conftest import); registered here once.
pytest_plugins = [
    "tests.model.model_support",
    "tests.ops.backup.backup_support",
    "tests.ops.validation.validation_support",
    "tests.ops.maintenance.maintenance_support",
    "tests.integration.deploy.deploy_support",
    "tests.integration.browser.browser_support",
    "tests.airflow_glue.demo_support",
]


@pytest.fixture(scope="session", autouse=True)
def airflow_db() -> Path:
    """Migrate the test Airflow metadata DB once per session (autouse: any test may parse DAGs); AIRFLOW_HOME."""
    from airflow.utils import db

    db.resetdb(skip_init=False) if os.environ.get("CT_TEST_RESET_DB") else db.initdb()
    return Path(os.environ["AIRFLOW_HOME"])


@pytest.fixture
def ct_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every project location (data, state, MLflow store, backups, logs) into a fresh tmp folder."""
    var = tmp_path / "var"
    monkeypatch.setenv("CT_VAR_DIR", str(var))
    from include.ops.settings import VAR_DERIVED_ENV

    for name in VAR_DERIVED_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{var / 'mlflow' / 'mlflow.db'}")
    (var / "mlflow").mkdir(parents=True)
    return var
