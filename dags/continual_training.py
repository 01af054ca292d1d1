"""
### continual_training

Learns new tasks, one after another, into the **same** tiny transformer (fixed parameter count) and
tracks every task in MLflow.

**What a run trains**
1. the task named by the `task_id` param; else
2. the tasks in the triggering `validated_task_batch` Asset events (from `data_validation`), in task order; else
3. the next task of the manifest that MLflow has no learned run for.

**A task that is already learned** (MLflow has its learned run) is never trained again: `task_id` naming one
ends the run *successfully*, every task skipped, with `plan` logging `task ... is already learned`. Learning a
task again into a new version is not supported (it would add a second row for the same task to the accuracy
matrix); the next task is learned by a trigger without `task_id`. Once unlearning exists, a task it removes has
no learned run any more and is learnable again like a new one.

**Per task**: train from the latest checkpoint -> evaluate on every task seen -> log to MLflow (resolved config,
per-epoch loss, accuracy / retention per task, mean retention, backward transfer, parameter count, strategy memory,
accuracy matrix JSON + heatmap PNG, checkpoint) -> register a model version -> gate: alias `champion` when mean
retention >= `retention_threshold` and the new task reaches `accuracy_floor` (first task: floor only), else
`challenger` and the final `gate` task fails. The `train` task emits the `model_checkpoint` Asset either way.

**What a run learned, in the Airflow UI**: the last lines of the `gate` task's log, one per task, e.g.
`learned task_2: new-task acc 0.970, min retention 0.950, mean 0.980, gate: champion v3` (with the reasons of a
failed gate); the same in its XCom (`summary`, beside version, alias and metrics); the `train` task's XCom holds
each learned task's metrics and MLflow run id; the `model_checkpoint` event (Assets view) carries task id,
new-task accuracy, min/mean retention, MLflow run id and the checkpoint (the version is assigned after it).

**Params**: `task_id` (null = automatic), `strategy`, `scenario`, `epochs`, `max_samples_per_task`,
`retention_threshold`, `accuracy_floor`, `require_approval`. A stream keeps the `strategy` and `scenario` of its
first task: left empty they are the stream's own (a new stream takes the default), another value is refused (the
run fails without retry, naming both). The default is `replay`; `analytic` scores higher on every stream of the
bench and unlearns exactly, but each of its checkpoints holds about 65 MB of strategy memory (README, "Why the
default stays replay"). Precedence, resolved once per run by `plan` and logged to MLflow
(`run_settings.json` on every learned run): a param the trigger conf sets > an operator override
(`POST /api/config/*`) > the environment (`CT_RETENTION_THRESHOLD`, `CT_ACCURACY_FLOOR`, `CT_TRAIN_OVERRIDES`)
> the default. The training task runs on `CT_TRAINING_QUEUE` / `CT_TRAINING_EXECUTOR`, in-process or in a GPU
container (`CT_TRAINING_BACKEND=docker`).

**Human approval** (`approve`, Airflow human-in-the-loop): with `CT_PROMOTION_APPROVAL=on` (the compose stack) a
version the gate did not make `champion` waits in `awaiting_input` for an operator (Airflow UI > Required
actions): Approve, with a required comment, moves `champion` to it; Reject, or no answer within
`CT_PROMOTION_APPROVAL_TIMEOUT_H` (24), keeps the champion and fails the run. `require_approval` = true (or
`CT_PROMOTION_APPROVAL=always`) makes every promotion wait. The decision, user and comment are model-version tags
(`approval*`) and an alias-history entry. Off (the default, `dag.test()`, the demo): `approve` is skipped.

**When it fails** (runbook "Training Convergence Issues")
- `gate` failed: the new version is `challenger`; the previous `champion` still serves. Open the run in MLflow,
  compare `retention.*` with the previous run; review data (`make validate-data`, `make analyze-data`),
  lower the learning rate (`POST /api/config/learning_rate`) or raise the replay budget, then trigger again
  with the same `task_id`.
- `train` failed with `loss diverged`: nothing was saved for that task; the last good checkpoint is untouched.
  Reduce the learning rate / batch size, then re-run.
- `CUDA out of memory`: reduce `batch_size` (`POST /api/config/batch_size`), clear the GPU cache, re-run.
- `maintenance lock ... is held`: disaster recovery is running; wait for it, then re-run.
- `refused: ...` (an unknown task, no validated data, model capacity reached, the maintenance lock held): the
  task fails at once without retries (a retry could not change the answer); the reason is the last line of
  its log.
- A retry of the same DAG run reuses its MLflow run and never trains a task twice.
- A crash (`kill -9`, OOM, a lost worker) at any step needs no repair: the next run (a retry or a new trigger)
  marks the dead run's MLflow run FAILED (`ct.orphaned`), records a task whose verified checkpoint was written
  but not tracked from that checkpoint (`ct.recovered`, not trained again), and registers and gates a learned
  run that has no gated version yet (docs/architecture.md, "crash consistency").
- A run still going `CT_TRAINING_DEADLINE_MINUTES` (120 in the compose stack; 0 = off, the embedded default) after it was queued: a deadline
  alert posts to the `notify_webhook` connection (else a log entry); the run itself goes on. Look at the
  `train` task's log (a hung data read, a slow GPU queue), then let it finish or mark it failed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, TriggerRule, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from include.airflow_glue.approval import PromotionApprovalOperator
from include.airflow_glue.assets import CHECKPOINT, VALIDATED_BATCH
from include.airflow_glue.deadlines import training_deadline
from include.ops.settings import ACCURACY_FLOOR, RETENTION_THRESHOLD, get_settings
from include.ops.training import training_route
from model.config import TASK_ID_PATTERN, TrainConfig

DEFAULT_TRAIN = TrainConfig()  # a new stream's strategy and scenario (the Params' descriptions)

SETTINGS = get_settings()  # parse time: routing and backend are task attributes (validated settings)
TRAINING_ROUTE = training_route(SETTINGS)  # queue / executor of the training task, only those set


@dag(
    dag_id="continual_training",
    schedule=VALIDATED_BATCH,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["continual-learning", "training", "mlflow"],
    deadline=training_deadline(SETTINGS),  # still going after CT_TRAINING_DEADLINE_MINUTES: webhook
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(seconds=30)},
    doc_md=__doc__,
    params={
        "task_id": Param(
            None,
            type=["null", "string"],
            description="Task to learn (e.g. task_2). Empty: tasks from the triggering events, else the next one. "
            f"Rule: letters, digits, _ . - only, 1-64 characters (pattern {TASK_ID_PATTERN}).",
            pattern=TASK_ID_PATTERN,  # the landing manifest schema holds task ids to the same pattern
        ),
        "strategy": Param(
            None,
            type=["null", "string"],
            enum=[None, "naive", "replay", "lwf", "ewc", "analytic"],
            description="Continual-learning strategy: naive, replay, lwf, ewc or analytic (replay keeps a "
            "fixed, class-balanced exemplar budget; analytic solves a closed-form head, no exemplars). Empty: "
            f"the stream's own, fixed at its first task (a new stream: {DEFAULT_TRAIN.strategy}); another value "
            "than the stream's is refused.",
        ),
        "scenario": Param(
            None,
            type=["null", "string"],
            enum=[None, "class_incremental", "task_incremental"],
            description="class_incremental (one head, no task id at test) or task_incremental (task id given). "
            f"Empty: the stream's own (a new stream: {DEFAULT_TRAIN.scenario}); another value is refused.",
        ),
        "epochs": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=500,
            description="Epochs per task: an integer 1..500; empty: the training default.",
        ),
        "max_samples_per_task": Param(
            None,
            type=["null", "integer"],
            minimum=8,
            description="Cap on training samples per task (quick runs): an integer >= 8; empty: no cap.",
        ),
        "retention_threshold": Param(
            None,
            type=["null", "number"],
            minimum=0,
            maximum=1,
            description="Mean retention needed for `champion`: a number 0..1; empty: default from settings "
            f"(CT_RETENTION_THRESHOLD, {RETENTION_THRESHOLD}).",
        ),
        "accuracy_floor": Param(
            None,
            type=["null", "number"],
            minimum=0,
            maximum=1,
            description="New-task accuracy needed for `champion`: a number 0..1; empty: default from settings "
            f"(CT_ACCURACY_FLOOR, {ACCURACY_FLOOR}).",
        ),
        "require_approval": Param(
            None,
            type=["null", "boolean"],
            description="true: every promotion waits for an operator's approval in the Airflow UI (production); "
            "false: only a failed gate waits, when approval is on; empty: CT_PROMOTION_APPROVAL (off, on, always).",
        ),
    },
)
def continual_training():
    @task
    def plan(params: dict, triggering_asset_events=None) -> dict:
        """Decide which tasks this run learns, and resolve its settings once."""
        from include.airflow_glue.refusals import fail_on_refusal
        from include.ops.run_settings import resolve_run_settings
        from include.ops.training import AlreadyLearned, plan_tasks
        from include.ops.training_recovery import pending_registrations

        settings = get_settings()
        event_tasks = []
        for events in (triggering_asset_events or {}).values():
            event_tasks += [e.extra["task_id"] for e in events if (e.extra or {}).get("task_id")]
        with fail_on_refusal():
            run = resolve_run_settings(params, settings)  # refused: another strategy than the stream's
            try:
                tasks = plan_tasks(settings, params.get("task_id"), event_tasks)
            except AlreadyLearned as exc:  # asking for a learned task again is a no-op, not an error
                raise AirflowSkipException(str(exc)) from exc
        pending = SETTINGS.training_backend == "inprocess" and pending_registrations(settings)
        if not tasks and not pending:
            raise AirflowSkipException("nothing to learn: every available task is learned")
        print(f"planned tasks: {tasks}; run settings: {run.to_dict()}")
        return {"tasks": tasks, "run": run.to_dict()}

    @task(**TRAINING_ROUTE, outlets=[CHECKPOINT])
    def train(planned: dict, dag_run=None, outlet_events=None) -> list[dict]:
        """Learn the planned tasks in order, one MLflow run each; emit the checkpoint Asset."""
        from include.airflow_glue.refusals import fail_on_refusal
        from include.ops.jsonlog import configure_json_logging
        from include.ops.run_report import checkpoint_extra
        from include.ops.training import learn_one

        if not planned["tasks"]:  # only versions a crashed run left unregistered: no new checkpoint event
            raise AirflowSkipException("no task to learn; register completes the versions left pending")
        configure_json_logging("training")
        settings, cfg = get_settings(), planned["run"]["train_config"]
        with fail_on_refusal():
            summaries = [
                learn_one(settings, t, cfg, dag_run.dag_id, dag_run.run_id) for t in planned["tasks"]
            ]
        outlet_events[CHECKPOINT].extra = checkpoint_extra(summaries[-1])  # shown in the Assets view
        return summaries

    @task(trigger_rule=TriggerRule.NONE_FAILED)  # also after a skipped train: pending versions
    def register(summaries: list[dict] | None, planned: dict | None, params: dict) -> list[dict]:
        """Register a model version per learned task (and any a crash left pending); move the aliases."""
        from include.airflow_glue.approval import run_settings
        from include.airflow_glue.refusals import fail_on_refusal
        from include.ops.run_settings import RunSettings
        from include.ops.training import register_and_gate

        if planned is None:
            raise AirflowSkipException("nothing was planned")
        with fail_on_refusal():
            settings = run_settings(get_settings(), params.get("require_approval"))
            return register_and_gate(settings, summaries or [], RunSettings.from_dict(planned["run"]))

    # deterministic: a retry only re-reports the same decision; runs after a skipped approval too
    @task(retry_delay=timedelta(seconds=2), trigger_rule=TriggerRule.NONE_FAILED)
    def gate(decisions: list[dict] | None, approved: dict | None = None) -> list[dict]:
        """Log what was learned and the gate's decision, one line per task; fail when a version did not earn
        `champion` (nor an operator's approval). Returns the decisions with their line (XCom)."""
        import logging

        from include.ops.run_report import summary_line

        if decisions is None:
            raise AirflowSkipException("nothing was registered")
        ok = {r["version"] for r in (approved or {}).get("versions", [])}
        reports = [{**d, "summary": summary_line(d, approved=d["version"] in ok)} for d in decisions]
        for report in reports:  # logged, not printed: a task's stdout reaches its log only at the end
            logging.getLogger("continual_training").info(report["summary"])
        failed = [d for d in decisions if not d["passed"] and d["version"] not in ok]
        if failed:
            raise RuntimeError(
                "gate failed: " + " | ".join(f"{d['task_id']}: {'; '.join(d['reasons'])}" for d in failed)
            )
        return reports

    @task(outlets=[CHECKPOINT])
    def track(result_line: str, dag_run=None, outlet_events=None) -> list[dict]:
        """Record the container's LearnResult in MLflow; emit the checkpoint Asset."""
        from include.airflow_glue.refusals import fail_on_refusal
        from include.ops.run_report import checkpoint_extra
        from include.ops.training import record_container_result

        with fail_on_refusal():
            summary = record_container_result(get_settings(), result_line, dag_run.dag_id, dag_run.run_id)
        outlet_events[CHECKPOINT].extra = checkpoint_extra(summary)
        return [summary]

    planned = plan()
    if SETTINGS.training_backend == "docker":
        from include.airflow_glue.docker_training import build_docker_training_operator

        container = build_docker_training_operator(
            "train_container",
            cl_task_id="{{ ti.xcom_pull(task_ids='plan')['tasks'][0] }}",
            conf="{{ ti.xcom_pull(task_ids='plan')['run']['train_config'] | tojson }}",
            settings=SETTINGS,
        )
        planned >> container
        summaries = track(container.output)
    else:
        summaries = train(planned)
    decisions = register(summaries, planned)
    approve = PromotionApprovalOperator(task_id="approve", settings=SETTINGS)  # skips unless one waits
    decisions >> approve
    gate(decisions, approve.output)


continual_training()
