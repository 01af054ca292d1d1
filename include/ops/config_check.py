"""Configuration checks (runbook "Configuration Management"): ``make check-config`` / ``make validate-config``.

Checks, each problem reported with where it is and how to fix it:

- the env file (``.env``): syntax, required variables, types and ranges, URL-safe and non-placeholder secrets,
  a valid Fernet key, enum values, connection URIs;
- the process environment's project knobs (CT_*, MLFLOW_TRACKING_URI, PUSHGATEWAY_URL, Airflow DB/Celery URIs);
- ``docker-compose.yml`` (+ the rollback overlay): ``docker-compose config -q`` with that env file, and every
  variable it uses is set or defaulted;
- Prometheus: ``promtool check config`` and ``promtool check rules``;
- DAG integrity: no import errors in the DAG folder (``DagBag``, in a subprocess with a time limit).

Also: ``generate_env`` (fill the ``change-me`` placeholders of ``.env.example`` with generated secrets),
``backup_config`` (``.env.backup.<timestamp>``) and ``apply_config`` (validate a new env file, back up the
live one, then replace it atomically). CLI: ``python -m include.ops.config_check --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from include.ops.settings import PROJECT_ROOT
from model.fsio import atomic_write_text

PLACEHOLDER = "change-me"
COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
ROLLBACK_FILE = PROJECT_ROOT / "docker-compose.rollback.yml"
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
PROMETHEUS_CONFIG = PROJECT_ROOT / "include" / "monitoring" / "prometheus.yml"
PROMETHEUS_RULES_DIR = PROJECT_ROOT / "include" / "monitoring" / "alerts"
DAGS_FOLDER = PROJECT_ROOT / "dags"
_URL_SAFE = re.compile(r"^[A-Za-z0-9._~-]*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_COMPOSE_VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


@dataclass(frozen=True)
class Problem:
    """One configuration problem: where it is, what is wrong, how to fix it."""

    where: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}\n    fix: {self.fix}"


# ---- value checks -------------------------------------------------------------------------------------


def _check_int(lo: int | None = None, hi: int | None = None) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        try:
            number = int(value)
        except ValueError:
            return f"must be an integer, got {value!r}"
        if lo is not None and number < lo or hi is not None and number > hi:
            return f"must lie in [{lo}, {hi}], got {number}"
        return None

    return check


def _check_choice(*choices: str, case: bool = False) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        probe = value if case else value.lower()
        return None if probe in choices else f"must be one of {list(choices)}, got {value!r}"

    return check


def _check_url(*schemes: str, host: bool = True) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        parts = urlsplit(value)
        if parts.scheme not in schemes:
            return f"scheme must be one of {list(schemes)}, got {parts.scheme or 'none'!r} in {_redact_url(value)!r}"
        if host and not parts.hostname:
            return f"has no host: {_redact_url(value)!r}"
        try:
            parts.port  # noqa: B018 - raises ValueError on a non-numeric or out-of-range port
        except ValueError as exc:
            return f"bad port in {_redact_url(value)!r}: {exc}"
        return None

    return check


def _check_secret(min_length: int = 16, url_safe: bool = True) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if PLACEHOLDER in value.lower():
            return "is still the .env.example placeholder"
        if len(value) < min_length:
            return f"is too short ({len(value)} characters, need >= {min_length})"
        if url_safe and not _URL_SAFE.match(value):
            return "contains characters that break the URLs it is embedded in (allowed: A-Z a-z 0-9 . _ ~ -)"
        return None

    return check


def _check_fernet(value: str) -> str | None:
    if PLACEHOLDER in value.lower():
        return "is still the .env.example placeholder"
    from cryptography.fernet import Fernet

    try:
        Fernet(value.encode())
    except (ValueError, TypeError):
        return "is not a Fernet key (32 url-safe base64-encoded bytes)"
    return None


def _check_identifier(value: str) -> str | None:
    return None if re.match(r"^[A-Za-z0-9_.-]{1,63}$", value) else f"must be a simple name, got {value!r}"


def _check_bucket(value: str) -> str | None:
    ok = re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", value)
    return None if ok else f"is not a valid S3 bucket name: {value!r} (3-63 of a-z 0-9 . -)"


def _check_duration(value: str) -> str | None:
    return (
        None if re.match(r"^(\d+(ms|s|m|h|d|w|y))+$", value) else f"is not a Prometheus duration: {value!r}"
    )


def _check_json_object(value: str) -> str | None:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        return f"is not valid JSON: {exc}"
    return None if isinstance(parsed, dict) else "must be a JSON object"


def _check_train_overrides(value: str) -> str | None:
    problem = _check_json_object(value)
    if problem:
        return problem
    from model.config import TrainConfig

    try:
        TrainConfig.from_dict(json.loads(value))
    except (ValueError, TypeError) as exc:
        return f"is not a valid TrainConfig override: {exc}"
    return None


def _check_image_tag(value: str) -> str | None:
    ok = re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", value)
    return None if ok else f"is not a valid image tag: {value!r}"


def _check_ip(value: str) -> str | None:
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        return f"must be an IP address to bind to, got {value!r}"
    return None


@dataclass(frozen=True)
class VarSpec:
    """What a variable of the env file must look like."""

    name: str
    check: Callable[[str], str | None] | None
    fix: str
    required: bool = True


_GENERATE_HINT = "run `make deploy-env` (generates it), or set a random URL-safe value of >= 16 characters"
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# The deployment's env file (.env for docker-compose.yml); every name here appears in .env.example.
ENV_FILE_SPECS: tuple[VarSpec, ...] = (
    VarSpec(
        "ENVIRONMENT", _check_choice("production", "staging", "development"), "production|staging|development"
    ),
    VarSpec("LOG_LEVEL", _check_choice(*_LOG_LEVELS, case=True), f"one of {', '.join(_LOG_LEVELS)}"),
    VarSpec("ENABLE_METRICS", _check_choice("true", "false"), "true or false"),
    VarSpec("CT_IMAGE_REGISTRY", lambda v: None if v else "is empty", "registry/namespace of the images"),
    VarSpec(
        "CT_IMAGE_TAG",
        _check_image_tag,
        "the release tag to deploy, e.g. 1.4.0",
    ),
    VarSpec(
        "CT_PREVIOUS_IMAGE_TAG",
        _check_image_tag,
        "the release before CT_IMAGE_TAG (used by docker-compose.rollback.yml)",
    ),
    VarSpec("CT_BIND_ADDRESS", _check_ip, "127.0.0.1 (private) or the host address to publish on"),
    VarSpec("AIRFLOW_UID", _check_int(0, 2**31 - 1), "the uid owning the volumes, e.g. `id -u` or 50000"),
    VarSpec("TORCH_CUDA_INDEX_URL", _check_url("https", "http"), "a PyTorch wheel index, e.g. .../whl/cu128"),
    VarSpec("POSTGRES_USER", _check_identifier, "a database user name"),
    VarSpec("POSTGRES_PASSWORD", _check_secret(), _GENERATE_HINT),
    VarSpec("POSTGRES_DB", _check_identifier, "a database name"),
    VarSpec("AIRFLOW_DB", _check_identifier, "a database name"),
    VarSpec("MLFLOW_DB", _check_identifier, "a database name"),
    VarSpec("REDIS_PASSWORD", _check_secret(), _GENERATE_HINT),
    VarSpec(
        "AIRFLOW_FERNET_KEY",
        _check_fernet,
        "run `make deploy-env`, or `python -c 'from cryptography.fernet "
        "import Fernet; print(Fernet.generate_key().decode())'`",
    ),
    VarSpec("AIRFLOW_JWT_SECRET", _check_secret(), _GENERATE_HINT),
    VarSpec("AIRFLOW_API_SECRET_KEY", _check_secret(), _GENERATE_HINT),
    VarSpec("AIRFLOW_ADMIN_USER", _check_identifier, "a user name"),
    VarSpec("AIRFLOW_ADMIN_PASSWORD", _check_secret(12, url_safe=False), _GENERATE_HINT),
    VarSpec("AIRFLOW_API_WORKERS", _check_int(1, 64), "about one per core"),
    VarSpec("AIRFLOW_WORKER_CONCURRENCY", _check_int(1, 256), "task slots per CPU worker"),
    VarSpec("AIRFLOW_GPU_WORKER_CONCURRENCY", _check_int(1, 64), "1 = one training per GPU host"),
    VarSpec("CT_TRAINING_QUEUE", _check_identifier, "default, or gpu with the gpu profile"),
    VarSpec("CT_TRAINING_BACKEND", _check_choice("inprocess", "docker"), "inprocess or docker"),
    VarSpec(
        "MINIO_ROOT_USER", lambda v: None if len(v) >= 3 else "needs >= 3 characters", "an access key name"
    ),
    VarSpec("MINIO_ROOT_PASSWORD", _check_secret(), _GENERATE_HINT),
    VarSpec("MLFLOW_BUCKET", _check_bucket, "a valid S3 bucket name"),
    VarSpec("CT_BACKUP_BUCKET", _check_bucket, "a valid S3 bucket name"),
    VarSpec(
        "MLFLOW_ALLOWED_HOSTS", lambda v: None if v.strip(",") else "is empty", "comma-separated host[:port]"
    ),
    VarSpec(
        "CT_MLFLOW_UI_URL", _check_url("http", "https"), "the MLflow UI's URL, e.g. http://localhost:5000"
    ),
    VarSpec("CT_API_TOKEN", _check_secret(24), _GENERATE_HINT),
    VarSpec("GRAFANA_ADMIN_USER", _check_identifier, "a user name"),
    VarSpec("GRAFANA_ADMIN_PASSWORD", _check_secret(12, url_safe=False), _GENERATE_HINT),
    VarSpec("PROMETHEUS_RETENTION", _check_duration, "a Prometheus duration such as 15d"),
    VarSpec("PUSHGATEWAY_URL", _check_url("http", "https"), "http://pushgateway:9091 in compose"),
    VarSpec(
        "ELASTIC_VERSION",
        lambda v: None if re.match(r"^\d+\.\d+\.\d+$", v) else "is not x.y.z",
        "e.g. 8.18.3",
    ),
    VarSpec("ES_JAVA_OPTS", None, "JVM options, e.g. -Xms1g -Xmx1g", required=False),
    VarSpec("LS_JAVA_OPTS", None, "JVM options, e.g. -Xms256m -Xmx256m", required=False),
)

_DB_SCHEMES = ("postgresql+psycopg2", "postgresql+asyncpg", "mysql+mysqldb", "sqlite")

# Knobs the code reads from the process environment (checked only when set).
PROCESS_SPECS: tuple[VarSpec, ...] = (
    VarSpec(
        "MLFLOW_TRACKING_URI",
        _check_url(
            "http",
            "https",
            "sqlite",
            "postgresql",
            "postgresql+psycopg2",
            "mysql",
            "file",
            "databricks",
            host=False,
        ),
        "http://mlflow:5000 in compose, sqlite:///var/mlflow/mlflow.db embedded",
        required=False,
    ),
    VarSpec("PUSHGATEWAY_URL", _check_url("http", "https"), "e.g. http://pushgateway:9091", required=False),
    VarSpec(
        "CT_TRAINING_BACKEND", _check_choice("inprocess", "docker"), "inprocess or docker", required=False
    ),
    VarSpec("CT_TRAINING_QUEUE", _check_identifier, "a Celery queue name", required=False),
    VarSpec(
        "CT_TRAIN_OVERRIDES", _check_train_overrides, "a JSON object of TrainConfig fields", required=False
    ),
    VarSpec("CT_DOCKER_GPU_COUNT", _check_int(-1, 64), "-1 (all) or the number of GPUs", required=False),
    VarSpec(
        "CT_DOCKER_URL",
        _check_url("unix", "tcp", "http", "https", "ssh", host=False),
        "e.g. unix://var/run/docker.sock",
        required=False,
    ),
    VarSpec("CT_SERVING_PORT", _check_int(1, 65535), "a TCP port", required=False),
    VarSpec("CT_API_TOKEN", _check_secret(24), _GENERATE_HINT, required=False),
    VarSpec(
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        _check_url(*_DB_SCHEMES, host=False),
        "name the driver: postgresql+psycopg2://... (a bare postgresql:// picks psycopg 3, not installed)",
        required=False,
    ),
    VarSpec(
        "AIRFLOW__CELERY__RESULT_BACKEND",
        _check_url("db+postgresql+psycopg2", "db+mysql+mysqldb", "redis", "rediss", host=False),
        "db+postgresql+psycopg2://user:pass@host/db (the driver must be named)",
        required=False,
    ),
    VarSpec(
        "AIRFLOW__CELERY__BROKER_URL",
        _check_url("redis", "rediss", "amqp", "amqps", "sqla+postgresql"),
        "redis://:password@redis:6379/0",
        required=False,
    ),
)
_PATH_VARS = (
    "CT_VAR_DIR",
    "CT_DATA_DIR",
    "CT_LANDING_DIR",
    "CT_VALIDATED_DIR",
    "CT_QUARANTINE_DIR",
    "CT_STATE_DIR",
    "CT_BACKUP_DIR",
    "CT_LOG_DIR",
    "CT_REPORTS_DIR",
)


def _redact_url(value: str) -> str:
    """``value`` with the password of a URL replaced by ``***`` (problems are printed)."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", value)


