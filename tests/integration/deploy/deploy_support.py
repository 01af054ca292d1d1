"""Fixtures of the deployment tests: a generated .env and the compose stack run as local processes.

``local_stack`` (session) starts, from docker-compose.yml's own commands and health checks: Redis, MLflow
(PostgreSQL backend store, S3 artifacts on a moto server standing in for MinIO), the Airflow init job,
api-server, scheduler, dag-processor, triggerer, the default and the `gpu` Celery workers, the serving app,
Prometheus and the Pushgateway. Databases are created per session in the machine's PostgreSQL and dropped
afterwards; every process is stopped by its process group.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from include.ops.config_check import generate_env, parse_env_file
from tests.integration.deploy.compose_local import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    LocalStack,
    free_port,
    resolve_compose,
)
from tests.paths import ROOT

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REQUIRED_BINARIES = (
    "docker-compose",
    "redis-server",
    "redis-cli",
    "prometheus",
    "prometheus-pushgateway",
    "promtool",
    "pg_isready",
    "curl",
)
STACK_SERVICES = (
    "mlflow",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-worker-gpu",
    "app",
    "prometheus",
    "pushgateway",
)
INDEPENDENT = ("mlflow", "prometheus", "pushgateway")
AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-worker-gpu",
)
DAG_ID = "continual_training"


def require_binaries(*names: str) -> None:
    """Fail (not skip) naming every missing program and how to install it."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        pytest.fail(f"missing programs {missing}: run `make system-deps` (Debian packages)")


def write_env_file(path: Path, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Write a .env generated from .env.example (fresh secrets) with ``overrides``; return its values."""
    text = generate_env(ENV_EXAMPLE.read_text())
    if overrides:
        lines = [ln for ln in text.splitlines() if ln.partition("=")[0].strip() not in overrides]
        text = "\n".join([*lines, *(f"{k}={v}" for k, v in overrides.items())]) + "\n"
    path.write_text(text)
    return parse_env_file(path)[0]


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    """A .env generated from .env.example (placeholders replaced by generated secrets) in a temp folder."""
    path = tmp_path / ".env"
    write_env_file(path)
    return path


def _pg(dbname: str = "postgres"):
    import psycopg2

    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname)
    conn.autocommit = True
    return conn


def create_databases(*names: str) -> None:
    """Create fresh databases in the machine's PostgreSQL."""
    conn = _pg()
    try:
        with conn.cursor() as cur:
            for name in names:
                cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()


def drop_databases(*names: str) -> None:
    """Drop databases (ending their connections first); missing ones are ignored."""
    conn = _pg()
    try:
        with conn.cursor() as cur:
            for name in names:
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
                )
                cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        conn.close()


