"""
### data_validation

Gates continual training on data quality. When a file lands (an `AssetWatcher` on the `landed_task_file` Asset:
the triggerer watches `CT_LANDING_DIR`, never moving what it sees, or reads S3 event notifications from the SQS
queue `CT_LANDING_SQS_QUEUE_URL`), and on the poll `CT_VALIDATION_POLL_CRON` (every 10 minutes) as the fallback
(`CT_LANDING_WATCH=false`: the poll alone), and when triggered it looks at the
**landing zone**
(`CT_LANDING_DIR`, default `var/landing`; the S3 prefix `CT_LANDING_S3_URI` when an Airflow connection `s3`
exists), and validates each new task batch on its own (one mapped `validate` task per file):

1. pre-checks below the table level: file name (plain, listed in the landing `manifest.json`), size limit
   (`CT_VALIDATION_MAX_BYTES`), empty file, UTF-8, CSV structure;
2. the committed Great Expectations suite `great_expectations/expectations/task_batch.json`: exact columns and
   dtypes, no nulls, features in 0-16, labels only from the task's classes and every class present, class
   share <= 0.8, `split` only train/test, row count bounds, duplicate rows <= 1 %, no train/test leakage
   against this batch and every validated task.

**Pass**: the file is copied to the validated store (`CT_VALIDATED_DIR`, with `manifest.json` and a sha256
`index.json`) and the task emits a `validated_task_batch` Asset event (extra: `task_id`, `path`, `checksum`,
`rows`, `summary`), which schedules `continual_training`. A file whose content is already validated is skipped.

**Fail**: the file is moved with its original bytes to `CT_QUARANTINE_DIR/<time>-<sha12>-<name>/` beside
`report.json`, an alert line is written to `<CT_LOG_DIR>/data_validation.log`,
`continual_transformer_data_validation_failures_total` is pushed to `PUSHGATEWAY_URL`, and the task fails
(no retry) naming the failed expectation types or pre-check. Nothing is trained on it; nothing is deleted.

**Params**: `files` (only these landed file names; empty = every new file), `build_data_docs` (GX data docs
under `great_expectations/uncommitted/data_docs/`, path in the report; null = env `CT_GX_DATA_DOCS`, on).

**When it fails** (runbook "Training Convergence Issues" > "Analyze Data Quality")
- a `validate` task failed: read its log line or `report.json` in the quarantine folder; run
  `make analyze-data` for class counts and drift. Fix the file at its source, then release it:
  `python -m include.airflow_glue.landing_s3 release <quarantine folder> --file fixed.csv` and trigger this DAG.
  See `docs/data-validation.md`.
- `find_new_batches` failed with `no manifest.json`: land the task manifest beside the batches.
- `conflicts_with_validated`: a validated batch is immutable; land the new data as a new task.
- S3 errors: check the `s3` connection (endpoint, credentials) and the bucket; the task retries once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, get_current_context, task

from include.airflow_glue.assets import VALIDATED_BATCH
from include.airflow_glue.landing_trigger import landed_file_asset
from include.ops.settings import get_settings

# a landed file starts a run within seconds (the triggerer's AssetWatcher); the poll (CT_VALIDATION_POLL_CRON,
# every 10 minutes) stays as the fallback, and is the only trigger with CT_LANDING_WATCH=false
_SETTINGS = get_settings()
_POLL = CronTriggerTimetable(_SETTINGS.validation_poll_cron, timezone="UTC")
SCHEDULE = (
    AssetOrTimeSchedule(timetable=_POLL, assets=[landed_file_asset(_SETTINGS)])
    if _SETTINGS.landing_watch
    else _POLL
)


@dag(
    dag_id="data_validation",
    schedule=SCHEDULE,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["data-quality", "great-expectations", "continual-learning"],
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(seconds=30)},
    doc_md=__doc__,
    params={
        "files": Param(
            [],
            type="array",
            items={"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"},
            description='Only validate these landed file names (e.g. ["task_3.csv"]); empty: every new file. '
            "Rule: each a plain file name, 1-128 letters, digits, . _ - (pattern "
            r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$).",
        ),
        "build_data_docs": Param(
            None,
            type=["null", "boolean"],
            description="Build GX data docs per file (great_expectations/uncommitted/data_docs/); "
            "null: env CT_GX_DATA_DOCS (default on).",
        ),
    },
)
def data_validation():
    @task
    def find_new_batches(params: dict) -> list[dict]:
        """List landed files whose content is not validated yet (skips are logged)."""
        from include.airflow_glue.landing_s3 import get_landing
        from include.airflow_glue.refusals import fail_on_refusal
        from include.ops.validation.outcome import ValidationSetupError
        from include.ops.validation.zone import scan_landing

        with fail_on_refusal(ValidationSetupError):  # no manifest to judge against: a retry cannot help
            todo, skipped = scan_landing(landing=get_landing())
        for item, why in skipped:
            print(f"skip {item.name}: {why}")
        wanted = set(params.get("files") or [])
        if wanted:
            todo = [item for item in todo if item.name in wanted]
        print(f"{len(todo)} new batch(es): {[item.name for item in todo]}")
        return [item.to_dict() for item in todo]

    @task(outlets=[VALIDATED_BATCH], map_index_template="{{ batch_name }}")
    def validate(batch: dict, params: dict, outlet_events=None) -> dict:
        """Validate one landed file; emit the validated_task_batch event or fail naming the failed checks."""
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from include.airflow_glue.landing_s3 import get_landing
        from include.airflow_glue.refusals import fail_on_refusal
        from include.ops.validation.outcome import ValidationSetupError
        from include.ops.validation.zone import validate_batch

        get_current_context()["batch_name"] = batch["name"]
        with fail_on_refusal(ValidationSetupError):
            result = validate_batch(batch, build_docs=params.get("build_data_docs"), landing=get_landing())
        if result.status == "rejected":
            raise AirflowFailException(
                f"{result.name} rejected at {result.stage}: {result.reason}. "
                f"Quarantined: {result.path} (report {result.report_path})"
            )
        if result.status == "skipped":
            raise AirflowSkipException(f"{result.name}: {result.reason}")
        outlet_events[VALIDATED_BATCH].extra = result.asset_extra()
        print(f"{result.name} validated as {result.task_id}: {result.rows} rows -> {result.path}")
        return result.asset_extra()

    validate.expand(batch=find_new_batches())


data_validation()
