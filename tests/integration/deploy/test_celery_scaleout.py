"""Scale-out for real: multi-executor Airflow (PostgreSQL + Redis), training on Celery queue `gpu`.

The stack is docker-compose.yml run as local processes (see conftest.py) with
``AIRFLOW__CORE__EXECUTOR=LocalExecutor,CeleryExecutor`` and ``CT_TRAINING_EXECUTOR=CeleryExecutor``, the
Kubernetes deployment's shape (deploy/helm/values-kubernetes.yaml) with LocalExecutor standing in for the
KubernetesExecutor. ``continual_training`` is triggered over the REST API v2 with a token and must: succeed,
run its `train` task on the Celery `gpu`-queue worker and every other task on the default LocalExecutor, and
leave the learned run in MLflow's PostgreSQL store with its artifacts in S3.
"""

from __future__ import annotations

import boto3
import pytest

from tests.integration.deploy.deploy_support import DAG_ID, CeleryRun, Stack
from tests.paths import ROOT

pytestmark = pytest.mark.integration


def _by_task(run: CeleryRun) -> dict:
    return {ti.task_id: ti for ti in run.task_instances}


def test_run_succeeds_with_every_task(celery_run: CeleryRun, local_stack: Stack) -> None:
    tis = _by_task(celery_run)
    states = {t: str(ti.state.value) if ti.state else None for t, ti in tis.items()}
    print(f"\ncontinual_training over Celery: {celery_run.seconds:.1f}s trigger->success; states {states}")
    print(f"stack startup (s): { {k: round(v, 1) for k, v in local_stack.startup_seconds.items()} }")
    assert celery_run.state == "success", (
        f"run {celery_run.run_id} {celery_run.state}: {states}\n{local_stack.local.tail('airflow-worker-gpu', 60)}"
    )
    assert set(tis) == {"plan", "train", "register", "approve", "gate"}
    # approve waits only for a failed gate (CT_PROMOTION_APPROVAL=on) or with require_approval: here it skips
    assert states.pop("approve") == "skipped", states
    assert all(s == "success" for s in states.values()), states


def test_training_ran_on_the_gpu_queue_worker(celery_run: CeleryRun, local_stack: Stack) -> None:
    tis = _by_task(celery_run)
    assert tis["train"].queue == "gpu"
    assert tis["train"].executor == "CeleryExecutor", "CT_TRAINING_EXECUTOR did not reach the train task"
    others = ("plan", "register", "gate")
    assert {tis[t].executor for t in others} == {None}, "the other tasks run on the default executor"
    gpu_log = local_stack.local.services["airflow-worker-gpu"].log_path.read_text(errors="replace")
    cpu_log = local_stack.local.services["airflow-worker"].log_path.read_text(errors="replace")
    assert "gpu@" in gpu_log and "ready." in gpu_log, "the gpu worker did not announce itself"
    train_id = str(tis["train"].id)
    # the Celery worker logs every workload it executes, with the task instance's id
    assert train_id in gpu_log, f"train ({train_id}) not executed by the Celery gpu worker"
    assert train_id not in cpu_log, "train was executed by the default Celery worker"
    for task in others:  # LocalExecutor: run by the scheduler, never handed to a Celery worker
        assert str(tis[task].id) not in cpu_log and str(tis[task].id) not in gpu_log, task
    assert tis["train"].hostname, "the task instance records the worker host"


def test_mlflow_postgres_store_holds_the_run(celery_run: CeleryRun, local_stack: Stack) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=local_stack.mlflow_url)
    exp = client.get_experiment_by_name("continual-tiny-transformer")
    assert exp is not None, "the experiment was not created in MLflow"
    runs = client.search_runs([exp.experiment_id], f"tags.`ct.dag_run_id` = '{celery_run.run_id}'")
    assert len(runs) == 1, [r.info.run_id for r in runs]
    run = runs[0]
    assert run.data.tags["ct.task_id"] == "task_0"
    assert run.data.tags["ct.status"] == "learned"
    assert run.data.params["train.epochs"] == "1"
    assert run.data.params["train.max_samples_per_task"] == "64"
    assert 0.0 <= run.data.metrics["acc.task_0"] <= 1.0
    versions = client.search_model_versions(f"run_id = '{run.info.run_id}'")
    assert versions, "no registered model version for the run"
    # the backend store is the PostgreSQL database the compose command names (not a local file)
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=local_stack.databases[1])
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM runs WHERE run_uuid = %s", (run.info.run_id,))
            assert cur.fetchone()[0] == 1
    finally:
        conn.close()
    # artifacts went through the server to S3 (MinIO in compose, a moto server here)
    s3 = boto3.client(
        "s3",
        endpoint_url=local_stack.s3_endpoint,
        aws_access_key_id=local_stack.env["MINIO_ROOT_USER"],
        aws_secret_access_key=local_stack.env["MINIO_ROOT_PASSWORD"],
        region_name="us-east-1",
    )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=local_stack.env["MLFLOW_BUCKET"]).get("Contents", [])]
    assert any(run.info.run_id in k and k.endswith("acc_matrix.json") for k in keys), keys[:20]


def test_dag_id_constant_matches_the_dag_file() -> None:

    source = (ROOT / "dags" / f"{DAG_ID}.py").read_text()
    assert f'dag_id="{DAG_ID}"' in source


def test_training_pushed_its_metrics_to_the_pushgateway(celery_run: CeleryRun, local_stack: Stack) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{local_stack.url('pushgateway', 9091)}/metrics", timeout=10) as resp:
        body = resp.read().decode()
    lines = [ln for ln in body.splitlines() if ln.startswith("continual_transformer_training_loss{")]
    assert any('job="continual_training"' in ln and 'task="task_0"' in ln for ln in lines), lines