def http_json(method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 30) -> Any:
    """JSON request; returns the decoded body, AssertionError with the response body on >= 400."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        raise AssertionError(
            f"{method} {url}: HTTP {exc.code} {exc.read()[:500].decode(errors='replace')}"
        ) from exc
    return json.loads(raw) if raw else None


def _cheap_gates(local: LocalStack) -> dict[str, Any]:
    """Cheap probes that must pass before a CLI-based health check is worth its CPU (see wait_healthy)."""
    api = local.services["airflow-apiserver"].url(8080)

    def monitor(component: str):
        def ready() -> bool:
            try:
                return (
                    http_json("GET", f"{api}/api/v2/monitor/health", timeout=5)[component]["status"]
                    == "healthy"
                )
            except (AssertionError, OSError, KeyError, ValueError):
                return False

        return ready

    return {
        "airflow-dag-processor": monitor("dag_processor"),
        "airflow-triggerer": monitor("triggerer"),
        "airflow-worker": lambda: local.log_contains("airflow-worker", " ready."),
        "airflow-worker-gpu": lambda: local.log_contains("airflow-worker-gpu", " ready."),
    }


@dataclass
class Stack:
    """The running local stack and what the tests need to talk to it."""

    local: LocalStack
    env: dict[str, str]
    databases: tuple[str, str]
    s3_endpoint: str
    var_dir: Path
    startup_seconds: dict[str, float] = field(default_factory=dict)

    def url(self, service: str, port: int) -> str:
        """Base URL of a service's container port on this machine."""
        return self.local.services[service].url(port)

    @property
    def airflow_url(self) -> str:
        """The api-server."""
        return self.url("airflow-apiserver", 8080)

    @property
    def mlflow_url(self) -> str:
        """The MLflow tracking server."""
        return self.url("mlflow", 5000)

    @property
    def app_url(self) -> str:
        """The serving app."""
        return self.url("app", 8000)

    def airflow_token(self) -> str:
        """A JWT for the admin user from ``POST /auth/token``."""
        body = {"username": self.env["AIRFLOW_ADMIN_USER"], "password": self.env["AIRFLOW_ADMIN_PASSWORD"]}
        return http_json("POST", f"{self.airflow_url}/auth/token", body)["access_token"]


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """docker-compose.yml's services as local processes, healthy by their own health checks."""
    require_binaries(*REQUIRED_BINARIES)
    from moto.server import ThreadedMotoServer

    work = tmp_path_factory.mktemp("stack")
    tag = secrets.token_hex(4)
    databases = (f"ct_test_{tag}_airflow", f"ct_test_{tag}_mlflow")
    env = write_env_file(
        work / ".env",
        {
            "POSTGRES_USER": PG_USER,  # the machine's server trusts local connections; the password is unused
            "AIRFLOW_DB": databases[0],
            "MLFLOW_DB": databases[1],
            "CT_TRAINING_QUEUE": "gpu",  # the training task is routed to the gpu worker
            "AIRFLOW_API_WORKERS": "1",
            "AIRFLOW_WORKER_CONCURRENCY": "2",
            "LOG_LEVEL": "INFO",
        },
    )
    config = resolve_compose(work / ".env", [COMPOSE_FILE])
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    moto.start()
    s3_endpoint = f"http://127.0.0.1:{moto._server.server_port}"  # noqa: SLF001 - the port moto bound
    dags = work / "dags"
    dags.mkdir()
    # only the DAG under test: the 2 shared cores do not parse every other DAG of the project in a loop
    (dags / f"{DAG_ID}.py").symlink_to(ROOT / "dags" / f"{DAG_ID}.py")
    airflow_extra = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "300",
        # multi-executor, as on Kubernetes: every task on the default LocalExecutor except `train`, which
        # CT_TRAINING_EXECUTOR routes to Celery (and CT_TRAINING_QUEUE to the `gpu` worker)
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor,CeleryExecutor",
        "CT_TRAINING_EXECUTOR": "CeleryExecutor",
    }
    local = LocalStack(
        config,
        work,
        external={"postgres": (PG_HOST, PG_PORT), "minio": ("127.0.0.1", int(s3_endpoint.rsplit(":", 1)[1]))},
        extra_env={name: airflow_extra for name in config["services"] if name.startswith("airflow-")},
    )
    created: list[str] = []
    try:
        create_databases(*databases)
        created = list(databases)
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=s3_endpoint,
            aws_access_key_id=env["MINIO_ROOT_USER"],
            aws_secret_access_key=env["MINIO_ROOT_PASSWORD"],
            region_name="us-east-1",
        )
        for bucket in (env["MLFLOW_BUCKET"], env["CT_BACKUP_BUCKET"]):  # what minio-init does
            s3.create_bucket(Bucket=bucket)

        var_dir = local.local_path("airflow-worker", "/opt/ct/var")
        from model.data import write_split_digits

        write_split_digits(var_dir / "data" / "split_digits")

        # start order follows depends_on: what needs neither Redis nor the init job starts at once
        started = time.monotonic()
        for name in ("redis", *INDEPENDENT):
            local.start(name)
        took = local.wait_healthy(["redis"], timeout=60, since=started)
        init = local.run_once("airflow-init", timeout=300)  # depends_on: postgres + redis healthy
        assert init.returncode == 0, f"airflow-init failed:\n{local.tail('airflow-init')}"
        took["airflow-init"] = time.monotonic() - started
        for name in AIRFLOW_SERVICES:
            local.start(name)
        took.update(local.wait_healthy(["mlflow"], timeout=300, since=started))
        local.start("app")  # depends_on: mlflow healthy
        rest = [*AIRFLOW_SERVICES, "app", "prometheus", "pushgateway"]
        took.update(local.wait_healthy(rest, timeout=300, since=started, gates=_cheap_gates(local)))
        took = {k: v for k, v in sorted(took.items(), key=lambda kv: kv[1])}
        took["total"] = time.monotonic() - started
        yield Stack(local, env, databases, s3_endpoint, var_dir, took)
    finally:
        local.stop_all()
        slow = {n: round(s, 1) for n, s in local.stop_seconds.items() if s > 3}
        if slow:
            print(f"\nslow to stop on SIGTERM (s; inf = killed): {slow}")
        moto.stop()
        if created:
            drop_databases(*created)
        if os.environ.get("CT_KEEP_STACK_LOGS"):
            shutil.copytree(work / "logs", Path(os.environ["CT_KEEP_STACK_LOGS"]), dirs_exist_ok=True)


