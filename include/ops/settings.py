"""The one ``Settings`` of the project: every path, endpoint, threshold and switch, read from the environment.

Precedence, resolved once per use (see ``docs/architecture.md``):
DAG param set in the trigger conf > operator override (``POST /api/config/*``) > environment > default here.
Only this module reads the project's ``CT_*`` settings; everything else asks ``get_settings()``.
Backups copy the values of these fields' env vars and nothing else (``include/ops/backup/config.py``): a field
whose value must never leave the live configuration is typed ``SecretStr`` or marked ``SECRET_FIELD``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from model.config import DEFAULT_CLASS_CAPACITY, DEFAULT_PARAM_BUDGET

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# The runbook's thresholds, defined here and nowhere else.
RETENTION_THRESHOLD = 0.8  # runbook: knowledge retention < 0.8 pages someone
ACCURACY_FLOOR = 0.9  # the newest task must reach this test accuracy for `champion`

TrainingBackend = Literal["inprocess", "docker"]
# json_schema_extra of a field whose value is secret: backups name it, never copy it
SECRET_FIELD: dict[str, Any] = {"secret": True}


class ServingSettings(BaseSettings):
    """How the app serves: network, batching, thresholds of the health checks, auth (``CT_SERVING_*``)."""

    model_config = SettingsConfigDict(env_prefix="CT_SERVING_", extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    api_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("CT_API_TOKEN"), json_schema_extra=SECRET_FIELD
    )
    batching: bool = True  # False = one forward per request (the naive baseline of the benchmark)
    max_batch_size: int = Field(32, ge=1, le=4096)  # runbook "Batching Strategies" default
    batch_timeout_ms: float = Field(10.0, ge=0.0, le=1000.0)  # wait at most this long to fill a batch
    slow_inference_ms: float = Field(250.0, gt=0.0)  # a request slower than this logs "slow inference"
    device: str = "auto"  # "auto" = CUDA when available, else CPU
    tensorrt: bool = False  # compile the served model with Torch-TensorRT (optional; CUDA + torch-tensorrt)
    # intra-op threads: the batcher runs one forward at a time, and a model this small gains nothing from
    # more threads that fight the event loop and the clients for cores (measured: 1 thread is 8x faster
    # than 2 on a loaded 2-core host). 0 keeps torch's default.
    torch_threads: int = Field(1, ge=0)
    registry_timeout_s: float = Field(3.0, gt=0.0)
    model_max_age_hours: float = Field(24.0 * 7, gt=0.0)  # older champion -> degraded
    degraded_pct: float = Field(90.0, gt=0.0, le=100.0)  # CPU/memory/disk/GPU use above this -> degraded
    unhealthy_pct: float = Field(98.0, gt=0.0, le=100.0)  # memory/disk use above this -> unhealthy
    log_component: str = "app"  # JSON log file name under settings.log_dir
    # hostile input and backpressure (issue 13)
    max_body_bytes: int = Field(1_048_576, ge=1024)  # bytes received per request (chunked too); more -> 413
    max_rows: int = Field(256, ge=1, le=4096)  # images per /predict request; more -> 422
    # bodies up to this size parse on the event loop (tens of microseconds: a thread hop costs more); larger
    # ones in a worker thread, so a big body never stalls /health
    parse_inline_bytes: int = Field(16 * 1024, ge=0)
    max_queue: int = Field(64, ge=1)  # requests waiting for the batcher; full -> 503 + Retry-After
    retry_after_s: int = Field(1, ge=1)  # the Retry-After of a shed request
    # served-checkpoint verification and following the registry's champion
    verify_hash_interval_s: float = Field(300.0, ge=0.0)  # re-hash the served file this often; 0: each probe
    champion_poll_s: float = Field(30.0, ge=0.0)  # look up the champion alias this often (0 = never)
    bench_noop: bool = False  # mount POST /bench/noop (a constant answer, same middleware): the bench ceiling


_APPROVAL_WORDS = {"true": "on", "yes": "on", "1": "on", "false": "off", "no": "off", "0": "off", "": "off"}
_DERIVED_DIRS = {
    "data_dir": ("data", "split_digits"),
    "landing_dir": ("landing",),
    "validated_dir": ("validated",),
    "quarantine_dir": ("quarantine",),
    "state_dir": ("state",),
    "backup_dir": ("backups",),
    "log_dir": ("logs",),
    "reports_dir": ("reports",),
}
# the environment variables of every location derived from CT_VAR_DIR (unset them to move a whole state)
VAR_DERIVED_ENV = tuple(
    f"CT_{name.upper()}" for name in (*_DERIVED_DIRS, "lock_file", "mlflow_artifacts_dir")
)


class Settings(BaseSettings):
    """Every location, endpoint, threshold and switch the pipeline uses; each has one env var.

    Paths left unset are derived from ``var_dir`` at validation, so every path attribute is a resolved ``Path``.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    var_dir: Path = Field(PROJECT_ROOT / "var", validation_alias=AliasChoices("CT_VAR_DIR", "var_dir"))
    data_dir: Path | None = Field(
        None, validation_alias=AliasChoices("CT_DATA_DIR", "data_dir")
    )  # source stream
    landing_dir: Path | None = Field(None, validation_alias=AliasChoices("CT_LANDING_DIR", "landing_dir"))
    validated_dir: Path | None = Field(
        None, validation_alias=AliasChoices("CT_VALIDATED_DIR", "validated_dir")
    )
    quarantine_dir: Path | None = Field(
        None, validation_alias=AliasChoices("CT_QUARANTINE_DIR", "quarantine_dir")
    )
    state_dir: Path | None = Field(None, validation_alias=AliasChoices("CT_STATE_DIR", "state_dir"))
    backup_dir: Path | None = Field(None, validation_alias=AliasChoices("CT_BACKUP_DIR", "backup_dir"))
    log_dir: Path | None = Field(None, validation_alias=AliasChoices("CT_LOG_DIR", "log_dir"))
    reports_dir: Path | None = Field(None, validation_alias=AliasChoices("CT_REPORTS_DIR", "reports_dir"))
    lock_file: Path | None = Field(None, validation_alias=AliasChoices("CT_LOCK_FILE", "lock_file"))
    mlflow_tracking_uri: str | None = Field(
        None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "mlflow_tracking_uri")
    )
    mlflow_experiment: str = Field(
        "continual-tiny-transformer",
        validation_alias=AliasChoices("CT_MLFLOW_EXPERIMENT", "mlflow_experiment"),
    )
    registered_model: str = Field(
        "continual-tiny-transformer", validation_alias=AliasChoices("CT_REGISTERED_MODEL", "registered_model")
    )
    # gate thresholds (a DAG param set in the trigger conf, then an operator override, beat these)
    retention_threshold: float = Field(
        RETENTION_THRESHOLD,
        ge=0.0,
        le=1.0,
        validation_alias=AliasChoices("CT_RETENTION_THRESHOLD", "retention_threshold"),
    )
    accuracy_floor: float = Field(
        ACCURACY_FLOOR, ge=0.0, le=1.0, validation_alias=AliasChoices("CT_ACCURACY_FLOOR", "accuracy_floor")
    )
    # a stream's capacity: the classes of the model's one head and its parameter budget; recorded in the
    # learner state when the stream's first manifest is validated, then fixed (a checkpoint's wins)
    class_capacity: int = Field(
        DEFAULT_CLASS_CAPACITY, ge=1, validation_alias=AliasChoices("CT_CLASS_CAPACITY", "class_capacity")
    )
    param_budget: int = Field(
        DEFAULT_PARAM_BUDGET, ge=1, validation_alias=AliasChoices("CT_PARAM_BUDGET", "param_budget")
    )
    # where and how the training task runs
    training_backend: TrainingBackend = Field(
        "inprocess", validation_alias=AliasChoices("CT_TRAINING_BACKEND", "training_backend")
    )
    training_executor: str | None = Field(
        None, validation_alias=AliasChoices("CT_TRAINING_EXECUTOR", "training_executor")
    )
    training_queue: str | None = Field(
        None, validation_alias=AliasChoices("CT_TRAINING_QUEUE", "training_queue")
    )
    # how long a training waits for another one on the same state dir (the training lock) before failing
    training_lock_timeout_s: float = Field(
        60.0, ge=0, validation_alias=AliasChoices("CT_TRAINING_LOCK_TIMEOUT_S", "training_lock_timeout_s")
    )
    # a continual_training run still going this long after it was queued notifies the webhook (a DeadlineAlert,
    # include/airflow_glue/deadlines.py); 0 = no deadline. Read when the DAG file is parsed.
    training_deadline_minutes: float = Field(
        0.0,  # off on the embedded defaults: Airflow 3.3.2's dag.test() (the demo, the tests) cannot run a DAG
        # that carries a DeadlineAlert (its deadline_alert query fails); the compose stack sets 120
        ge=0,
        le=7 * 24 * 60,
        validation_alias=AliasChoices("CT_TRAINING_DEADLINE_MINUTES", "training_deadline_minutes"),
    )
    # crash tests only: SIGKILL the training at this step (model/faults.py reads CT_FAULT_AT itself, the one
    # exception to "settings live here": model/ cannot import this module; listed here so it is documented)
    fault_at: str | None = Field(None, validation_alias=AliasChoices("CT_FAULT_AT", "fault_at"))
    # data validation (None = the default in include/ops/validation/config.py)
    gx_project_dir: Path | None = Field(None, validation_alias="CT_GX_PROJECT_DIR")
    gx_data_docs_dir: Path | None = Field(None, validation_alias="CT_GX_DATA_DOCS_DIR")
    gx_data_docs: bool = Field(True, validation_alias="CT_GX_DATA_DOCS")  # build GX data docs per file
    validation_max_bytes: int | None = Field(None, gt=0, validation_alias="CT_VALIDATION_MAX_BYTES")
    # share of a batch's rows that may repeat images of another validated task (row index, issue 12)
    validation_max_duplicate_share: float = Field(
        0.01, ge=0.0, le=1.0, validation_alias="CT_VALIDATION_MAX_DUPLICATE_SHARE"
    )
    # class-agnostic image statistics (include/ops/validation/image_stats.py holds the measured values)
    validation_image_mode: Literal["fail", "warn", "off"] = Field(
        "fail", validation_alias="CT_VALIDATION_IMAGE_MODE"
    )
    validation_image_histogram_max: float = Field(
        0.22, ge=0, validation_alias="CT_VALIDATION_IMAGE_HISTOGRAM_MAX"
    )
    validation_image_background_delta_max: float = Field(
        0.15, ge=0, validation_alias="CT_VALIDATION_IMAGE_BACKGROUND_DELTA_MAX"
    )
    validation_image_ink_delta_max: float = Field(
        0.15, ge=0, validation_alias="CT_VALIDATION_IMAGE_INK_DELTA_MAX"
    )
    validation_image_corr_drop_max: float = Field(0.15, validation_alias="CT_VALIDATION_IMAGE_CORR_DROP_MAX")
    validation_image_profile_max: float = Field(0.4, ge=0, validation_alias="CT_VALIDATION_IMAGE_PROFILE_MAX")
    # the first batch of a stream (nothing to compare with) is held to absolute bounds
    validation_image_background_min: float = Field(0.3, validation_alias="CT_VALIDATION_IMAGE_BACKGROUND_MIN")
    validation_image_background_max: float = Field(
        0.75, validation_alias="CT_VALIDATION_IMAGE_BACKGROUND_MAX"
    )
    validation_image_ink_min: float = Field(0.45, validation_alias="CT_VALIDATION_IMAGE_INK_MIN")
    validation_image_ink_max: float = Field(0.8, validation_alias="CT_VALIDATION_IMAGE_INK_MAX")
    validation_image_corr_min: float = Field(0.1, validation_alias="CT_VALIDATION_IMAGE_CORR_MIN")
    validation_image_border_max: float = Field(0.1, validation_alias="CT_VALIDATION_IMAGE_BORDER_MAX")
    # class balance of a batch (suite parameters): 1 lets a stream bring one class per task
    validation_min_classes_per_task: int = Field(
        2, ge=1, validation_alias="CT_VALIDATION_MIN_CLASSES_PER_TASK"
    )
    # the most frequent class's share of a batch's rows; a batch of k classes is held to max(this, 1/k)
    validation_max_class_share: float = Field(
        0.8, gt=0.0, le=1.0, validation_alias="CT_VALIDATION_MAX_CLASS_SHARE"
    )
    landing_s3_conn_id: str = Field("s3", validation_alias="CT_S3_CONN_ID")  # its existence selects S3
    # event-driven ingestion (include/airflow_glue/landing_trigger.py): the triggerer's scan of the local
    # landing folder; with a queue URL, S3 event notifications through that SQS queue instead
    landing_watch: bool = Field(True, validation_alias="CT_LANDING_WATCH")  # false: the poll alone
    landing_watch_interval_s: float = Field(2.0, gt=0, validation_alias="CT_LANDING_WATCH_INTERVAL_S")
    validation_poll_cron: str = Field("*/10 * * * *", validation_alias="CT_VALIDATION_POLL_CRON")  # fallback
    landing_sqs_queue_url: str | None = Field(None, validation_alias="CT_LANDING_SQS_QUEUE_URL")
    # human approval of a promotion (include/ops/approval.py): off = a failed gate fails the run (dag.test,
    # CI, the demo); on = a failed gate waits for a decision in the Airflow UI; always = every promotion waits
    promotion_approval: Literal["off", "on", "always"] = Field(
        "off", validation_alias=AliasChoices("CT_PROMOTION_APPROVAL", "promotion_approval")
    )
    promotion_approval_timeout_h: float = Field(
        24.0, gt=0, validation_alias="CT_PROMOTION_APPROVAL_TIMEOUT_H"
    )  # no decision by then: rejected, recorded as a timeout
    landing_s3_uri: str = Field("s3://continual-transformer/landing/", validation_alias="CT_LANDING_S3_URI")
    quarantine_s3_uri: str = Field(
        "s3://continual-transformer/quarantine/", validation_alias="CT_QUARANTINE_S3_URI"
    )
    # links and endpoints the checks and views use
    mlflow_ui_url: str = Field(
        "http://127.0.0.1:5000", validation_alias=AliasChoices("CT_MLFLOW_UI_URL", "mlflow_ui_url")
    )  # base of the MLflow UI links (plugin view, CLI)
    app_url: str = Field(
        "http://127.0.0.1:8000", validation_alias=AliasChoices("CT_APP_URL", "app_url")
    )  # the serving app, probed by the maintenance DAGs
    airflow_url: str | None = Field(
        None, validation_alias=AliasChoices("CT_AIRFLOW_URL", "airflow_url")
    )  # api-server base URL; None = its health is not probed
    vuln_probe_url: str | None = Field(
        None, validation_alias=AliasChoices("CT_VULN_PROBE_URL", "vuln_probe_url")
    )  # None = the vulnerability service's own URL
    # maintenance
    disk_max_used_pct: float = Field(
        85.0, gt=0.0, le=100.0, validation_alias=AliasChoices("CT_DISK_MAX_USED_PCT", "disk_max_used_pct")
    )
    # backups
    env_file: Path | None = Field(
        None, validation_alias=AliasChoices("CT_ENV_FILE", "env_file")
    )  # the operator's env file, backed up as config.env; unset = <project>/.env
    code_version: str | None = Field(
        None, validation_alias=AliasChoices("CT_CODE_VERSION", "code_version")
    )  # recorded git revision; None = read from .git
    mlflow_artifacts_dir: Path | None = Field(
        None, validation_alias=AliasChoices("CT_MLFLOW_ARTIFACTS_DIR", "mlflow_artifacts_dir")
    )  # None = artifacts/ beside the SQLite store
    backup_s3_bucket: str = Field(
        "continual-transformer-backups",
        validation_alias=AliasChoices("CT_BACKUP_S3_BUCKET", "backup_s3_bucket"),
    )
    backup_s3_prefix: str = Field(
        "continual-transformer", validation_alias=AliasChoices("CT_BACKUP_S3_PREFIX", "backup_s3_prefix")
    )  # "" = the bucket's root
    # the docker training backend (include/airflow_glue/docker_training.py)
    training_image: str = Field(
        "continual-transformer/app:latest",
        validation_alias=AliasChoices("CT_TRAINING_IMAGE", "training_image"),
    )  # docker/app.Dockerfile: CUDA 12 torch + the project
    training_image_pull: bool = Field(
        False, validation_alias=AliasChoices("CT_TRAINING_IMAGE_PULL", "training_image_pull")
    )
    docker_url: str = Field(
        "unix://var/run/docker.sock", validation_alias=AliasChoices("CT_DOCKER_URL", "docker_url")
    )
    docker_gpu_count: int = Field(
        -1, validation_alias=AliasChoices("CT_DOCKER_GPU_COUNT", "docker_gpu_count")
    )  # -1 = every GPU of the host
    docker_network: str | None = Field(
        None, validation_alias=AliasChoices("CT_DOCKER_NETWORK", "docker_network")
    )
    # host side of the container's bind mounts when the worker itself runs in a container (None = the setting)
    docker_host_data_dir: str | None = Field(
        None, validation_alias=AliasChoices("CT_DOCKER_HOST_DATA_DIR", "docker_host_data_dir")
    )
    docker_host_validated_dir: str | None = Field(
        None, validation_alias=AliasChoices("CT_DOCKER_HOST_VALIDATED_DIR", "docker_host_validated_dir")
    )
    docker_host_state_dir: str | None = Field(
        None, validation_alias=AliasChoices("CT_DOCKER_HOST_STATE_DIR", "docker_host_state_dir")
    )
    docker_host_log_dir: str | None = Field(
        None, validation_alias=AliasChoices("CT_DOCKER_HOST_LOG_DIR", "docker_host_log_dir")
    )
    serving: ServingSettings = Field(default_factory=ServingSettings)

    @field_validator("training_backend", mode="before")
    @classmethod
    def _backend(cls, value: Any) -> Any:
        """Accept ``Docker``/`` docker `` like the old reader did; empty means the default."""
        if isinstance(value, str):
            value = value.strip().lower() or "inprocess"
        return value

    @field_validator("promotion_approval", mode="before")
    @classmethod
    def _approval(cls, value: Any) -> Any:
        """``true``/``yes``/``1`` (YAML's unquoted ``on``) mean ``on``, ``false``/``no``/``0``/blank ``off``."""
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, str):
            value = value.strip().lower()
            return _APPROVAL_WORDS.get(value, value)
        return value

    @field_validator(
        "training_executor",
        "training_queue",
        "gx_project_dir",
        "gx_data_docs_dir",
        "validation_max_bytes",
        "airflow_url",
        "vuln_probe_url",
        "env_file",
        "code_version",
        "mlflow_artifacts_dir",
        "docker_network",
        "docker_host_data_dir",
        "docker_host_validated_dir",
        "docker_host_state_dir",
        "docker_host_log_dir",
        "landing_sqs_queue_url",
        mode="before",
    )
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        """An empty env var means "not set"."""
        return (value.strip() or None) if isinstance(value, str) else value

    @field_validator("app_url", "disk_max_used_pct", "backup_s3_bucket", mode="before")
    @classmethod
    def _blank_is_default(cls, value: Any, info: ValidationInfo) -> Any:
        """An empty env var means the default."""
        if isinstance(value, str) and not value.strip():
            return cls.model_fields[info.field_name].default
        return value

    @field_validator("training_image_pull", mode="before")
    @classmethod
    def _pull(cls, value: Any) -> Any:
        """Pull only for ``1``/``true``/``yes`` (any case); anything else, empty included, means no."""
        return value.lower() in ("1", "true", "yes") if isinstance(value, str) else value

    @field_validator("docker_gpu_count")
    @classmethod
    def _gpu_count(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError(f"CT_DOCKER_GPU_COUNT must be -1 (all) or >= 1, got {value}")
        return value

    @model_validator(mode="after")
    def _derive(self) -> Settings:
        """Resolve paths (``~`` and relative) and derive the unset ones from ``var_dir``."""
        var = Path(self.var_dir).expanduser().resolve()
        object.__setattr__(self, "var_dir", var)
        for name, parts in _DERIVED_DIRS.items():
            value = getattr(self, name)
            object.__setattr__(
                self, name, Path(value).expanduser().resolve() if value else var.joinpath(*parts)
            )
        lock = self.lock_file
        object.__setattr__(
            self, "lock_file", Path(lock).expanduser().resolve() if lock else var / "maintenance.lock"
        )
        env_file = self.env_file
        object.__setattr__(
            self, "env_file", Path(env_file).expanduser().resolve() if env_file else PROJECT_ROOT / ".env"
        )
        if self.mlflow_artifacts_dir:
            object.__setattr__(
                self, "mlflow_artifacts_dir", Path(self.mlflow_artifacts_dir).expanduser().resolve()
            )
        if not self.mlflow_tracking_uri:
            object.__setattr__(self, "mlflow_tracking_uri", f"sqlite:///{var / 'mlflow' / 'mlflow.db'}")
        return self

    @property
    def checkpoint_dir(self) -> Path:
        """Folder that holds the task checkpoints and their ``.sha256`` sidecars."""
        return self.state_dir / "checkpoints"

    @property
    def source_manifest(self) -> Path:
        """Manifest of the raw source stream (``data_dir``); training reads ``resolve_task_manifest``."""
        return self.data_dir / "manifest.json"

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (paths re-derived only where given)."""
        return self.model_copy(update=changes)


def get_settings() -> Settings:
    """Resolve settings from the environment; call again after changing env vars."""
    return Settings()


def get_serving_settings(**overrides: Any) -> ServingSettings:
    """Serving settings from the environment, with keyword overrides (tests, the bench)."""
    return ServingSettings(**overrides)
