"""Airflow glue of the ``unlearn_task`` DAG: who asked, from the DAG run (the library takes a plain string)."""

from __future__ import annotations

from typing import Any


def requested_by(dag_run: Any) -> str:
    """The user who triggered ``dag_run`` (Airflow 3 records it), else its run type and id."""
    user = getattr(dag_run, "triggering_user_name", None)
    if user:
        return str(user)
    if dag_run is None:
        return "unknown"
    return f"{getattr(dag_run, 'run_type', 'run')} {getattr(dag_run, 'run_id', '')}".strip()
