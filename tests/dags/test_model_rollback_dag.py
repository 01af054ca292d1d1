"""model_rollback runs end to end with dag.test(): champion moves back, the history records the DAG run."""

from __future__ import annotations

from pathlib import Path

from tests.dag_helpers import load_dag
from tests.ops.alias_history_support import gate, registry


def test_the_dag_rolls_champion_back_and_records_its_run(ct_env: Path, airflow_db, monkeypatch):
    from include.airflow_glue.dag_runs import state_name
    from include.ops import alias_history

    monkeypatch.setenv("CT_APP_URL", "http://127.0.0.1:9")  # no app: the reload task reports the poll
    settings, mlc, results = registry(ct_env, n=2)
    for r in results:
        gate(settings, r)
    dagrun = load_dag("model_rollback").test(run_conf={"reason": "bad answers"})
    assert state_name(dagrun.state) == "success"
    assert str(mlc.get_model_version_by_alias(settings.registered_model, "champion").version) == "1"
    last = alias_history.read_history(settings)[-1]
    assert (last.kind, last.to_version, last.dag_id, last.dag_run_id) == (
        "rollback", "1", "model_rollback", dagrun.run_id
    )  # fmt: skip
    assert "bad answers" in last.reason


def test_a_refused_rollback_fails_without_retry_and_changes_nothing(ct_env: Path, airflow_db):
    from include.airflow_glue.dag_runs import state_name

    settings, mlc, results = registry(ct_env, n=2)
    gate(settings, results[0])
    gate(settings, results[1], acc=0.1)  # v2 never passed the gate
    dagrun = load_dag("model_rollback").test(run_conf={"version": 2})
    assert state_name(dagrun.state) == "failed"
    ti = dagrun.get_task_instance("rollback")
    assert state_name(ti.state) == "failed" and ti.try_number == 1
    assert str(mlc.get_model_version_by_alias(settings.registered_model, "champion").version) == "1"
