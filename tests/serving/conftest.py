"""Serving fixtures: two real checkpoints learned once per session, an app per test on a fresh var/ folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving.serving_support import TOKEN, install_state, learned_once, serving_client


@pytest.fixture(scope="session")
def learned_state() -> Path:
    """A state folder after learning task_0 and task_1 of Split-Digits (shared by the whole session)."""
    return learned_once()


@pytest.fixture
def serving_env(ct_env: Path, learned_state: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ct_env plus a private copy of the learned state and the task stream (tests may corrupt them)."""
    install_state(learned_state, ct_env)
    monkeypatch.delenv("CT_API_TOKEN", raising=False)
    monkeypatch.delenv("PUSHGATEWAY_URL", raising=False)
    return ct_env


@pytest.fixture
def client(serving_env: Path) -> Iterator:
    """App with a token, health thresholds at 100%."""
    with serving_client() as c:
        yield c


@pytest.fixture
def auth() -> dict[str, str]:
    """Authorization header with the right token."""
    return {"Authorization": f"Bearer {TOKEN}"}
