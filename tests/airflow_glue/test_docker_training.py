"""The GPU container path of training: what the DockerOperator is built with, and the CLI it runs.

No Docker engine runs here, so the operator itself cannot run; its arguments are checked instead (image,
command, GPU device request, mounts, environment without secrets), and the container's command is run
locally against a real task stream.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from include.airflow_glue import docker_training
from include.ops.settings import get_settings
from include.ops.training import training_route
from tests.paths import ROOT

SECRETS = {
    "MLFLOW_TRACKING_URI": "postgresql+psycopg2://ct:pg-secret-123@db:5432/mlflow",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-456",
    "AIRFLOW__CORE__FERNET_KEY": "fernet-secret-789",
    "CT_API_TOKEN": "api-token-secret-000",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://af:af-secret-111@db/airflow",
}


@pytest.fixture
def seam_env(ct_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ct_env plus every seam knob unset, so each test states what it sets."""
    for name in list(os.environ):
        if name.startswith(("CT_DOCKER_", "CT_TRAINING_")) or name == "CT_TRAIN_OVERRIDES":
            monkeypatch.delenv(name, raising=False)
    return ct_env


def test_backend_and_queue_come_from_configuration(seam_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    settings = get_settings()
    assert settings.training_backend == "inprocess"
    assert training_route(settings) == {}, "unset: Airflow's default queue and executor"
    monkeypatch.setenv("CT_TRAINING_BACKEND", " Docker ")
    monkeypatch.setenv("CT_TRAINING_QUEUE", "gpu")
    monkeypatch.setenv("CT_TRAINING_EXECUTOR", "CeleryExecutor")
    settings = get_settings()
    assert settings.training_backend == "docker"
    assert training_route(settings) == {"queue": "gpu", "executor": "CeleryExecutor"}
    monkeypatch.setenv("CT_TRAINING_BACKEND", "kubernetes")
    with pytest.raises(ValidationError, match="CT_TRAINING_BACKEND"):
        get_settings()


def test_operator_kwargs_request_every_gpu_and_mount_data_and_state(seam_env: Path) -> None:
    settings = get_settings()
    kwargs = docker_training.docker_training_operator_kwargs("task_2", {"epochs": 3, "lr": None}, settings)
    assert kwargs["image"] == docker_training.DEFAULT_IMAGE
    assert kwargs["command"] == [
        "python",
        "-m",
        "include.ops.train_cli",
        "--task-id",
        "task_2",
        "--train-config",
        '{"epochs": 3}',
    ]
    (request,) = kwargs["device_requests"]
    assert request.count == -1 and request.capabilities == [["gpu"]]
    mounts = {m["Target"]: m for m in kwargs["mounts"]}
    assert mounts[docker_training.CONTAINER_DATA_DIR]["Source"] == str(settings.data_dir)
    assert mounts[docker_training.CONTAINER_DATA_DIR]["ReadOnly"] is True
    assert mounts[docker_training.CONTAINER_VALIDATED_DIR]["Source"] == str(settings.validated_dir)
    assert mounts[docker_training.CONTAINER_STATE_DIR]["Source"] == str(settings.state_dir)
    assert mounts[docker_training.CONTAINER_STATE_DIR]["ReadOnly"] is False
    assert mounts[docker_training.CONTAINER_LOG_DIR]["Source"] == str(settings.log_dir)
    assert all(m["Type"] == "bind" for m in mounts.values())
    env = kwargs["environment"]
    assert env["CT_STATE_DIR"] == docker_training.CONTAINER_STATE_DIR
    assert env["CT_DATA_DIR"] == docker_training.CONTAINER_DATA_DIR
    assert kwargs["do_xcom_push"] is True and kwargs["xcom_all"] is False
    assert kwargs["mount_tmp_dir"] is False and kwargs["auto_remove"] == "success"


def test_operator_kwargs_follow_the_docker_knobs(seam_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CT_TRAINING_IMAGE", "registry.example/ct/app:1.4.0")
    monkeypatch.setenv("CT_DOCKER_URL", "tcp://gpu-host:2376")
    monkeypatch.setenv("CT_DOCKER_GPU_COUNT", "2")
    monkeypatch.setenv("CT_DOCKER_NETWORK", "ct_default")
    monkeypatch.setenv("CT_DOCKER_HOST_STATE_DIR", "/srv/ct/state")
    kwargs = docker_training.docker_training_operator_kwargs("task_0", "{{ dag_run.conf | tojson }}")
    assert kwargs["image"] == "registry.example/ct/app:1.4.0"
    assert kwargs["docker_url"] == "tcp://gpu-host:2376"
    assert kwargs["device_requests"][0].count == 2
    assert kwargs["network_mode"] == "ct_default"
    assert kwargs["command"][-1] == "{{ dag_run.conf | tojson }}"  # a template is passed through for Jinja
    assert {m["Target"]: m["Source"] for m in kwargs["mounts"]}[
        docker_training.CONTAINER_STATE_DIR
    ] == "/srv/ct/state"
    monkeypatch.setenv("CT_DOCKER_GPU_COUNT", "0")
    with pytest.raises(ValueError, match="CT_DOCKER_GPU_COUNT"):
        docker_training.docker_training_operator_kwargs("task_0")


def test_no_secret_reaches_the_container(seam_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CT_TRAIN_OVERRIDES", '{"epochs": 2}')
    kwargs = docker_training.docker_training_operator_kwargs("task_0", {"epochs": 1})
    dumped = json.dumps(kwargs, default=str)
    for value in SECRETS.values():
        assert value not in dumped
    assert set(kwargs["environment"]) <= {
        "CT_DATA_DIR",
        "CT_VALIDATED_DIR",
        "CT_STATE_DIR",
        "CT_LOG_DIR",
        "CT_TRAINING_BACKEND",
        "PYTHONUNBUFFERED",
        "CT_TRAIN_OVERRIDES",
        "CT_LOG_LEVEL",
        "LOG_LEVEL",
        "ENVIRONMENT",
        "CUDA_VISIBLE_DEVICES",
    }
    assert kwargs["environment"]["CT_TRAIN_OVERRIDES"] == '{"epochs": 2}'


def test_builder_returns_a_templated_docker_operator(seam_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.docker.operators.docker import DockerOperator

    monkeypatch.setenv("CT_TRAINING_QUEUE", "gpu")
    monkeypatch.setenv("CT_TRAINING_EXECUTOR", "LocalExecutor")
    op = docker_training.build_docker_training_operator(
        "train_in_container", cl_task_id="{{ params.task_id }}", conf={"epochs": 1}, retries=3
    )
    assert isinstance(op, DockerOperator)
    assert op.task_id == "train_in_container" and op.queue == "gpu" and op.retries == 3
    assert op.executor == "LocalExecutor"
    assert op._pre_execute_hook is docker_training.refuse_while_locked  # the lock, checked on the worker
    assert op.device_requests[0].capabilities == [["gpu"]]
    assert "command" in op.template_fields
    rendered = op.render_template(op.command, {"params": {"task_id": "task_3"}})
    assert rendered[3:5] == ["--task-id", "task_3"]


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "include.ops.train_cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_container_command_learns_a_task_and_prints_the_result(seam_env: Path) -> None:
    from model.data import write_split_digits

    settings = get_settings()
    write_split_digits(settings.data_dir)
    kwargs = docker_training.docker_training_operator_kwargs(
        "task_0",
        {"epochs": 1, "max_samples_per_task": 32, "finetune_epochs": 1, "task_id": "ignored-dag-key"},
    )
    # the container's command, run here with the container paths replaced by the bind mounts' sources
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for mount in kwargs["mounts"]:
        for key, value in kwargs["environment"].items():
            if value == mount["Target"]:
                env[key] = mount["Source"]
    assert kwargs["command"][:3] == ["python", "-m", "include.ops.train_cli"]
    proc = _cli(kwargs["command"][3:], env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])  # the DockerOperator's XCom is the last line
    assert result["task_id"] == "task_0" and result["task_ids"] == ["task_0"]
    assert result["train_config"]["epochs"] == 1 and result["train_config"]["max_samples_per_task"] == 32
    assert Path(result["checkpoint_path"]).parent == settings.checkpoint_dir
    assert Path(result["checkpoint_path"]).exists()
    assert "ignoring keys that are not TrainConfig fields: ['task_id']" in proc.stderr


def test_cli_rejects_bad_arguments(seam_env: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    bad = _cli(["--task-id", "task_0", "--train-config", "[1, 2]"], env)
    assert bad.returncode == 2 and "must be a JSON object" in bad.stderr
    bad = _cli(["--task-id", "task_0", "--train-config", "{not json"], env)
    assert bad.returncode == 2 and "not valid JSON" in bad.stderr


def test_a_refusal_in_the_container_fails_the_task_without_retry(
    seam_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI exits REFUSED_EXIT with a `refused:` line; the operator turns exactly that into
    AirflowFailException (before, the container path retried every refusal)."""
    from airflow.providers.docker.exceptions import DockerContainerFailedException
    from airflow.providers.docker.operators.docker import DockerOperator
    from airflow.sdk.exceptions import AirflowFailException

    from include.ops.errors import REFUSED_EXIT
    from include.ops.lock import maintenance_lock
    from model.data import write_split_digits

    settings = get_settings()
    write_split_digits(settings.data_dir)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with maintenance_lock("test:recovery", settings.lock_file):
        proc = _cli(["--task-id", "task_0", "--train-config", '{"epochs": 1}'], env)
    assert proc.returncode == REFUSED_EXIT, proc.stderr
    refused = proc.stderr.strip().splitlines()[-1]
    assert refused.startswith("refused: maintenance lock") and "disaster recovery" in refused

    op = docker_training.build_docker_training_operator("train_container", cl_task_id="task_0")

    def container_exits(code: int, logs: list):
        def execute(self, context):
            raise DockerContainerFailedException(
                f"Docker container failed: {{'StatusCode': {code}}}", logs=logs
            )

        return execute

    monkeypatch.setattr(
        DockerOperator, "execute", container_exits(REFUSED_EXIT, [b"epoch 0", refused.encode()])
    )
    with pytest.raises(AirflowFailException, match="^refused: maintenance lock"):
        op.execute({})
    monkeypatch.setattr(DockerOperator, "execute", container_exits(1, [b"Traceback ..."]))
    with pytest.raises(DockerContainerFailedException):  # an ordinary failure: Airflow retries it
        op.execute({})
