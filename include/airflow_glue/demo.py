"""`make demo`: make the Split-Digits stream, validate it, learn every task through real Airflow DAG runs."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from include.airflow_glue.dag_runs import load_dag, state_name
from include.ops.settings import Settings, get_settings

log = logging.getLogger("demo")


def prepare_data(settings: Settings) -> Path:
    """Write the Split-Digits task stream (idempotent) and return its manifest path."""
    from model.data import write_split_digits

    return write_split_digits(settings.data_dir)


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
        raise SystemExit("data_validation failed: see the task logs above and var/quarantine/")


def print_results() -> None:
    """Print the latest accuracy matrix and per-task retention from MLflow (`make status`)."""
    from include.ops.cli import main as cli_main

    cli_main(["status"])


def main(argv: list[str] | None = None) -> int:
    """Entry point of `make demo`; exit code non-zero when any DAG run failed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prepare-only", action="store_true", help="only write the task stream")
    parser.add_argument(
        "--conf",
        type=json.loads,
        default={},
        help='run conf (JSON) of every continual_training run, e.g. \'{"epochs": 5, "accuracy_floor": 0.8}\'',
    )
    args = parser.parse_args(argv)
    if not isinstance(args.conf, dict):
        parser.error(f"--conf must be a JSON object, got {args.conf!r}")
    unknown = sorted(set(args.conf) - set(load_dag("continual_training").params))
    if unknown:  # a typo would otherwise be ignored and the demo run with defaults
        parser.error(f"--conf keys {unknown} are not params of continual_training")
    logging.basicConfig(level=logging.WARNING)
    settings = get_settings()
    started = time.monotonic()
    manifest = prepare_data(settings)
    print(f"==> task stream: {manifest}", flush=True)
    if args.prepare_only:
        return 0
    validate_landing(settings, manifest)

    from include.ops.training import plan_tasks
    from model.data import load_manifest

    for _ in range(len(load_manifest(manifest).tasks)):
        if not plan_tasks(settings, None, []):
            break
        print("==> continual_training (next task)", flush=True)
        if run_dag("continual_training", args.conf) != "success":
            print(
                "continual_training failed: open MLflow (make mlflow-ui) and the task log above",
                file=sys.stderr,
            )
            return 1
    print_results()
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
