"""The demo's state, built once per test session: `make demo`'s command with few epochs in a checkout-shaped
folder whose ``var/`` is its own, so the README's post-demo commands run there verbatim (relative paths too)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.paths import ROOT

QUICK_DEMO = {"epochs": 1, "max_samples_per_task": 64, "accuracy_floor": 0.0, "retention_threshold": 0.0}
NOT_LINKED = {"var", ".git", "test-artifacts"}
DEMO_LINK_ENV = {
    "CT_MLFLOW_UI_URL": "http://127.0.0.1:5123",
    "AIRFLOW_UI_PORT": "18123",
}  # the checkout's own state stays out of the demo's folder


@dataclass(frozen=True)
class DemoState:
    """A finished demo: its checkout-shaped folder, its state, the environment it ran in, its output."""

    checkout: Path  # every project file linked from the real checkout; ``var/`` is the demo's own
    env: dict[str, str]  # the demo's environment: CT_VAR_DIR is ``checkout/var``, the session's Airflow DB
    result: subprocess.CompletedProcess
    started: datetime

    @property
    def var(self) -> Path:
        """The demo's state folder (``var/`` of its checkout)."""
        return self.checkout / "var"


def demo_env(var: Path) -> dict[str, str]:
    """The test session's environment with every project location derived from ``var`` (as in a checkout)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CT_") and k != "MLFLOW_TRACKING_URI"}
    env.update(CT_VAR_DIR=str(var), CT_GX_DATA_DOCS="0")
    return env


@pytest.fixture(scope="session")
def demo_state(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path) -> DemoState:
    """`make demo`'s command (``python -m include.airflow_glue.demo``) with :data:`QUICK_DEMO`, run once."""
    checkout = tmp_path_factory.mktemp("demo-checkout")
    for entry in ROOT.iterdir():
        if entry.name not in NOT_LINKED:
            (checkout / entry.name).symlink_to(entry)
    env = demo_env(checkout / "var")
    started = datetime.now(UTC)
    argv = [sys.executable, "-m", "include.airflow_glue.demo", "--conf", json.dumps(QUICK_DEMO)]
    argv += [
        "--timings",
        str(checkout / "timings.json"),
    ]  # per-step seconds (tests/airflow_glue/test_demo.py)
    links = {**env, **DEMO_LINK_ENV}  # only the demo run: its closing links must follow these settings
    result = subprocess.run(argv, cwd=checkout, env=links, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return DemoState(checkout=checkout, env=env, result=result, started=started)
