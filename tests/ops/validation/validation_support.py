"""Fixtures for data validation: a Split-Digits stream generated once, a landing zone per test, bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def split_digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Split-Digits stream (5 task CSVs + manifest), written once; returns the manifest path."""
    from model.data import write_split_digits

    return write_split_digits(tmp_path_factory.mktemp("split_digits"))


@pytest.fixture
def val_env(ct_env: Path, split_digits: Path, monkeypatch: pytest.MonkeyPatch):
    """Project paths in tmp, data docs off (tests that want them turn them on), the manifest landed."""
    from include.ops.settings import get_settings

    monkeypatch.setenv("CT_GX_DATA_DOCS_DIR", str(ct_env / "data_docs"))
    monkeypatch.setenv("CT_GX_DATA_DOCS", "0")
    monkeypatch.delenv("PUSHGATEWAY_URL", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_S3", raising=False)
    monkeypatch.delenv("CT_VALIDATION_MAX_BYTES", raising=False)
    settings = get_settings()
    settings.landing_dir.mkdir(parents=True)
    shutil.copy(split_digits, settings.landing_dir / "manifest.json")
    return settings
