"""What the configuration must look like: the deployment's env file and the process environment, as models.

``DeploymentEnv`` is the ``.env`` docker-compose reads (every name appears in ``.env.example``);
``ProcessEnv`` the knobs the code reads from the environment outside ``Settings``, plus the policies this
check adds to some ``Settings`` variables. A variable the project's one ``Settings`` (or its
``ServingSettings``) defines is never re-declared here: :func:`from_settings` validates it through that very
field (type, bounds, choices and the model's own validators), and :func:`settings_problems` checks every
``Settings`` variable that is set.
"""

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings

from include.ops.config_check.values import (
    GENERATE_HINT,
    Bucket,
    Duration,
    FernetKey,
    Identifier,
    ImageTag,
    IpAddress,
    NonEmpty,
    TrainOverrides,
    Version,
    choice,
    describe,
    fail,
    fix_hint,
    integer,
    secret,
    url,
)
from include.ops.settings import ServingSettings, Settings

SETTINGS_MODELS: tuple[type[BaseSettings], ...] = (Settings, ServingSettings)


@functools.cache
def _isolated(model: type[BaseSettings]) -> type[BaseSettings]:
    """``model`` reading only the values it is given: neither the process environment nor a ``.env``."""

    class Isolated(model):  # type: ignore[valid-type, misc]
        @classmethod
        def settings_customise_sources(
            cls, settings_cls: Any, init_settings: Any, **_: Any
        ) -> tuple[Any, ...]:
            """Only the init arguments."""
            return (init_settings,)

    Isolated.__name__ = Isolated.__qualname__ = model.__name__
    return Isolated


def env_names(model: type[BaseSettings]) -> dict[str, str]:
    """``{env var: field name}`` of a settings model (nested settings models left out)."""
    prefix = str(model.model_config.get("env_prefix") or "")
    out = {}
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            continue
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            env = next(c for c in alias.choices if isinstance(c, str) and c.isupper())
        else:
            env = alias if isinstance(alias, str) else f"{prefix}{name}".upper()
        out[env] = name
    return out


