"""Refusals never burn a retry: each DAG's refusable task fails with AirflowFailException naming the reason.

The task callables are called directly (no scheduler): what matters is the exception type Airflow sees."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.dag_helpers import load_dag


def _callable(dag_id: str, task_id: str):
    return load_dag(dag_id).get_task(task_id).python_callable


def test_glue_turns_refusals_into_failures_without_retry_and_passes_other_errors():
    from airflow.sdk.exceptions import AirflowFailException

    from include.airflow_glue.refusals import fail_on_refusal
    from include.ops.errors import Refusal
    from include.ops.lock import MaintenanceLocked

    for exc in (Refusal("task x is\nalready learned"), MaintenanceLocked("held by 'dr'")):
        with pytest.raises(AirflowFailException) as info, fail_on_refusal():
            raise exc
        assert str(info.value).startswith("refused: ") and "\n" not in str(info.value)
    with pytest.raises(AirflowFailException, match="refused: no manifest"), fail_on_refusal(LookupError):
        raise LookupError("no manifest")
    with pytest.raises(ConnectionError), fail_on_refusal():  # transient: Airflow may retry it
        raise ConnectionError("S3 unreachable")


def test_checkpoint_backup_fails_without_retry_while_recovery_holds_the_lock(ct_env: Path, airflow_db):
    from airflow.sdk.exceptions import AirflowFailException

    from include.ops.lock import maintenance_lock
    from include.ops.settings import get_settings

    with (
        maintenance_lock("disaster_recovery:elsewhere", get_settings().lock_file),
        pytest.raises(AirflowFailException, match="refused: .*disaster_recovery:elsewhere"),
    ):
        _callable("checkpoint_backup", "check_lock")()


def test_dr_drill_without_a_backup_fails_without_retry(ct_env: Path, airflow_db):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="refused: "):
        _callable("dr_drill", "drill")(params={"backup_id": "latest", "source": "local"})


def test_continual_training_refusals_fail_and_a_learned_task_is_skipped(
    ct_env: Path, airflow_db, monkeypatch
):
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from include.ops import training
    from include.ops.lock import maintenance_lock
    from include.ops.settings import get_settings
    from model.data import write_split_digits

    settings = get_settings()
    write_split_digits(settings.data_dir)
    plan = _callable("continual_training", "plan")
    params = dict(load_dag("continual_training").params)
    with pytest.raises(AirflowFailException, match="refused: task 'task_99' is not in the manifest"):
        plan(params={**params, "task_id": "task_99"})
    monkeypatch.setattr(training.tracking, "learned_task_ids", lambda s: ["task_0"])
    with pytest.raises(AirflowSkipException, match="task 'task_0' is already learned"):
        plan(params={**params, "task_id": "task_0"})

    planned = {"tasks": ["task_0"], "run": {"train_config": {"epochs": 1, "max_samples_per_task": 32}}}
    dag_run = SimpleNamespace(dag_id="continual_training", run_id="manual__refused")
    with (
        maintenance_lock("disaster_recovery:elsewhere", settings.lock_file),
        pytest.raises(AirflowFailException, match="refused: maintenance lock"),
    ):
        _callable("continual_training", "train")(planned, dag_run=dag_run, outlet_events={})


def test_capacity_and_learned_tasks_are_refusals():
    from include.ops import training
    from include.ops.errors import Refusal

    full = SimpleNamespace(learned_tasks=["a", "b"], model_cfg=SimpleNamespace(max_tasks=2), state_dir="s")
    with pytest.raises(training.TrainingRefused, match="capacity is 2 tasks") as info:
        training._check_learnable(full, "c")
    assert isinstance(info.value, Refusal)
    with pytest.raises(training.AlreadyLearned):
        training._check_learnable(full, "a")
