"""`make demo`: make the Split-Digits stream, validate it, learn every task through real Airflow DAG runs.

The stream is written only into an empty (or missing) data dir: a data dir that already holds a stream is used as
it is, never overwritten. ``learn`` (validate, then learn every task, then print the matrix) is also the body of
`make learn-stream` (``include/airflow_glue/learn_stream.py``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from include.airflow_glue.dag_runs import load_dag, state_name
from include.ops.settings import Settings, get_settings

log = logging.getLogger("demo")


def prepare_data(settings: Settings) -> Path:
    """The demo's stream: Split-Digits written into an empty data dir, else the stream already there, untouched.

    SystemExit naming the folder when it holds files but no manifest (nothing is written then).
    """
    from model.data import MANIFEST_NAME, write_split_digits

    data_dir = settings.data_dir
    manifest = data_dir / MANIFEST_NAME
    if manifest.is_file():
        return manifest  # a previous demo's Split-Digits or the operator's own stream: never rewritten
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise SystemExit(
            f"data dir {data_dir} is not empty and has no {MANIFEST_NAME}: the demo writes Split-Digits only "
            "into an empty folder. Move its files away, or set CT_DATA_DIR to another folder; to learn your own "
            "stream use `make learn-stream STREAM=<dir>`"
        )
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=data_dir.parent, prefix=f".{data_dir.name}.", suffix=".tmp"))
    try:
        staging.chmod(0o755)  # mkdtemp makes it 0700; the stream must stay readable by other services
        write_split_digits(staging)
        if data_dir.exists():
            data_dir.rmdir()  # empty (checked above); a file landing meanwhile makes this fail, not vanish
        staging.rename(data_dir)  # the whole stream appears at once
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return manifest


def run_dag(dag_id: str, conf: dict[str, Any] | None = None) -> str:
    """Run one DAG run in-process (recorded in the Airflow metadata DB); return its final state."""
    started = time.monotonic()
    dagrun = load_dag(dag_id).test(run_conf=conf or {})
    state = state_name(dagrun.state)
    print(f"   {dag_id}: run {dagrun.run_id} -> {state} in {time.monotonic() - started:.1f}s", flush=True)
    return state


def validate_landing(settings: Settings, manifest: Path) -> None:
    """Feed the task files through the landing zone and `data_validation`; SystemExit when validation fails."""
    from include.ops.validation.landing import land_task_stream

    landed = land_task_stream(manifest, settings.landing_dir)
    print(f"==> landed {len(landed)} files in {settings.landing_dir}; running data_validation", flush=True)
    if run_dag("data_validation") != "success":
        raise SystemExit(f"data_validation failed: see the task logs above and {settings.quarantine_dir}/")


def print_results() -> None:
    """Print the latest accuracy matrix and per-task retention from MLflow (`make status`)."""
    from include.ops.cli import main as cli_main

    cli_main(["status"])


def add_conf_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--conf`` option shared by `make demo` and `make learn-stream`."""
    parser.add_argument(
        "--conf",
        type=json.loads,
        default={},
        help='run conf (JSON) of every continual_training run, e.g. \'{"epochs": 5, "accuracy_floor": 0.8}\'',
    )


def check_conf(parser: argparse.ArgumentParser, conf: Any) -> None:
    """Refuse (exit 2) a conf that is not an object or names keys continual_training would silently ignore."""
    if not isinstance(conf, dict):
        parser.error(f"--conf must be a JSON object, got {conf!r}")
    unknown = sorted(set(conf) - set(load_dag("continual_training").params))
    if unknown:  # a typo would otherwise be ignored and the run made with defaults
        parser.error(f"--conf keys {unknown} are not params of continual_training")


def learn(settings: Settings, manifest: Path, conf: dict[str, Any]) -> int:
    """Land and validate the stream (data_validation), learn each task (continual_training), print the matrix."""
    from include.ops.training import plan_tasks
    from model.data import load_manifest

    validate_landing(settings, manifest)
    for _ in range(len(load_manifest(manifest).tasks)):
        if not plan_tasks(settings, None, []):
            break
        print("==> continual_training (next task)", flush=True)
        if run_dag("continual_training", conf) != "success":
            print(
                "continual_training failed: open MLflow (make mlflow-ui) and the task log above",
                file=sys.stderr,
            )
            return 1
    print_results()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `make demo`; exit code non-zero when any DAG run failed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prepare-only", action="store_true", help="only write the task stream")
    add_conf_argument(parser)
    args = parser.parse_args(argv)
    check_conf(parser, args.conf)
    logging.basicConfig(level=logging.WARNING)
    settings = get_settings()
    started = time.monotonic()
    manifest = prepare_data(settings)
    print(f"==> task stream: {manifest}", flush=True)
    if args.prepare_only:
        return 0
    if learn(settings, manifest, args.conf) != 0:
        return 1
    airflow_home = os.environ.get("AIRFLOW_HOME", "var/airflow")
    print(
        f"""
==> demo finished in {time.monotonic() - started:.0f}s
    Airflow runs:   AIRFLOW_HOME={airflow_home} .venv/bin/airflow dags list-runs continual_training
    Airflow UI:     make airflow-ui   (airflow standalone on http://127.0.0.1:8080, same metadata DB)
    MLflow UI:      make mlflow-ui    (mlflow ui --backend-store-uri {settings.mlflow_tracking_uri} on :5000)
    Serving app:    make serve        (http://127.0.0.1:8000/health/all)"""
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