# ---- env files ----------------------------------------------------------------------------------------


def parse_env_file(path: Path) -> tuple[dict[str, str], dict[str, int], list[Problem]]:
    """Parse ``KEY=value`` lines (docker-compose rules: no quotes processing beyond a matching pair).

    Returns ``(values, line numbers, syntax problems)``; comments and blank lines are skipped.
    """
    values: dict[str, str] = {}
    lines: dict[str, int] = {}
    problems: list[Problem] = []
    for number, raw in enumerate(Path(path).read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _NAME.match(key):
            problems.append(
                Problem(f"{path}:{number}", f"not a KEY=value line: {raw[:60]!r}", "write KEY=value")
            )
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if key in values:
            problems.append(
                Problem(
                    f"{path}:{number}", f"{key} is set again (first on line {lines[key]})", "keep one line"
                )
            )
        values[key], lines[key] = value, number
    return values, lines, problems


def check_env_file(path: Path, specs: Iterable[VarSpec] = ENV_FILE_SPECS) -> list[Problem]:
    """Check an env file against ``specs``: syntax, missing required variables, bad values."""
    path = Path(path)
    if not path.exists():
        return [Problem(str(path), "does not exist", "cp .env.example .env && make deploy-env")]
    values, lines, problems = parse_env_file(path)
    for spec in specs:
        value = values.get(spec.name)
        where = f"{path}:{lines[spec.name]}" if spec.name in lines else str(path)
        if value is None or value == "":
            if spec.required:
                problems.append(Problem(where, f"{spec.name} is not set", f"set {spec.name}: {spec.fix}"))
            continue
        error = spec.check(value) if spec.check else None
        if error:
            problems.append(Problem(where, f"{spec.name} {error}", spec.fix))
    return problems


def check_process_env(environ: Mapping[str, str] | None = None) -> list[Problem]:
    """Check the project knobs set in the process environment (unset ones use their defaults)."""
    environ = os.environ if environ is None else environ
    problems = []
    for spec in PROCESS_SPECS:
        value = environ.get(spec.name)
        if not value:
            continue
        error = spec.check(value) if spec.check else None
        if error:
            problems.append(Problem(f"environment {spec.name}", f"{spec.name} {error}", spec.fix))
    for name in _PATH_VARS:
        value = environ.get(name)
        if value and "\n" in value:
            problems.append(Problem(f"environment {name}", f"{name} contains a newline", "set a plain path"))
        elif value and Path(value).expanduser().exists() and not Path(value).expanduser().is_dir():
            problems.append(
                Problem(
                    f"environment {name}", f"{name}={value} is a file, not a folder", "point it at a folder"
                )
            )
    return problems


def compose_variables(compose_text: str) -> dict[str, bool]:
    """Every ``${VAR...}`` the compose text interpolates -> whether it has a default (``:-``/``-``)."""
    found: dict[str, bool] = {}
    for name, op, _ in _COMPOSE_VAR.findall(compose_text):
        has_default = op in (":-", "-")
        found[name] = found.get(name, False) or has_default
    return found


def example_variables(example: Path = ENV_EXAMPLE) -> set[str]:
    """Names set (``KEY=``) in the env example, commented-out documentation lines excluded."""
    values, _, _ = parse_env_file(example)
    return set(values)


def check_compose(
    env_file: Path, compose_files: Iterable[Path] = (COMPOSE_FILE, ROLLBACK_FILE), timeout: float = 60
) -> list[Problem]:
    """``docker-compose config -q`` over ``compose_files`` with ``env_file``, and unset variables it warns about."""
    files = [Path(f) for f in compose_files]
    exe = shutil.which("docker-compose")
    if exe is None:
        return [Problem("docker-compose", "the docker-compose binary is not installed", "make system-deps")]
    values = parse_env_file(env_file)[0] if Path(env_file).exists() else {}
    problems = []
    for name, has_default in sorted(compose_variables("\n".join(f.read_text() for f in files)).items()):
        if not has_default and not values.get(name) and not os.environ.get(name):
            problems.append(
                Problem(str(env_file), f"{name} is used by the compose files but not set", f"set {name}")
            )
    cmd = [exe, "--env-file", str(env_file)]
    for f in files:
        cmd += ["-f", str(f)]
    env = {k: v for k, v in os.environ.items() if k not in values}  # the env file, not the shell, is checked
    proc = subprocess.run([*cmd, "config", "-q"], capture_output=True, text=True, timeout=timeout, env=env)
    where = " + ".join(f.name for f in files)
    for line in (proc.stderr or "").splitlines():
        if "variable is not set" in line:
            problems.append(Problem(where, line.strip(), "set the variable in the env file"))
    if proc.returncode != 0:
        detail = " ".join((proc.stderr or proc.stdout).split())[:600]
        problems.append(
            Problem(where, f"docker-compose config failed: {detail}", "fix the file or the env file")
        )
    return problems


def check_prometheus(
    config: Path = PROMETHEUS_CONFIG, rules_dir: Path = PROMETHEUS_RULES_DIR
) -> list[Problem]:
    """``promtool check config`` (follows its rule_files) and ``promtool check rules`` on every rules file."""
    exe = shutil.which("promtool")
    if exe is None:
        return [Problem("promtool", "the promtool binary is not installed", "make system-deps")]
    if not Path(config).exists():
        return [Problem(str(config), "does not exist", "restore include/monitoring/prometheus.yml")]
    problems = []
    proc = subprocess.run([exe, "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        detail = " ".join((proc.stderr + proc.stdout).split())[:600]
        problems.append(Problem(str(config), f"promtool check config failed: {detail}", "fix the file"))
    rules = (
        sorted(p for p in Path(rules_dir).glob("*.y*ml") if ".test." not in p.name)
        if Path(rules_dir).is_dir()
        else []
    )
    for rule_file in rules:
        proc = subprocess.run(
            [exe, "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60
        )
        if proc.returncode != 0:
            detail = " ".join((proc.stderr + proc.stdout).split())[:600]
            problems.append(Problem(str(rule_file), f"promtool check rules failed: {detail}", "fix the rule"))
    return problems


_DAGBAG_SNIPPET = """
import json, os, sys
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({"dags": sorted(bag.dag_ids), "errors": {str(k): str(v) for k, v in bag.import_errors.items()}}))
"""


def check_dags(
    dags_folder: Path = DAGS_FOLDER, expect: Iterable[str] = (), timeout: float = 300
) -> list[Problem]:
    """Import every DAG file (DagBag, in a subprocess); one problem per import error or missing DAG id."""
    dags_folder = Path(dags_folder)
    if not dags_folder.is_dir():
        return [
            Problem(str(dags_folder), "is not a folder", "set AIRFLOW__CORE__DAGS_FOLDER to the dags/ folder")
        ]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("AIRFLOW_HOME", str(PROJECT_ROOT / "var" / "airflow"))
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _DAGBAG_SNIPPET, str(dags_folder)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=PROJECT_ROOT,
        )
    except subprocess.TimeoutExpired:
        return [
            Problem(
                str(dags_folder), f"parsing took more than {timeout:.0f}s", "move heavy imports into tasks"
            )
        ]
    try:
        report = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        detail = " ".join(proc.stderr.split())[-600:]
        return [
            Problem(
                str(dags_folder), f"DagBag could not run: {detail}", "fix the Airflow installation/config"
            )
        ]
    problems = []
    for file, error in sorted(report["errors"].items()):
        last = [line for line in error.strip().splitlines() if line.strip()][-1:] or [error]
        problems.append(
            Problem(file, f"DAG import error: {last[0].strip()}", f"run `python {file}` and fix the error")
        )
    for dag_id in expect:
        if dag_id not in report["dags"]:
            problems.append(
                Problem(str(dags_folder), f"DAG {dag_id!r} is missing", "restore its file in dags/")
            )
    return problems


def run_checks(
    env_file: Path | None,
    *,
    compose: bool = True,
    prometheus: bool = True,
    dags: bool = True,
    process_env: bool = True,
    expect_dags: Iterable[str] = (),
) -> list[Problem]:
    """Every selected check; an empty list means the configuration is valid."""
    problems: list[Problem] = []
    if env_file is not None:
        problems += check_env_file(env_file)
    if process_env:
        problems += check_process_env()
    if compose:
        problems += check_compose(
            env_file if env_file is not None and Path(env_file).exists() else ENV_EXAMPLE
        )
    if prometheus:
        problems += check_prometheus()
    if dags:
        problems += check_dags(expect=expect_dags)
    return problems


# ---- secrets, backups, apply --------------------------------------------------------------------------


def _new_secret(name: str) -> str:
    if name == "AIRFLOW_FERNET_KEY":
        from cryptography.fernet import Fernet

        return Fernet.generate_key().decode()
    return secrets.token_urlsafe(32)


def _fill(example_text: str, current: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """Lines of the example with ``current``'s real values kept and every placeholder replaced by a secret."""
    lines, generated = [], []
    for line in example_text.splitlines():
        key, sep, value = line.partition("=")
        key = key.strip()
        if sep and not line.lstrip().startswith("#") and _NAME.match(key):
            if current.get(key) and PLACEHOLDER not in current[key]:
                value = current[key]
            elif PLACEHOLDER in value:
                value = _new_secret(key)
                generated.append(key)
            line = f"{key}={value}"
        lines.append(line)
    return lines, generated


def generate_env(example_text: str, existing: Mapping[str, str] | None = None) -> str:
    """The example's text with ``existing``'s real values kept and every ``change-me`` value a new secret."""
    return "\n".join(_fill(example_text, existing or {})[0]) + "\n"


def write_env(env_file: Path, example: Path = ENV_EXAMPLE) -> tuple[Path, list[str]]:
    """Create or complete ``env_file`` from ``example`` (mode 0600, previous file backed up first).

    Real values already in ``env_file`` are kept, placeholders get generated secrets, variables only in
    ``env_file`` are carried over at the end. Returns the path and the names of the generated secrets.
    """
    env_file = Path(env_file)
    current = parse_env_file(env_file)[0] if env_file.exists() else {}
    lines, generated = _fill(Path(example).read_text(), current)
    known = set(parse_env_file(example)[0])
    extra = [f"{k}={v}" for k, v in current.items() if k not in known]
    if extra:
        lines += ["", "# ---- kept from the previous file ----", *extra]
    if env_file.exists():
        backup_config(env_file)
    atomic_write_text(env_file, "\n".join(lines) + "\n", mode=0o600)
    return env_file, sorted(generated)


def backup_config(env_file: Path, dest_dir: Path | None = None) -> Path:
    """Copy ``env_file`` to ``<dest_dir or its folder>/<name>.backup.<YYYYmmdd-HHMMSS>`` (mode 0600)."""
    env_file = Path(env_file)
    if not env_file.exists():
        raise FileNotFoundError(f"{env_file} does not exist: nothing to back up")
    dest_dir = Path(dest_dir) if dest_dir else env_file.parent
    dest_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    dest = dest_dir / f"{env_file.name}.backup.{stamp}"
    n = 1
    while dest.exists():
        dest = dest_dir / f"{env_file.name}.backup.{stamp}.{n}"
        n += 1
    atomic_write_text(dest, env_file.read_text(), mode=0o600)
    return dest


def apply_config(
    new_file: Path, env_file: Path, *, compose: bool = True
) -> tuple[list[Problem], Path | None]:
    """Validate ``new_file``; when valid, back up ``env_file`` and replace it atomically.

    Returns ``(problems, backup path)``; with problems nothing is changed and the backup is None.
    """
    new_file, env_file = Path(new_file), Path(env_file)
    problems = check_env_file(new_file)
    if compose and not problems:
        problems += check_compose(new_file)
    if problems:
        return problems, None
    backup = backup_config(env_file) if env_file.exists() else None
    atomic_write_text(env_file, new_file.read_text(), mode=0o600)
    return [], backup


# ---- CLI ----------------------------------------------------------------------------------------------


def _print_problems(problems: list[Problem], what: str) -> int:
    if not problems:
        print(f"OK: {what}")
        return 0
    print(f"{len(problems)} configuration problem(s) in {what}:")
    for problem in problems:
        print(f"  {problem}")
    return 1


def main(argv: list[str] | None = None) -> int:
    """CLI: ``check`` (default), ``generate``, ``backup``, ``apply``; exit 1 on any problem."""
    parser = argparse.ArgumentParser(
        prog="python -m include.ops.config_check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command")
    check = sub.add_parser("check", help="validate the configuration (default)")
    check.add_argument("--env-file", type=Path, default=PROJECT_ROOT / ".env")
    check.add_argument(
        "--no-env-file", action="store_true", help="skip the env file (CI without a deployment)"
    )
    check.add_argument("--skip", default="", help="comma-separated: compose,prometheus,dags,process-env")
    check.add_argument("--expect-dag", action="append", default=[], help="DAG id that must be present")
    gen = sub.add_parser("generate", help="create/complete the env file from .env.example with new secrets")
    gen.add_argument("--env-file", type=Path, default=PROJECT_ROOT / ".env")
    bak = sub.add_parser("backup", help="copy the env file to <name>.backup.<timestamp>")
    bak.add_argument("--env-file", type=Path, default=PROJECT_ROOT / ".env")
    bak.add_argument("--dest", type=Path, default=None)
    app = sub.add_parser("apply", help="validate FILE, back up the env file, then replace it with FILE")
    app.add_argument("file", type=Path)
    app.add_argument("--env-file", type=Path, default=PROJECT_ROOT / ".env")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv.insert(0, "check")
    args = parser.parse_args(argv)

    if args.command == "generate":
        path, generated = write_env(args.env_file)
        print(
            f"wrote {path} (mode 0600); generated: {', '.join(generated) or 'nothing (all secrets already set)'}"
        )
        return 0
    if args.command == "backup":
        try:
            print(f"backed up to {backup_config(args.env_file, args.dest)}")
        except FileNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "apply":
        problems, backup = apply_config(args.file, args.env_file)
        if problems:
            _print_problems(problems, str(args.file))
            print(f"nothing applied: {args.env_file} is unchanged")
            return 1
        print(f"applied {args.file} -> {args.env_file}" + (f" (previous: {backup})" if backup else ""))
        print("roll it out: docker-compose up -d --no-deps <service>   (runbook: rolling update)")
        return 0
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skip - {"compose", "prometheus", "dags", "process-env"}
    if unknown:
        parser.error(f"unknown --skip value(s): {sorted(unknown)}")
    problems = run_checks(
        None if args.no_env_file else args.env_file,
        compose="compose" not in skip,
        prometheus="prometheus" not in skip,
        dags="dags" not in skip,
        process_env="process-env" not in skip,
        expect_dags=args.expect_dag,
    )
    checked = [c for c in ("process-env", "compose", "prometheus", "dags") if c not in skip]
    if not args.no_env_file:
        checked.insert(0, str(args.env_file))
    return _print_problems(problems, ", ".join(checked))


if __name__ == "__main__":
    sys.exit(main())
