"""Where the training task runs: in the Airflow worker's own process, or in a GPU container (DockerOperator).

Selected by configuration, never by code changes:

- ``CT_TRAINING_BACKEND``: ``inprocess`` (default; the worker trains, on its GPU when it has one) or ``docker``
  (the worker starts ``CT_TRAINING_IMAGE`` with every GPU of its host and waits for it).
- ``CT_TRAINING_QUEUE``: the Celery queue of the training task (``gpu`` routes it to the GPU workers).
- ``CT_TRAINING_EXECUTOR``: the executor of the training task on multi-executor deployments (else default).

The container runs ``python -m include.ops.train_cli --task-id X --train-config JSON``; its last stdout line is
the ``LearnResult`` JSON, which the DockerOperator pushes as the task's XCom. The container gets paths only:
no tracking URI, database URL or key ever reaches its environment (they may carry credentials).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.ops.settings import Settings, get_settings

if TYPE_CHECKING:  # the docker provider is imported only when a docker backend is actually built
    from airflow.providers.docker.operators.docker import DockerOperator

BACKENDS = ("inprocess", "docker")
DEFAULT_BACKEND = "inprocess"
DEFAULT_QUEUE = "default"
DEFAULT_IMAGE = "continual-transformer/app:latest"  # docker/app.Dockerfile: CUDA 12 torch + the project
DEFAULT_DOCKER_URL = "unix://var/run/docker.sock"

# Where the container sees the project's state; the host side comes from settings or CT_DOCKER_HOST_*.
CONTAINER_ROOT = "/opt/ct"
CONTAINER_DATA_DIR = f"{CONTAINER_ROOT}/var/data"
CONTAINER_VALIDATED_DIR = f"{CONTAINER_ROOT}/var/validated"
CONTAINER_STATE_DIR = f"{CONTAINER_ROOT}/var/state"
CONTAINER_LOG_DIR = "/var/log/continual-transformer"

# Knobs copied verbatim into the container when set; none of them can hold a credential.
_PASSTHROUGH_ENV = ("CT_TRAIN_OVERRIDES", "CT_LOG_LEVEL", "LOG_LEVEL", "ENVIRONMENT", "CUDA_VISIBLE_DEVICES")


def training_backend() -> str:
    """Return ``CT_TRAINING_BACKEND`` (``inprocess`` when unset); ValueError naming the choices otherwise."""
    value = os.environ.get("CT_TRAINING_BACKEND", DEFAULT_BACKEND).strip().lower() or DEFAULT_BACKEND
    if value not in BACKENDS:
        raise ValueError(f"CT_TRAINING_BACKEND must be one of {BACKENDS}, got {value!r}")
    return value


def training_queue() -> str:
    """Return the Celery queue of the training task: ``CT_TRAINING_QUEUE`` or ``default``."""
    return os.environ.get("CT_TRAINING_QUEUE", DEFAULT_QUEUE).strip() or DEFAULT_QUEUE


def training_executor() -> str | None:
    """Executor of the training task: ``CT_TRAINING_EXECUTOR`` (e.g. ``CeleryExecutor``), None = the default.

    Set on multi-executor deployments (deploy/helm/values-kubernetes.yaml) so the training task goes to the
    Celery ``gpu`` queue while every other task runs as its own Kubernetes pod.
    """
    return os.environ.get("CT_TRAINING_EXECUTOR", "").strip() or None


def _host_dir(env: str, default: Path) -> str:
    """Host-side path of a bind mount: the env override (worker itself in a container) or the setting."""
    return os.environ.get(env) or str(default)


def _gpu_count() -> int:
    raw = os.environ.get("CT_DOCKER_GPU_COUNT", "-1")
    try:
        count = int(raw)
    except ValueError as exc:
        raise ValueError(f"CT_DOCKER_GPU_COUNT must be an integer (-1 = all GPUs), got {raw!r}") from exc
    if count == 0 or count < -1:
        raise ValueError(f"CT_DOCKER_GPU_COUNT must be -1 (all) or >= 1, got {count}")
    return count


def _train_config_json(conf: Mapping[str, Any] | str | None) -> str:
    """The ``--train-config`` argument: a JSON object, or a Jinja template string passed through verbatim."""
    if conf is None:
        return "{}"
    if isinstance(conf, str):
        return conf
    return json.dumps({k: v for k, v in conf.items() if v is not None}, sort_keys=True)


def docker_training_operator_kwargs(
    task_id: str, conf: Mapping[str, Any] | str | None = None, settings: Settings | None = None
) -> dict[str, Any]:
    """DockerOperator keyword arguments that learn task ``task_id`` in a GPU container.

    ``task_id`` is the continual-learning task (``task_0``); it and ``conf`` may be Jinja templates (the
    operator renders ``command``). The result holds image, command, a DeviceRequest for the GPUs, bind mounts
    for data (read-only), state and logs, and an environment of paths only (no secrets). No Airflow ``task_id``.
    """
    from docker.types import DeviceRequest, Mount

    settings = settings or get_settings()
    environment = {
        "CT_DATA_DIR": CONTAINER_DATA_DIR,
        "CT_VALIDATED_DIR": CONTAINER_VALIDATED_DIR,
        "CT_STATE_DIR": CONTAINER_STATE_DIR,
        "CT_LOG_DIR": CONTAINER_LOG_DIR,
        "CT_TRAINING_BACKEND": "inprocess",  # inside the container training is in-process, on its GPU
        "PYTHONUNBUFFERED": "1",
    }
    environment.update({k: os.environ[k] for k in _PASSTHROUGH_ENV if os.environ.get(k)})
    mounts = [
        Mount(
            CONTAINER_DATA_DIR,
            _host_dir("CT_DOCKER_HOST_DATA_DIR", settings.data_dir),
            "bind",
            read_only=True,
        ),
        Mount(
            CONTAINER_VALIDATED_DIR,
            _host_dir("CT_DOCKER_HOST_VALIDATED_DIR", settings.validated_dir),
            "bind",
            read_only=True,
        ),
        Mount(CONTAINER_STATE_DIR, _host_dir("CT_DOCKER_HOST_STATE_DIR", settings.state_dir), "bind"),
        Mount(CONTAINER_LOG_DIR, _host_dir("CT_DOCKER_HOST_LOG_DIR", settings.log_dir), "bind"),
    ]
    kwargs: dict[str, Any] = {
        "image": os.environ.get("CT_TRAINING_IMAGE", DEFAULT_IMAGE),
        "command": [
            "python",
            "-m",
            "include.ops.train_cli",
            "--task-id",
            task_id,
            "--train-config",
            _train_config_json(conf),
        ],
        "docker_url": os.environ.get("CT_DOCKER_URL", DEFAULT_DOCKER_URL),
        "device_requests": [DeviceRequest(count=_gpu_count(), capabilities=[["gpu"]])],
        "mounts": mounts,
        "environment": environment,
        "working_dir": CONTAINER_ROOT,
        "mount_tmp_dir": False,  # the worker may itself be a container: its tmp dir is no host path
        "shm_size": 1 << 30,  # DataLoader worker processes share batches through /dev/shm
        "auto_remove": "success",  # keep a failed container for `docker logs`
        "do_xcom_push": True,  # the last stdout line, the LearnResult JSON, becomes the XCom
        "xcom_all": False,
        "force_pull": os.environ.get("CT_TRAINING_IMAGE_PULL", "false").lower() in ("1", "true", "yes"),
    }
    if os.environ.get("CT_DOCKER_NETWORK"):
        kwargs["network_mode"] = os.environ["CT_DOCKER_NETWORK"]
    return kwargs


def build_docker_training_operator(
    task_id: str,
    *,
    cl_task_id: str,
    conf: Mapping[str, Any] | str | None = None,
    settings: Settings | None = None,
    **operator_kwargs: Any,
) -> DockerOperator:
    """Return the DockerOperator (Airflow ``task_id``) that learns ``cl_task_id`` in a GPU container.

    ``operator_kwargs`` (queue, retries, pool, ...) override the defaults; the queue defaults to
    ``training_queue()`` so the container is started by a worker on a GPU host.
    """
    from airflow.providers.docker.operators.docker import DockerOperator

    kwargs = docker_training_operator_kwargs(cl_task_id, conf, settings)
    kwargs.setdefault("queue", training_queue())
    kwargs.update(operator_kwargs)
    return DockerOperator(task_id=task_id, **kwargs)
