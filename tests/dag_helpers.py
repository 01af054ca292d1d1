"""Helpers shared by the DAG tests: the DAG files, loading one DAG, run and task states, Asset events."""

from __future__ import annotations

from include.airflow_glue.dag_runs import load_dag, state_name

__all__ = ["DAG_FILES", "asset_events", "load_dag", "returned", "state_name", "task_states"]

from tests.paths import ROOT

DAG_FILES = sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))


def task_states(dagrun) -> dict[str, list[str]]:
    """State of every task instance of ``dagrun`` by task id (mapped tasks: one entry per map index)."""
    states: dict[str, list[str]] = {}
    for ti in dagrun.get_task_instances():
        states.setdefault(ti.task_id, []).append(state_name(ti.state))
    return states


def asset_events(asset_name: str, run_id: str) -> list[dict]:
    """Extras of the events of Asset ``asset_name`` emitted by DAG run ``run_id``, oldest first."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.name == asset_name, AssetEvent.source_run_id == run_id)
            .order_by(AssetEvent.id)
            .all()
        )
        return [dict(r.extra or {}) for r in rows]


def returned(dagrun, task_id: str):
    """The return value (XCom ``return_value``) of task ``task_id`` in ``dagrun``, as the UI's XCom tab shows it."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dagrun.dag_id, run_id=dagrun.run_id, task_id=task_id, key="return_value")
            .one()
        )
        return XComModel.deserialize_value(row)
