"""`make demo`: make the Split-Digits stream, validate it, learn every task through real Airflow DAG runs.

The stream is written only into an empty (or missing) data dir: a data dir that already holds a stream is used as
it is, never overwritten. ``learn`` (validate, then learn every task, then print the matrix) is also the body of
`make learn-stream` (``include/airflow_glue/learn_stream.py``).

The terminal gets one line per step (each landed file validated, epoch progress and the outcome of each task
learned, the matrix); every Airflow and task log line goes to ``<log dir>/demo-<UTC time>.log``, whose path is
printed first and again when a run fails, with its last lines (``include/airflow_glue/demo_console.py``).
``--verbose`` (``make demo VERBOSE=1``) prints everything on the terminal instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from include.airflow_glue.dag_runs import load_dag, state_name
from include.airflow_glue.demo_console import DemoConsole, TrainingProgress, ValidationProgress, learned_lines
from include.ops.jsonlog import log_file
from include.ops.settings import Settings, get_serving_settings, get_settings

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


def run_dag(dag_id: str, conf: dict[str, Any] | None, console: DemoConsole) -> tuple[str, str]:
    """Run one DAG run in-process (recorded in the Airflow metadata DB), its logs into the console's log file;
    returns (final state, run id)."""
    with console.captured():
        dagrun = load_dag(dag_id).test(run_conf=conf or {})
    return state_name(dagrun.state), dagrun.run_id


def _step(steps: list[dict[str, Any]], step: str, started: float, **fields: Any) -> float:
    """Append one timed step (seconds since ``started``) to ``steps``; return its seconds."""
    seconds = round(time.monotonic() - started, 3)
    steps.append({"step": step, **fields, "seconds": seconds})
    return seconds


def validate_landing(
    settings: Settings, manifest: Path, console: DemoConsole, steps: list[dict[str, Any]]
) -> bool:
    """Feed the task files through the landing zone and `data_validation`, a line per file; False when it fails."""
    from include.ops.validation.alerts import log_path
    from include.ops.validation.landing import land_task_stream

    started = time.monotonic()
    landed = land_task_stream(manifest, settings.landing_dir)
    console.say(f"==> data_validation: {len(landed)} files landed in {settings.landing_dir}")
    progress = ValidationProgress(console.say)
    with console.follow(log_path(settings.log_dir), progress):
        state, run_id = run_dag("data_validation", None, console)
    counts = ", ".join(f"{n} {verdict}" for verdict, n in sorted(progress.verdicts.items())) or "no new file"
    seconds = _step(steps, "validate", started, files=len(landed), state=state, **progress.verdicts)
    console.say(f"   data_validation {state} in {seconds:.1f}s: {counts}")
    if state != "success":
        console.report_failure(
            f"data_validation failed (run {run_id}); rejected files: {settings.quarantine_dir}/"
        )
        return False
    return True


def print_results(stdout: IO[str] | None = None) -> int:
    """Print the latest accuracy matrix and per-task retention from MLflow (`make status`); its exit code."""
    from include.ops.cli import main as cli_main

    return cli_main(["status"], stdout=stdout)


def add_conf_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--conf`` and ``--verbose`` options shared by `make demo` and `make learn-stream`."""
    parser.add_argument(
        "--conf",
        type=json.loads,
        default={},
        help='run conf (JSON) of every continual_training run, e.g. \'{"epochs": 5, "accuracy_floor": 0.8}\'',
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="print every Airflow and task log line here (VERBOSE=1) instead of into var/logs/demo-*.log",
    )


def check_conf(parser: argparse.ArgumentParser, conf: Any, console: DemoConsole | None = None) -> None:
    """Refuse (exit 2) a conf that is not an object or names keys continual_training would silently ignore."""
    if not isinstance(conf, dict):
        parser.error(f"--conf must be a JSON object, got {conf!r}")
    with console.captured() if console else contextlib.nullcontext():
        params = set(load_dag("continual_training").params)
    unknown = sorted(set(conf) - params)
    if unknown:  # a typo would otherwise be ignored and the run made with defaults
        parser.error(f"--conf keys {unknown} are not params of continual_training")


def _epochs(settings: Settings, conf: dict[str, Any]) -> int | None:
    """The epochs each task trains for under ``conf`` (as the DAG's plan resolves them); None when invalid."""
    from include.ops.run_settings import resolve_run_settings

    try:
        return int(resolve_run_settings(conf, settings).train_config["epochs"])
    except (ValueError, KeyError, TypeError):
        return None