@dataclass
class CeleryRun:
    """A finished ``continual_training`` run of the local stack."""

    run_id: str
    state: str
    seconds: float
    task_instances: list[Any]
    conf: dict[str, Any]


@pytest.fixture(scope="session")
def celery_run(local_stack: Stack) -> CeleryRun:
    """Trigger ``continual_training`` over the REST API (token auth, apache-airflow-client); wait for the end."""
    import airflow_client.client as ac
    from airflow_client.client.api.dag_api import DAGApi
    from airflow_client.client.api.dag_run_api import DagRunApi
    from airflow_client.client.api.task_instance_api import TaskInstanceApi
    from airflow_client.client.models.dag_patch_body import DAGPatchBody
    from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody

    stack = local_stack
    api = ac.ApiClient(ac.Configuration(host=stack.airflow_url, access_token=stack.airflow_token()))
    deadline = time.monotonic() + 180
    while True:  # the dag-processor has to parse and serialise the DAG first
        try:
            DAGApi(api).get_dag(DAG_ID)
            break
        except ac.ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                tail = stack.local.tail("airflow-dag-processor")
                raise AssertionError(f"{DAG_ID} not parsed: {exc}\n{tail}") from exc
            time.sleep(2)
    DAGApi(api).patch_dag(DAG_ID, DAGPatchBody(is_paused=False))
    conf = {"task_id": "task_0", "epochs": 1, "max_samples_per_task": 64, "accuracy_floor": 0.0}
    started = time.monotonic()
    run = DagRunApi(api).trigger_dag_run(DAG_ID, TriggerDAGRunPostBody(logical_date=None, conf=conf))
    deadline = started + 420
    while True:
        state = str(DagRunApi(api).get_dag_run(DAG_ID, run.dag_run_id).state.value)
        if state in ("success", "failed"):
            break
        if time.monotonic() > deadline:
            logs = "\n".join(
                f"--- {n}\n{stack.local.tail(n, 30)}" for n in ("airflow-scheduler", "airflow-worker-gpu")
            )
            raise AssertionError(f"run {run.dag_run_id} still {state} after 420 s\n{logs}")
        time.sleep(2)
    seconds = time.monotonic() - started
    tis = TaskInstanceApi(api).get_task_instances(DAG_ID, run.dag_run_id).task_instances
    return CeleryRun(run.dag_run_id, state, seconds, tis, conf)
