"""`make learn-stream STREAM=<dir>`: validate and learn any task stream in the format through the same DAGs.

A stream is a folder with ``manifest.json`` and its task CSVs (README, "Data"). It is landed into its own state
(``var/streams/<folder name>/``, or ``--state``): landing zone, validated store, quarantine, checkpoints, logs and
its own MLflow store, so it never mixes with the demo's stream. The stream folder itself is only read. Then it
runs `data_validation` and one `continual_training` run per task (``dag.test()``, like `make demo`: a line per
step here, the Airflow and task logs in the state's ``logs/demo-<UTC time>.log``; ``--verbose`` prints them) and
prints the accuracy matrix (`make status`). Running it again learns only the tasks not learned yet.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path

from include.airflow_glue import demo
from include.airflow_glue.demo_console import DemoConsole
from include.ops.settings import VAR_DERIVED_ENV, get_settings

# every location derived from the var dir but the source stream: unset, so none points into another state
DERIVED_ENV = tuple(name for name in VAR_DERIVED_ENV if name != "CT_DATA_DIR")


def default_state(stream: Path) -> Path:
    """``<var dir>/streams/<stream folder name>`` (name reduced to ``[A-Za-z0-9_.-]``)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(stream).resolve().name).strip("._") or "stream"
    return get_settings().var_dir / "streams" / name


def stream_env(stream: Path, state: Path) -> dict[str, str | None]:
    """The environment that points every setting at ``state`` with ``stream`` as the source (None = unset)."""
    state = Path(state).resolve()
    env: dict[str, str | None] = dict.fromkeys(DERIVED_ENV)
    env.update(
        CT_VAR_DIR=str(state),
        CT_DATA_DIR=str(Path(stream).resolve()),
        MLFLOW_TRACKING_URI=f"sqlite:///{state / 'mlflow' / 'mlflow.db'}",
    )
    return env


def check_stream(stream: Path, state: Path) -> str | None:
    """Why ``stream``/``state`` cannot be used (None when they can)."""
    from model.data import MANIFEST_NAME

    stream, state = Path(stream).resolve(), Path(state).resolve()
    if not (stream / MANIFEST_NAME).is_file():
        return f"{stream} has no {MANIFEST_NAME}: a stream is a folder with {MANIFEST_NAME} and its task CSVs"
    if state == get_settings().var_dir:
        return f"state {state} is the demo's var dir; give the stream its own (--state / STATE=)"
    if state == stream or stream in state.parents or state in stream.parents:
        return f"state {state} and stream {stream} must not contain each other (the stream is only read)"
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of `make learn-stream`; 0 when every task was learned, 1 when a DAG run failed, 2 bad usage."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stream", help="folder with manifest.json and the task CSVs (STREAM=)")
    parser.add_argument("--state", type=Path, help="state folder (STATE=); default var/streams/<folder name>")
    demo.add_conf_argument(parser)
    args = parser.parse_args(argv)
    if not args.stream.strip():
        parser.error("give the stream folder: make learn-stream STREAM=<dir>")
    stream = Path(args.stream).expanduser()
    state = args.state.expanduser() if args.state else default_state(stream)
    problem = check_stream(stream, state)
    if problem:
        parser.error(problem)
    for key, value in stream_env(stream, state).items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    logging.basicConfig(level=logging.WARNING)
    settings = get_settings()
    with DemoConsole(settings.log_dir, verbose=args.verbose) as console:  # the stream's own log dir
        if console.log_path is not None:
            console.say(f"==> Airflow and task logs: {console.log_path}  (VERBOSE=1 prints them here)")
        demo.check_conf(parser, args.conf, console)  # after the env: the DAG file reads settings when parsed
        (settings.var_dir / "mlflow").mkdir(parents=True, exist_ok=True)
        console.say(f"==> stream {settings.source_manifest} -> state {settings.var_dir}")
        code = demo.learn(settings, settings.source_manifest, args.conf, console)
        console.say(
            f"\n==> state of this stream: {settings.var_dir}\n"
            f"    status again: CT_VAR_DIR={settings.var_dir} MLFLOW_TRACKING_URI={settings.mlflow_tracking_uri} "
            "make status"
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