def learn_next(
    settings: Settings, task_id: str, conf: dict[str, Any], console: DemoConsole, steps: list[dict[str, Any]]
) -> bool:
    """One `continual_training` run for the next task: an epoch bar, then what it learned; False when it fails."""
    console.say(f"==> continual_training: {task_id}")
    started = time.monotonic()
    progress = TrainingProgress(console.out, _epochs(settings, conf))
    with console.follow(log_file("training", settings.log_dir), progress):
        state, run_id = run_dag("continual_training", conf, console)
    progress.close(failed=state != "success")
    seconds = _step(steps, "train", started, task_id=task_id, state=state)
    with console.captured():
        lines = learned_lines(settings, run_id)
    for line in lines:
        console.say(line)
    console.say(f"   continual_training {state} in {seconds:.1f}s (run {run_id})")
    if state != "success":
        console.report_failure("continual_training failed: open the run in MLflow (make mlflow-ui)")
        return False
    return True


def learn(
    settings: Settings,
    manifest: Path,
    conf: dict[str, Any],
    console: DemoConsole,
    steps: list[dict[str, Any]] | None = None,
) -> int:
    """Land and validate the stream (data_validation), learn each task (continual_training), print the matrix.

    ``steps`` collects the seconds of each step; returns 0, or 1 when a DAG run failed."""
    from include.ops.training import plan_tasks
    from model.data import load_manifest

    steps = [] if steps is None else steps
    if not validate_landing(settings, manifest, console, steps):
        return 1
    for _ in range(len(load_manifest(manifest).tasks)):
        with console.captured():
            planned = plan_tasks(settings, None, [])
        if not planned:
            break
        if not learn_next(settings, planned[0], conf, console, steps):
            return 1
    started = time.monotonic()
    console.say()
    with console.captured():
        code = print_results(console.out)
    _step(steps, "status", started)
    if code != 0:
        console.report_failure(f"make status failed (exit {code})")
    return 0


def write_timings(path: Path, steps: list[dict[str, Any]], total_s: float, code: int) -> None:
    """The seconds of every step as JSON (``--timings``, read by bench/bench_demo.py)."""
    from model.fsio import atomic_write_json

    atomic_write_json(Path(path), {"steps": steps, "total_seconds": round(total_s, 3), "exit_code": code})


def next_steps(settings: Settings, console: DemoConsole) -> list[str]:
    """Where to look after the demo, with the addresses the UI targets would use now."""
    from include.ops.local_ports import airflow_ui_url

    serving = get_serving_settings()
    airflow_home = os.environ.get("AIRFLOW_HOME", "var/airflow")
    lines = [
        f"    Airflow runs:   AIRFLOW_HOME={airflow_home} .venv/bin/airflow dags list-runs continual_training",
        f"    Airflow UI:     make airflow-ui   (airflow standalone on {airflow_ui_url()}, same metadata DB)",
        f"    MLflow UI:      make mlflow-ui    (mlflow ui --backend-store-uri {settings.mlflow_tracking_uri} "
        f"on {settings.mlflow_ui_url})",
        f"    Serving app:    make serve        (http://{serving.host}:{serving.port}/health/all)",
    ]
    if console.log_path is not None:
        lines.append(f"    Full log:       {console.log_path}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Entry point of `make demo`; exit code non-zero when any DAG run failed."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prepare-only", action="store_true", help="only write the task stream")
    parser.add_argument("--timings", type=Path, help="write the seconds of every step to this JSON file")
    add_conf_argument(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    settings = get_settings()
    started = time.monotonic()
    with DemoConsole(settings.log_dir, verbose=args.verbose) as console:
        if console.log_path is not None:
            console.say(f"==> Airflow and task logs: {console.log_path}  (VERBOSE=1 prints them here)")
        check_conf(parser, args.conf, console)
        steps: list[dict[str, Any]] = []
        manifest = prepare_data(settings)
        _step(steps, "prepare", started)
        console.say(f"==> task stream: {manifest}")
        if args.prepare_only:
            return 0
        try:
            code = learn(settings, manifest, args.conf, console, steps)
        except Exception:
            console.report_failure("the demo stopped on an error (its traceback follows)")
            raise
        total = time.monotonic() - started
        if args.timings:
            write_timings(args.timings, steps, total, code)
        if code != 0:
            return 1
        console.say(f"\n==> demo finished in {total:.0f}s")
        for line in next_steps(settings, console):
            console.say(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
