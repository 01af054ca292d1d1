"""Configuration checks (runbook "Configuration Management"): ``make check-config`` / ``make validate-config``.

Checks, each problem reported with where it is and how to fix it:

- the env file (``.env``): syntax, required variables, types and ranges, URL-safe and non-placeholder secrets,
  a valid Fernet key, enum values, connection URIs (``specs.DeploymentEnv``);
- the process environment: every ``Settings`` variable that is set, by its own field, and the knobs of
  ``specs.ProcessEnv`` (MLFLOW_TRACKING_URI, PUSHGATEWAY_URL, Airflow DB/Celery URIs, ...);
- ``docker-compose.yml`` (+ the rollback overlay): ``docker-compose config -q`` with that env file, and every
  variable it uses is set or defaulted;
- Prometheus: ``promtool check config`` and ``promtool check rules``;
- DAG integrity: no import errors in the DAG folder (``DagBag``, in a subprocess with a time limit).

Also: ``generate`` (fill the ``change-me`` placeholders of ``.env.example`` with generated secrets),
``backup`` (``.env.backup.<timestamp>``) and ``apply`` (validate a new env file, back up the live one, then
replace it atomically). Env files are read with python-dotenv and written with mode 0600.
CLI: ``python -m include.ops.config_check --help``.
"""

from include.ops.config_check.checks import (
    apply_config,
    check_compose,
    check_dags,
    check_env_file,
    check_process_env,
    check_prometheus,
    compose_variables,
    run_checks,
)
from include.ops.config_check.cli import main
from include.ops.config_check.envfile import (
    ENV_EXAMPLE,
    backup_config,
    example_variables,
    generate_env,
    parse_env_file,
    write_env,
)
from include.ops.config_check.specs import DeploymentEnv, ProcessEnv
from include.ops.config_check.values import Problem

__all__ = [
    "ENV_EXAMPLE",
    "DeploymentEnv",
    "Problem",
    "ProcessEnv",
    "apply_config",
    "backup_config",
    "check_compose",
    "check_dags",
    "check_env_file",
    "check_process_env",
    "check_prometheus",
    "compose_variables",
    "example_variables",
    "generate_env",
    "main",
    "parse_env_file",
    "run_checks",
    "write_env",
]
