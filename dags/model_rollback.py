"""
### model_rollback

Moves the registry's `champion` alias **back**: to the previous champion of the alias history, or to a named
version that passed the gate or was approved. Manual: nothing runs on a schedule. The same move as
`make rollback-model [VERSION=n]` (`include/ops/rollback.py`).

**Params**
- `version`: the version to make champion (an integer >= 1); empty: the champion before the current one in
  the alias history (a version a rollback left is never chosen again).
- `reason`: why, recorded in the alias history with the DAG run.

**Steps**: `rollback` - check the version (exists, passed the gate or was approved), verify its checkpoint's
sha256 against the registry tag, move `champion`, append a `rollback` entry to the alias history, rewrite the
local champion record (the serving fallback); `reload_serving` - `POST /api/model/reload` on `CT_APP_URL`
(the app also follows `champion` by itself on its poll, as after a promotion).

**When it fails**: `refused: ...` (no earlier champion, an ungated version, a checksum mismatch, the
maintenance lock held by disaster recovery) fails at once without retries and changes nothing; the reason is
the last line of the task log. Name another version (`make history` lists the alias moves) or restore the
checkpoint from a backup.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, task


@dag(
    dag_id="model_rollback",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["model-registry", "rollback", "serving"],
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(seconds=10)},
    doc_md=__doc__,
    params={
        "version": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="Version to make champion: an integer >= 1; empty: the previous champion of the "
            "alias history.",
        ),
        "reason": Param(
            "",
            type="string",
            maxLength=500,
            description="Why the champion is rolled back (recorded in the alias history): up to 500 characters.",
        ),
    },
)
def model_rollback():
    @task  # a refusal fails at once, without its retry (fail_on_refusal)
    def rollback(params: dict, dag_run=None) -> dict:
        """Move `champion` back (checked, checksum-verified) and record the move in the alias history."""
        from include.airflow_glue.refusals import fail_on_refusal
        from include.ops import rollback as rb
        from include.ops.settings import get_settings

        with fail_on_refusal():
            done = rb.rollback(
                get_settings(),
                params.get("version"),
                params.get("reason") or f"model_rollback {dag_run.run_id}",
                dag_id=dag_run.dag_id,
                dag_run_id=dag_run.run_id,
                reload=False,
            )
        print(f"champion v{done.from_version} -> v{done.to_version} (alias history #{done.history_seq})")
        return done.to_dict()

    @task
    def reload_serving(done: dict) -> str:
        """Ask the serving app to load the new champion now (it follows the alias on its poll anyway)."""
        from include.ops import rollback as rb
        from include.ops.settings import get_settings

        outcome = rb.reload_serving(get_settings())
        print(f"serving: {outcome}")
        return outcome

    reload_serving(rollback())


model_rollback()
