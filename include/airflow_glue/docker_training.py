"""The DockerOperator that learns a task in a GPU container (``CT_TRAINING_BACKEND=docker``).

Selected by configuration (``include.ops.settings``), never by code changes:

- ``CT_TRAINING_BACKEND``: ``inprocess`` (default; the worker trains, on its GPU when it has one) or ``docker``
  (the worker starts ``CT_TRAINING_IMAGE`` with every GPU of its host and waits for it).
- ``CT_TRAINING_QUEUE`` / ``CT_TRAINING_EXECUTOR``: where the training task runs
  (``include.ops.training.training_route``), for both backends.

The container runs ``python -m include.ops.train_cli --task-id X --train-config JSON`` (``learn_one``); its last
stdout line is the ``LearnResult`` JSON, which the DockerOperator pushes as the task's XCom. The container gets
paths only: no tracking URI, database URL or key ever reaches its environment (they may carry credentials).
The worker checks the maintenance lock right before it starts the container (``pre_execute``), as the
in-process path does before it trains.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.ops.settings import Settings, get_settings
from include.ops.training import check_lock, training_route

if TYPE_CHECKING:  # the docker provider is imported only when a docker backend is actually built
    from airflow.providers.docker.operators.docker import DockerOperator

DEFAULT_IMAGE: str = Settings.model_fields["training_image"].default
DEFAULT_DOCKER_URL: str = Settings.model_fields["docker_url"].default

# Where the container sees the project's state; the host side is the setting, or Settings.docker_host_*.
CONTAINER_ROOT = "/opt/ct"
CONTAINER_DATA_DIR = f"{CONTAINER_ROOT}/var/data"
CONTAINER_VALIDATED_DIR = f"{CONTAINER_ROOT}/var/validated"
CONTAINER_STATE_DIR = f"{CONTAINER_ROOT}/var/state"
CONTAINER_LOG_DIR = "/var/log/continual-transformer"

# Knobs copied verbatim into the container when set; none of them can hold a credential.
_PASSTHROUGH_ENV = ("CT_TRAIN_OVERRIDES", "CT_LOG_LEVEL", "LOG_LEVEL", "ENVIRONMENT", "CUDA_VISIBLE_DEVICES")


def _host_dir(override: str | None, default: Path) -> str:
    """Host-side path of a bind mount: the ``docker_host_*`` override (worker in a container) or the setting."""
    return override or str(default)


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
            _host_dir(settings.docker_host_data_dir, settings.data_dir),
            "bind",
            read_only=True,
        ),
        Mount(
            CONTAINER_VALIDATED_DIR,
            _host_dir(settings.docker_host_validated_dir, settings.validated_dir),
            "bind",
            read_only=True,
        ),
        Mount(CONTAINER_STATE_DIR, _host_dir(settings.docker_host_state_dir, settings.state_dir), "bind"),
        Mount(CONTAINER_LOG_DIR, _host_dir(settings.docker_host_log_dir, settings.log_dir), "bind"),
    ]
    kwargs: dict[str, Any] = {
        "image": settings.training_image,
        "command": [
            "python",
            "-m",
            "include.ops.train_cli",
            "--task-id",
            task_id,
            "--train-config",
            _train_config_json(conf),
        ],
        "docker_url": settings.docker_url,
        "device_requests": [DeviceRequest(count=settings.docker_gpu_count, capabilities=[["gpu"]])],
        "mounts": mounts,
        "environment": environment,
        "working_dir": CONTAINER_ROOT,
        "mount_tmp_dir": False,  # the worker may itself be a container: its tmp dir is no host path
        "shm_size": 1 << 30,  # DataLoader worker processes share batches through /dev/shm
        "auto_remove": "success",  # keep a failed container for `docker logs`
        "do_xcom_push": True,  # the last stdout line, the LearnResult JSON, becomes the XCom
        "xcom_all": False,
        "force_pull": settings.training_image_pull,
    }
    if settings.docker_network:
        kwargs["network_mode"] = settings.docker_network
    return kwargs


def refuse_while_locked(context: Any) -> None:
    """``pre_execute`` of the container task: fails without retry while the maintenance lock is held."""
    from include.airflow_glue.refusals import fail_on_refusal

    with fail_on_refusal():
        check_lock(get_settings())


def build_docker_training_operator(
    task_id: str,
    *,
    cl_task_id: str,
    conf: Mapping[str, Any] | str | None = None,
    settings: Settings | None = None,
    **operator_kwargs: Any,
) -> DockerOperator:
    """Return the DockerOperator (Airflow ``task_id``) that learns ``cl_task_id`` in a GPU container.

    ``operator_kwargs`` (queue, retries, pool, ...) override the defaults; queue and executor default to
    ``training_route(settings)`` so the container is started by a worker on a GPU host.
    """
    from include.airflow_glue.training_container import TrainingContainerOperator

    settings = settings or get_settings()
    kwargs = docker_training_operator_kwargs(cl_task_id, conf, settings)
    kwargs.update(training_route(settings))
    kwargs["pre_execute"] = refuse_while_locked
    kwargs.update(operator_kwargs)
    return TrainingContainerOperator(task_id=task_id, **kwargs)
