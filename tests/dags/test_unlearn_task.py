"""The unlearn_task DAG: a typed task_id Param with the shared pattern; the task calls the library, who asked
is recorded, and a refusal fails without retries."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.dag_helpers import load_dag


def test_task_id_param_is_typed_with_the_shared_pattern():
    from model.config import TASK_ID_PATTERN

    dag = load_dag("unlearn_task")
    schema = dag.params.get_param("task_id").schema
    assert schema["type"] == "string" and schema["pattern"] == TASK_ID_PATTERN
    assert [t.task_id for t in dag.tasks] == ["unlearn"]


def test_unlearn_calls_the_library_with_who_asked(monkeypatch):
    from include.ops import unlearning

    calls = []

    class Done:
        def to_dict(self):
            return {"task_id": "task_0"}

    monkeypatch.setattr(
        unlearning, "unlearn_task", lambda settings, task_id, who: calls.append((task_id, who)) or Done()
    )
    run = load_dag("unlearn_task").get_task("unlearn").python_callable
    out = run(params={"task_id": "task_0"}, dag_run=SimpleNamespace(triggering_user_name="dpo", run_id="r"))
    assert out == {"task_id": "task_0"} and calls == [("task_0", "dpo")]


def test_a_task_never_learned_is_refused_without_retry(ct_env: Path, airflow_db):
    from airflow.sdk.exceptions import AirflowFailException

    run = load_dag("unlearn_task").get_task("unlearn").python_callable
    with pytest.raises(AirflowFailException, match="refused: .*not recorded as learned"):
        run(params={"task_id": "task_0"}, dag_run=None)