def settings_errors(model: type[BaseSettings], values: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """``{env var: (problem, fix)}`` for the ``values`` (env var -> text) ``model`` would reject."""
    fields = env_names(model)
    given = {fields[env]: value for env, value in values.items() if env in fields}
    if not given:
        return {}
    nested = {
        name: field.annotation.model_construct()
        for name, field in model.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    }
    try:
        _isolated(model)(**nested, **given)
    except ValidationError as exc:
        by_field = {name: env for env, name in fields.items()}
        out: dict[str, tuple[str, str]] = {}
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else ""
            if name in by_field:
                field = model.model_fields[name]
                hint = f"{fix_hint(field)} (include/ops/settings.py: {model.__name__}.{name})"
                out.setdefault(by_field[name], (describe(error, field), hint))
        return out
    return {}


def from_settings(model: type[BaseSettings], name: str, *extra: Any) -> Any:
    """A ``str`` checked by ``model``'s field ``name`` first, then by the ``extra`` rules (``Annotated`` str types)."""
    env = next(env for env, field in env_names(model).items() if field == name)

    def check(value: str) -> str:
        problem = settings_errors(model, {env: value}).get(env)
        if problem:
            fail(problem[0])
        return value

    rules = [item for rule in extra for item in getattr(rule, "__metadata__", (rule,))]
    return Annotated[str, AfterValidator(check), *rules]


def settings_dir_vars() -> tuple[str, ...]:
    """Env vars of the ``Settings`` folders (``*_dir`` paths): each must be a folder, not a file."""
    return tuple(
        env
        for env, name in env_names(Settings).items()
        if name.endswith("_dir") and Settings.model_fields[name].annotation is Path
    )


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_DB_SCHEMES = ("postgresql+psycopg2", "postgresql+asyncpg", "mysql+mysqldb", "sqlite")
_TRACKING_SCHEMES = (
    "http",
    "https",
    "sqlite",
    "postgresql",
    "postgresql+psycopg2",
    "mysql",
    "file",
    "databricks",
)
_SPEC = ConfigDict(extra="ignore", frozen=True)


class DeploymentEnv(BaseModel):
    """The deployment's env file (``.env`` for docker-compose.yml); ``description`` = how to fix a bad value."""

    model_config = _SPEC

    ENVIRONMENT: choice("production", "staging", "development") = Field(
        description="production|staging|development"
    )
    LOG_LEVEL: choice(*_LOG_LEVELS, case=True) = Field(description=f"one of {', '.join(_LOG_LEVELS)}")
    ENABLE_METRICS: choice("true", "false") = Field(description="true or false")
    CT_IMAGE_REGISTRY: NonEmpty = Field(description="registry/namespace of the images")
    CT_IMAGE_TAG: ImageTag = Field(description="the release tag to deploy, e.g. 1.4.0")
    CT_PREVIOUS_IMAGE_TAG: ImageTag = Field(
        description="the release before CT_IMAGE_TAG (used by docker-compose.rollback.yml)"
    )
    CT_BIND_ADDRESS: IpAddress = Field(description="127.0.0.1 (private) or the host address to publish on")
    AIRFLOW_UID: integer(0, 2**31 - 1) = Field(
        description="the uid owning the volumes, e.g. `id -u` or 50000"
    )
    TORCH_CUDA_INDEX_URL: url("https", "http") = Field(
        description="a PyTorch wheel index, e.g. .../whl/cu128"
    )
    POSTGRES_USER: Identifier = Field(description="a database user name")
    POSTGRES_PASSWORD: secret() = Field(description=GENERATE_HINT)
    POSTGRES_DB: Identifier = Field(description="a database name")
    AIRFLOW_DB: Identifier = Field(description="a database name")
    MLFLOW_DB: Identifier = Field(description="a database name")
    REDIS_PASSWORD: secret() = Field(description=GENERATE_HINT)
    AIRFLOW_FERNET_KEY: FernetKey = Field(
        description="run `make deploy-env`, or `python -c 'from cryptography.fernet "
        "import Fernet; print(Fernet.generate_key().decode())'`"
    )
    AIRFLOW_JWT_SECRET: secret() = Field(description=GENERATE_HINT)
    AIRFLOW_API_SECRET_KEY: secret() = Field(description=GENERATE_HINT)
    AIRFLOW_ADMIN_USER: Identifier = Field(description="a user name")
    AIRFLOW_ADMIN_PASSWORD: secret(12, url_safe=False) = Field(description=GENERATE_HINT)
    AIRFLOW_API_WORKERS: integer(1, 64) = Field(description="about one per core")
    AIRFLOW_WORKER_CONCURRENCY: integer(1, 256) = Field(description="task slots per CPU worker")
    AIRFLOW_GPU_WORKER_CONCURRENCY: integer(1, 64) = Field(description="1 = one training per GPU host")
    CT_TRAINING_QUEUE: from_settings(Settings, "training_queue", Identifier) = Field(
        description="default, or gpu with the gpu profile"
    )
    CT_TRAINING_BACKEND: from_settings(Settings, "training_backend") = Field(
        description="inprocess or docker"
    )
    MINIO_ROOT_USER: Annotated[str, Field(min_length=3)] = Field(description="an access key name")
    MINIO_ROOT_PASSWORD: secret() = Field(description=GENERATE_HINT)
    MLFLOW_BUCKET: Bucket = Field(description="a valid S3 bucket name")
    CT_BACKUP_BUCKET: Bucket = Field(description="a valid S3 bucket name")
    MLFLOW_ALLOWED_HOSTS: NonEmpty = Field(description="comma-separated host[:port]")
    CT_MLFLOW_UI_URL: url("http", "https") = Field(
        description="the MLflow UI's URL, e.g. http://localhost:5000"
    )
    CT_API_TOKEN: from_settings(ServingSettings, "api_token", secret(24)) = Field(description=GENERATE_HINT)
    GRAFANA_ADMIN_USER: Identifier = Field(description="a user name")
    GRAFANA_ADMIN_PASSWORD: secret(12, url_safe=False) = Field(description=GENERATE_HINT)
    PROMETHEUS_RETENTION: Duration = Field(description="a Prometheus duration such as 15d")
    PUSHGATEWAY_URL: url("http", "https") = Field(description="http://pushgateway:9091 in compose")
    ELASTIC_VERSION: Version = Field(description="e.g. 8.18.3")
    ES_JAVA_OPTS: str | None = Field(None, description="JVM options, e.g. -Xms1g -Xmx1g")
    LS_JAVA_OPTS: str | None = Field(None, description="JVM options, e.g. -Xms256m -Xmx256m")


class ProcessEnv(BaseModel):
    """Knobs read from the process environment beyond ``Settings``' own rules (each checked only when set)."""

    model_config = _SPEC

    MLFLOW_TRACKING_URI: (
        from_settings(Settings, "mlflow_tracking_uri", url(*_TRACKING_SCHEMES, host=False)) | None
    ) = Field(None, description="http://mlflow:5000 in compose, sqlite:///var/mlflow/mlflow.db embedded")
    PUSHGATEWAY_URL: url("http", "https") | None = Field(None, description="e.g. http://pushgateway:9091")
    CT_TRAINING_BACKEND: from_settings(Settings, "training_backend") | None = Field(
        None, description="inprocess or docker"
    )
    CT_TRAINING_QUEUE: from_settings(Settings, "training_queue", Identifier) | None = Field(
        None, description="a Celery queue name"
    )
    CT_TRAIN_OVERRIDES: TrainOverrides | None = Field(None, description="a JSON object of TrainConfig fields")
    CT_DOCKER_GPU_COUNT: integer(-1, 64) | None = Field(None, description="-1 (all) or the number of GPUs")
    CT_DOCKER_URL: url("unix", "tcp", "http", "https", "ssh", host=False) | None = Field(
        None, description="e.g. unix://var/run/docker.sock"
    )
    CT_SERVING_PORT: from_settings(ServingSettings, "port") | None = Field(None, description="a TCP port")
    CT_API_TOKEN: from_settings(ServingSettings, "api_token", secret(24)) | None = Field(
        None, description=GENERATE_HINT
    )
    AIRFLOW__DATABASE__SQL_ALCHEMY_CONN: url(*_DB_SCHEMES, host=False) | None = Field(
        None,
        description="name the driver: postgresql+psycopg2://... (a bare postgresql:// picks psycopg 3, "
        "not installed)",
    )
    AIRFLOW__CELERY__RESULT_BACKEND: (
        url("db+postgresql+psycopg2", "db+mysql+mysqldb", "redis", "rediss", host=False) | None
    ) = Field(None, description="db+postgresql+psycopg2://user:pass@host/db (the driver must be named)")
    AIRFLOW__CELERY__BROKER_URL: url("redis", "rediss", "amqp", "amqps", "sqla+postgresql") | None = Field(
        None, description="redis://:password@redis:6379/0"
    )


def model_errors(model: type[BaseModel], values: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """``(variable, problem, fix)`` for every value of ``values`` the spec ``model`` rejects, in field order."""
    try:
        model.model_validate(dict(values))
    except ValidationError as exc:
        out = []
        for error in exc.errors():
            name = str(error["loc"][0])
            field = model.model_fields[name]
            out.append((name, describe(error, field), field.description or fix_hint(field)))
        return out
    return []
