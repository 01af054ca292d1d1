"""Fixtures for backup/restore: a real learned state + MLflow store built once, S3 over HTTP (moto), servers."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TASKS = ("task_0", "task_1", "task_2")
SECRET_VALUES = ("env-token-3f9a1c", "file-password-77b2", "conn-password-c0ffee")


@pytest.fixture(scope="session")
def backup_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``var/`` folder with 3 learned tasks, registered versions, champion=task_1, challenger=task_2."""
    from mlflow import MlflowClient

    from include.ops.settings import get_settings
    from model.config import TrainConfig
    from model.data import write_split_digits
    from model.learner import ContinualLearner

    var = tmp_path_factory.mktemp("backup_template") / "var"
    settings = get_settings()
    manifest = write_split_digits(var / "data" / "split_digits")
    cfg = TrainConfig(epochs=1, max_samples_per_task=64, finetune_epochs=1, device="cpu")
    learner = ContinualLearner(manifest, var / "state", train_cfg=cfg)
    results = [learner.learn_task(task_id).to_dict() for task_id in TASKS]

    db = var / "mlflow" / "mlflow.db"
    db.parent.mkdir(parents=True)
    uri = f"sqlite:///{db}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp_id = client.create_experiment(
        settings.mlflow_experiment, artifact_location=(db.parent / "artifacts").as_uri()
    )
    client.create_registered_model(settings.registered_model)
    versions = []
    for result in results:
        run = client.create_run(
            exp_id,
            run_name=result["task_id"],
            tags={
                "ct.task_id": result["task_id"],
                "ct.checkpoint_sha256": result["checkpoint_sha256"],
                "ct.status": "learned",
            },
        )
        client.log_artifact(run.info.run_id, result["checkpoint_path"], artifact_path="checkpoint")
        client.set_terminated(run.info.run_id)
        mv = client.create_model_version(
            settings.registered_model,
            source=f"{run.info.artifact_uri}/checkpoint",
            run_id=run.info.run_id,
            tags={
                "checkpoint_path": result["checkpoint_path"],
                "checkpoint_sha256": result["checkpoint_sha256"],
                "task_id": result["task_id"],
            },
        )
        versions.append(str(mv.version))
    client.set_registered_model_alias(settings.registered_model, "champion", versions[1])
    client.set_registered_model_alias(settings.registered_model, "challenger", versions[2])
    return var


@pytest.fixture
def state(ct_env: Path, backup_template: Path, monkeypatch: pytest.MonkeyPatch):
    """A private copy of the template state under ``ct_env``, secrets in env and .env; returns Settings."""
    from include.ops.settings import get_settings

    shutil.copytree(backup_template, ct_env, dirs_exist_ok=True)
    env_file = ct_env / "app.env"
    env_file.write_text(f"LOG_LEVEL=INFO\nDB_PASSWORD={SECRET_VALUES[1]}\n")
    monkeypatch.setenv("CT_ENV_FILE", str(env_file))
    monkeypatch.setenv("CT_SERVING_API_TOKEN", SECRET_VALUES[0])
    for name in (
        "PUSHGATEWAY_URL",
        "AIRFLOW_CONN_S3_BACKUP",
        "AIRFLOW_CONN_AIRFLOW_API",
        "AIRFLOW_CONN_NOTIFY_WEBHOOK",
    ):
        monkeypatch.delenv(name, raising=False)
    for name in ("CT_BACKUP_S3_BUCKET", "CT_BACKUP_S3_PREFIX", "CT_MLFLOW_ARTIFACTS_DIR", "CT_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    return get_settings()


def tree_digest(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``root`` (hidden files included)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# what a live restore writes into the state folder beyond the backup's bytes: the marker of the restore and the
# alias history's local mirror, which gains the restore's entry (include/ops/alias_history.py)
RESTORE_WRITES = (".restored_from.json", "alias_history.jsonl")


def backup_bytes(digest: dict[str, str]) -> dict[str, str]:
    """``digest`` without the files a restore itself writes, so a restored state compares with the backed-up one."""
    return {k: v for k, v in digest.items() if k not in RESTORE_WRITES}


@dataclass
class S3Server:
    """A moto S3 server on 127.0.0.1 that records the requests it serves (server-side counts)."""

    endpoint: str
    bucket: str
    requests: list[tuple[str, str]] = field(default_factory=list)
    stop_after_object_puts: int | None = None  # set by a test: the server shuts itself down mid-upload
    _server: object | None = None

    def object_puts(self) -> list[str]:
        """Paths of PUT requests that stored a content object."""
        return [path for method, path in self.requests if method == "PUT" and "/objects/sha256/" in path]

    def stop(self) -> None:
        """Stop serving and close the socket: clients get 'connection refused' from now on."""
        server = self._server
        if server is not None:
            self._server = None
            server.stop()
            server._server.server_close()


def _start_moto(state: S3Server, port: int = 0):
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from werkzeug.serving import make_server

    class CountingMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            from moto.moto_server.werkzeug_app import (
                DomainDispatcherApplication,
                MotoRequestHandler,
                create_backend_app,
            )

            app = DomainDispatcherApplication(create_backend_app)

            def counting(environ, start_response):
                state.requests.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")))
                limit = state.stop_after_object_puts
                if limit is not None and len(state.object_puts()) > limit:
                    threading.Thread(target=state.stop, daemon=True).start()
                    start_response("503 Service Unavailable", [("Content-Length", "0")])
                    return [b""]
                return app(environ, start_response)

            self._server = make_server(
                self._ip_address, self._port, counting, True, request_handler=MotoRequestHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    server = CountingMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[S3Server]:
    """moto S3 over HTTP with a fresh bucket, wired into the ``s3_backup`` Airflow connection (S3Hook)."""
    import boto3

    bucket = "ct-backup-" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:12]  # noqa: S324
    state = S3Server(endpoint="", bucket=bucket)
    server = _start_moto(state)
    host, port = server.get_host_and_port()
    state.endpoint, state._server = f"http://{host}:{port}", server
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": SECRET_VALUES[2],
        "extra": {
            "endpoint_url": state.endpoint,
            "region_name": "us-east-1",
            "config_kwargs": {"retries": {"max_attempts": 2, "mode": "standard"}, "connect_timeout": 2},
            "service_config": {"s3": {"bucket_name": bucket}},
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_S3_BACKUP", json.dumps(conn))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    boto3.client(
        "s3",
        endpoint_url=state.endpoint,
        region_name="us-east-1",
        aws_access_key_id="t",
        aws_secret_access_key="t",
    ).create_bucket(Bucket=bucket)
    yield state
    state.stop()


def restart_s3(state: S3Server) -> None:
    """Start a new server on the same port (moto keeps its buckets in-process): S3 is back."""
    port = int(state.endpoint.rsplit(":", 1)[1])
    state.stop_after_object_puts = None
    state._server = _start_moto(state, port)


def s3_client(state: S3Server):
    """A plain boto3 client on the test server, for server-side inspection."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=state.endpoint,
        region_name="us-east-1",
        aws_access_key_id="t",
        aws_secret_access_key="t",
    )


def listing(state: S3Server) -> dict[str, tuple[int, str]]:
    """``{key: (size, etag)}`` of every object in the test bucket."""
    client = s3_client(state)
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=state.bucket):
        for item in page.get("Contents", []):
            out[item["Key"]] = (item["Size"], item["ETag"])
    return out


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make sure local HTTP servers are reached directly."""
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
