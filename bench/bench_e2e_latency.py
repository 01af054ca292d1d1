"""Landing-to-champion latency with a real scheduler, each leg timed -> bench/results/e2e_latency.json.

    python -m bench.bench_e2e_latency [--trials 3] [--poll-trials 2] [--out bench/results/e2e_latency.json]

Starts Airflow 3 as deployed (api-server, scheduler, dag-processor, triggerer; LocalExecutor, SQLite) and the
serving app (``python -m include.serving``, following the ``champion`` alias every second) on the embedded
defaults in a throwaway folder, with the default strategy and epochs (nothing overridden but paths and ports).
Each trial lands the next Split-Digits task file into the local landing zone and times, from the landing:

1. ``validated``: the ``validated_task_batch`` Asset event of ``data_validation`` (its timestamp);
2. ``trained``: the end of the asset-triggered ``continual_training`` run's ``train`` task;
3. ``champion``: the registry's ``champion`` alias pointing at the new version (polled every 0.25 s);
4. ``served``: the serving app's ``/health/model`` reporting that version as served (polled every 0.25 s).

Event-driven trials (the ``AssetWatcher`` in the triggerer, ``CT_LANDING_WATCH_INTERVAL_S`` = 2 s) come first;
then the stack restarts with ``CT_LANDING_WATCH=false`` and a one-minute poll (``CT_VALIDATION_POLL_CRON``) for
the poll-only comparison. The deployed poll is every 10 minutes: its expected wait is 300 s more than the
one-minute poll's 30 s, which the results add as ``expected_validated_seconds_at_10_min_poll``. S3 landing is not
timed: moto delivers instantly, so S3's real notification delay (seconds to a minute) is not in these figures.
The harness is the browser tests' (``tests/integration/browser/harness.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
LEGS = ("validated", "trained", "champion", "served")
GOAL_MEDIAN_S, FLOOR_MEDIAN_S = 30.0, 60.0
POLL_CRON = "* * * * *"  # the comparison's poll; the deployed one is */10


def _ts(value: str | None) -> float | None:
    """Epoch seconds of an ISO timestamp from the Airflow REST API."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


class Stack:
    """Airflow (4 components) + the serving app on one project state; restartable with other settings."""

    def __init__(self, root: Path, log_dir: Path) -> None:
        from tests.integration.browser.harness import AirflowStack, Project, free_port

        self.project = Project(root)
        self.project.prepare()
        self.log_dir = log_dir
        self.serving_port = free_port()
        self.airflow = AirflowStack(self.project, log_dir)
        self.serving = None

    def _overrides(self, extra_env: dict[str, str]) -> dict[str, str | None]:
        return {
            "CT_TRAIN_OVERRIDES": None,  # the default strategy and epochs
            "CT_SERVING_PORT": str(self.serving_port),
            "CT_SERVING_CHAMPION_POLL_S": "1",
            "CT_LANDING_WATCH_INTERVAL_S": "2",
            **extra_env,
        }

    def start(self, **extra_env: str) -> float:
        """Start every server with ``extra_env``; returns the seconds the start took."""
        from tests.integration.browser import harness

        started = time.monotonic()
        self.airflow.overrides = self._overrides(extra_env)  # every component and the serving app get them
        self.airflow.start(components=(*harness.COMPONENTS, "triggerer"))
        for dag_id in ("data_validation", "continual_training"):
            resp = self.airflow.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
            resp.raise_for_status()
        if extra_env.get("CT_LANDING_WATCH", "true") != "false":
            self._register_watcher()
        self.serving = harness.start(
            "serving", [sys.executable, "-m", "include.serving"], self.airflow.env(), self.log_dir
        )
        url = f"http://127.0.0.1:{self.serving_port}/health"
        harness.wait_until(
            "serving app", lambda: httpx.get(url, timeout=2).status_code < 500, 120, [self.serving]
        )
        return time.monotonic() - started

    def _register_watcher(self) -> None:
        """Re-parse data_validation now that it is unpaused: Airflow registers an Asset's watchers only for
        unpaused DAGs, at parse time (``dag_processing/collection.py``); then wait until the Asset has one."""
        details = self.airflow.get("/api/v2/dags/data_validation/details") or {}
        self.airflow.request("PUT", f"/api/v2/parseDagFile/{details['file_token']}").raise_for_status()

        def watched() -> bool:
            body = self.airflow.get("/api/v2/assets?name_pattern=landed_task_file") or {}
            return any(a.get("watchers") for a in body.get("assets", []))

        _wait("landing watcher registered", watched, 120, self, interval=1.0)

    def stop(self) -> None:
        """Stop the serving app and Airflow."""
        if self.serving is not None:
            self.serving.stop()
        self.airflow.stop()


def _champion_version(tracking_uri: str) -> str | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        mv = MlflowClient(tracking_uri=tracking_uri).get_model_version_by_alias(
            "continual-tiny-transformer", "champion"
        )
    except MlflowException:
        return None
    return str(mv.version)


def _served_version(port: int) -> str | None:
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/health/model", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return None
    version = (body.get("details") or {}).get("served_version", body.get("served_version"))
    return None if version is None else str(version)


def _wait(what: str, check: Any, timeout: float, stack: Stack, interval: float = 0.25) -> Any:
    from tests.integration.browser.harness import wait_until

    procs = [*stack.airflow.procs, *([stack.serving] if stack.serving else [])]
    return wait_until(what, check, timeout, procs, interval=interval)


