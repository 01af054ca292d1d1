"""DAG-test fixtures: every file of dags/ parsed once per session, shared by the integrity and docs suites."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def dag_bag() -> Callable[[Path], Any]:
    """``dag_bag(path)``: the DagBag of one DAG file (safe mode, as the DAG processor), parsed on first use."""
    from airflow.dag_processing.dagbag import DagBag

    @functools.cache
    def parse(path: Path) -> Any:
        return DagBag(dag_folder=str(path))

    return parse
