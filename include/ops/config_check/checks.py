"""The checks: env file and process environment against the spec models, compose files, Prometheus, DAGs.

Each returns a list of :class:`Problem` (empty = valid). The external tools (``docker-compose``,
``promtool``) and the DAG import (Airflow's ``DagBag``, run by ``include.airflow_glue.config_check`` in a
subprocess, so this library never imports Airflow) run with time limits.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import BaseModel

from include.ops.config_check.envfile import ENV_EXAMPLE, install_env, parse_env_file
from include.ops.config_check.specs import (
    SETTINGS_MODELS,
    DeploymentEnv,
    ProcessEnv,
    model_errors,
    settings_dir_vars,
    settings_errors,
)
from include.ops.config_check.values import Problem
from include.ops.settings import PROJECT_ROOT

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
ROLLBACK_FILE = PROJECT_ROOT / "docker-compose.rollback.yml"
PROMETHEUS_CONFIG = PROJECT_ROOT / "include" / "monitoring" / "prometheus.yml"
PROMETHEUS_RULES_DIR = PROJECT_ROOT / "include" / "monitoring" / "alerts"
DAGS_FOLDER = PROJECT_ROOT / "dags"
DAGBAG_MODULE = "include.airflow_glue.config_check"  # prints {"dags", "errors"} of a DAG folder as JSON
_COMPOSE_VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def check_env_file(path: Path, model: type[BaseModel] = DeploymentEnv) -> list[Problem]:
    """Check an env file against the spec ``model``: syntax, missing required variables, bad values."""
    path = Path(path)
    if not path.exists():
        return [Problem(str(path), "does not exist", "cp .env.example .env && make deploy-env")]
    values, lines, problems = parse_env_file(path)
    for name, message, fix in model_errors(model, {k: v for k, v in values.items() if v != ""}):
        where = f"{path}:{lines[name]}" if name in lines else str(path)
        if message == "is not set":
            fix = f"set {name}: {fix}"
        problems.append(Problem(where, f"{name} {message}", fix))
    return problems


def check_process_env(environ: Mapping[str, str] | None = None) -> list[Problem]:
    """Check the project knobs set in the process environment (unset ones use their defaults)."""
    environ = os.environ if environ is None else environ
    given = {k: v for k, v in environ.items() if v}
    found: dict[str, tuple[str, str]] = {}
    for name, message, fix in model_errors(
        ProcessEnv, {k: v for k, v in given.items() if k in ProcessEnv.model_fields}
    ):
        found.setdefault(name, (message, fix))
    for model in SETTINGS_MODELS:
        for name, problem in settings_errors(model, given).items():
            found.setdefault(name, problem)
    problems = [Problem(f"environment {n}", f"{n} {m}", fix) for n, (m, fix) in found.items()]
    for name in settings_dir_vars():
        value = given.get(name)
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
        found[name] = found.get(name, False) or op in (":-", "-")
    return found


def _tool_detail(proc: subprocess.CompletedProcess[str], tail: bool = False) -> str:
    text = " ".join(((proc.stderr or "") + (proc.stdout or "")).split())
    return text[-600:] if tail else text[:600]


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
        problems.append(
            Problem(str(config), f"promtool check config failed: {_tool_detail(proc)}", "fix the file")
        )
    rules_dir = Path(rules_dir)
    rules = (
        sorted(p for p in rules_dir.glob("*.y*ml") if ".test." not in p.name) if rules_dir.is_dir() else []
    )
    for rule_file in rules:
        proc = subprocess.run(
            [exe, "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60
        )
        if proc.returncode != 0:
            problems.append(
                Problem(str(rule_file), f"promtool check rules failed: {_tool_detail(proc)}", "fix the rule")
            )
    return problems


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
    cmd = [sys.executable, "-m", DAGBAG_MODULE, str(dags_folder)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=PROJECT_ROOT)
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


def apply_config(
    new_file: Path, env_file: Path, *, compose: bool = True
) -> tuple[list[Problem], Path | None]:
    """Validate ``new_file``; when valid, back up ``env_file`` and replace it atomically.

    Returns ``(problems, backup path)``; with problems nothing is changed and the backup is None.
    """
    problems = check_env_file(new_file)
    if compose and not problems:
        problems += check_compose(new_file)
    if problems:
        return problems, None
    return [], install_env(new_file, env_file)
