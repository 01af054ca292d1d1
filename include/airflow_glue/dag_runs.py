"""DAG-run helpers: load one DAG file alone and read run states (shared by `make demo` and the DAG tests)."""

from __future__ import annotations

from typing import Any

from include.ops.settings import PROJECT_ROOT


class DagImportError(RuntimeError):
    """A DAG file failed to import; the message holds Airflow's import errors."""


def load_dag(dag_id: str, file: str | None = None) -> Any:
    """Parse ``dags/<file or dag_id>.py`` alone and return the DAG ``dag_id``; DagImportError if it fails."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / f"{file or dag_id}.py"))
    if bag.import_errors:
        raise DagImportError(f"DAG {dag_id} failed to import: {bag.import_errors}")
    return bag.get_dag(dag_id)


def state_name(obj: Any) -> str:
    """A DagRun/TaskInstance state (enum or str) as its plain string."""
    return str(getattr(obj, "value", obj))
