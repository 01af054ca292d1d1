"""
### unlearn_task

Removes one learned task from the model exactly, for example after a data-deletion request. Only a stream
learned with the `analytic` strategy can do it (its head is a closed-form function of summed statistics, so
the task's rows are read again and subtracted); every other strategy refuses, saying so. The result is a new
checkpoint, registered as a new model version and gated like any learned task; MLflow records who removed
which task and the champion version before and the version after (a run tagged `ct.kind=unlearning`). Then
the task's validated file is **quarantined** (moved out of the store, never deleted: deleting the bytes for
good is the operator's step on the quarantine folder), and the task is never learned again: the next
automatic `continual_training` run skips it and a request naming it is refused.

**Params**: `task_id` - the learned task to remove (e.g. `task_2`).

**When it fails** (a refusal fails at once, without retries, and names why)
- "not recorded as learned" / "already unlearned": check the task id against MLflow's learned runs.
- "file ... is gone" or "has sha256 ... but was learned from ...": the exact rows learned are no longer
  available, so the removal cannot be exact; restore the validated batch from a backup, then retry.
- "cannot unlearn a task exactly": the stream was learned with an SGD strategy; retrain a new stream without
  the task instead.
- "maintenance lock ... is held": disaster recovery is running; retry after it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, task

from model.config import TASK_ID_PATTERN


@dag(
    dag_id="unlearn_task",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["continual-learning", "unlearning", "mlflow"],
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(seconds=30)},
    doc_md=__doc__,
    params={
        "task_id": Param(
            None,
            type="string",
            pattern=TASK_ID_PATTERN,
            description="Learned task to remove (e.g. task_2). Rule: letters, digits, _ . - only, 1-64 "
            f"characters (pattern {TASK_ID_PATTERN}).",
        ),
    },
)
def unlearn_task():
    @task
    def unlearn(params: dict, dag_run=None) -> dict:
        """Subtract the task, register and gate the result, quarantine its file (include.ops.unlearning)."""
        from include.airflow_glue.refusals import fail_on_refusal
        from include.airflow_glue.unlearning import requested_by
        from include.ops.settings import get_settings
        from include.ops.unlearning import unlearn_task as remove

        with fail_on_refusal():
            return remove(get_settings(), params["task_id"], requested_by(dag_run)).to_dict()

    unlearn()


unlearn_task()