def run_trial(stack: Stack, task_file: str, timeout: float) -> dict[str, Any]:
    """Land ``task_file``; the seconds from landing to each leg."""
    project, airflow = stack.project, stack.airflow
    since = {
        r["dag_run_id"]
        for r in (airflow.get("/api/v2/dags/continual_training/dagRuns?limit=100") or {}).get("dag_runs", [])
    }
    before = _champion_version(project.tracking_uri)
    landing = project.var / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    if not (landing / "manifest.json").exists():
        shutil.copy(project.var / "data" / "split_digits" / "manifest.json", landing / "manifest.json")
    staged = project.var / "staging" / task_file  # same filesystem: the file appears in the zone at once
    staged.parent.mkdir(exist_ok=True)
    shutil.copy(project.var / "data" / "split_digits" / task_file, staged)
    landed = time.time()
    os.replace(staged, landing / task_file)

    def event() -> float | None:
        body = airflow.get("/api/v2/assets/events?source_dag_id=data_validation&order_by=-timestamp&limit=20")
        for e in (body or {}).get("asset_events", []):
            if (e.get("extra") or {}).get("path", "").endswith(task_file) and _ts(e["timestamp"]) >= landed:
                return _ts(e["timestamp"])
        return None

    def trained() -> float | None:
        body = airflow.get("/api/v2/dags/continual_training/dagRuns?limit=100") or {"dag_runs": []}
        for run in body["dag_runs"]:
            if run["dag_run_id"] in since:
                continue
            ti = airflow.get(
                f"/api/v2/dags/continual_training/dagRuns/{run['dag_run_id']}/taskInstances/train"
            )
            if ti and ti.get("state") == "success" and ti.get("end_date"):
                return _ts(ti["end_date"])
            if run["state"] == "failed":
                raise RuntimeError(f"continual_training run {run['dag_run_id']} failed")
        return None

    def champion() -> tuple[float, str] | None:
        version = _champion_version(project.tracking_uri)
        return (time.time(), version) if version not in (None, before) else None

    at = {"validated": _wait("validated event", event, timeout, stack)}
    at["trained"] = _wait("train finished", trained, timeout, stack, interval=1.0)
    at["champion"], version = _wait("champion moved", champion, timeout, stack)
    at["served"] = _wait(
        "served version",
        lambda: time.time() if _served_version(stack.serving_port) == version else None,
        timeout,
        stack,
    )
    return {
        "task_file": task_file,
        "version": version,
        **{f"{k}_seconds": round(at[k] - landed, 2) for k in LEGS},
    }


def summarize(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and max of the total (to served) and the median of each leg's cumulative seconds."""
    if not trials:
        return {"trials": []}
    totals = [t["served_seconds"] for t in trials]
    return {
        "median_seconds": round(statistics.median(totals), 2),
        "max_seconds": round(max(totals), 2),
        "leg_medians_seconds": {
            k: round(statistics.median(t[f"{k}_seconds"] for t in trials), 2) for k in LEGS
        },
        "trials": trials,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the trials, print the table, write the JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=3, help="event-driven trials (each learns a task)")
    parser.add_argument("--poll-trials", type=int, default=2, help="poll-only trials after them (0: none)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a leg may take")
    parser.add_argument("--out", type=Path, default=RESULTS / "e2e_latency.json")
    args = parser.parse_args(argv)
    from model.config import TrainConfig

    if args.trials + args.poll_trials > 5:
        parser.error("Split-Digits has 5 tasks: trials + poll-trials <= 5")
    files = [f"task_{k}.csv" for k in range(args.trials + args.poll_trials)]
    root = Path(tempfile.mkdtemp(prefix="bench_e2e_"))
    stack = Stack(root, root / "logs")
    record: dict[str, Any] = {"strategy": TrainConfig().strategy, "epochs": TrainConfig().epochs}
    try:
        record["start_seconds"] = round(stack.start(), 1)
        print(f"stack up in {record['start_seconds']}s (logs {root / 'logs'})", flush=True)
        event_trials = []
        for name in files[: args.trials]:
            event_trials.append(run_trial(stack, name, args.timeout))
            print("event  ", json.dumps(event_trials[-1]), flush=True)
        poll_trials = []
        if args.poll_trials:
            stack.stop()
            record["restart_seconds"] = round(
                stack.start(CT_LANDING_WATCH="false", CT_VALIDATION_POLL_CRON=POLL_CRON), 1
            )
            for name in files[args.trials :]:
                poll_trials.append(run_trial(stack, name, args.timeout))
                print("poll   ", json.dumps(poll_trials[-1]), flush=True)
    finally:
        stack.stop()
    record |= summarize(event_trials)
    poll = summarize(poll_trials)
    if poll_trials:
        poll["poll_cron"] = POLL_CRON
        poll["expected_validated_seconds_at_10_min_poll"] = round(
            poll["leg_medians_seconds"]["validated"] + 270, 1
        )
    record["poll_only"] = poll
    record |= {
        "goal_median_seconds": GOAL_MEDIAN_S,
        "floor_median_seconds": FLOOR_MEDIAN_S,
        "meets_goal": record.get("median_seconds", 1e9) < GOAL_MEDIAN_S,
        "meets_floor": record.get("median_seconds", 1e9) < FLOOR_MEDIAN_S,
        "note": "local landing zone; S3 via moto delivers instantly, so S3's real notification delay is left out",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"event-driven: median {record.get('median_seconds')} s, max {record.get('max_seconds')} s, legs {record.get('leg_medians_seconds')}"
    )
    if poll_trials:
        print(
            f"poll-only ({POLL_CRON}): median {poll['median_seconds']} s, legs {poll['leg_medians_seconds']}"
        )
    print(f"wrote {args.out}")
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
