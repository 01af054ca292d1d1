"""`make demo` end to end in a fresh state, timed per step -> bench/results/demo.json.

A temporary CT_VAR_DIR and AIRFLOW_HOME: the SQLite metadata DB is migrated there first (``airflow db migrate``,
as `make airflow-db` does), then the demo runs in its own interpreter exactly as `make demo` starts it, with
``--timings`` for the seconds of each of its steps: ``prepare`` (argument check with the DAG parse, the stream
written), ``validate`` (landing + the data_validation run), ``train`` (one continual_training run per task),
``status`` (the matrix). ``process`` is the demo's whole wall time, interpreter start, imports and exit included
(``outside_steps_seconds``: that part alone); ``cpu_seconds`` is the CPU time the child used (on a loaded
machine, wall minus CPU is time spent waiting for a core).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include.ops.settings import VAR_DERIVED_ENV
from model.fsio import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
# every location the project derives from CT_VAR_DIR, unset so the demo's state is the temporary one only
DERIVED_ENV = (*VAR_DERIVED_ENV, "MLFLOW_TRACKING_URI", "CT_TRAIN_OVERRIDES")


def fresh_env(tmp: Path) -> dict[str, str]:
    """The environment of `make demo` (the Makefile's exports) pointed at a fresh state under ``tmp``."""
    env = {k: v for k, v in os.environ.items() if k not in DERIVED_ENV}
    airflow_home = tmp / "airflow"
    env.update(
        PYTHONPATH=str(ROOT),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{airflow_home / 'airflow.db'}",
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        GX_ANALYTICS_ENABLED="false",
        MPLBACKEND="Agg",
        CT_VAR_DIR=str(tmp / "var"),
    )
    return env


def timed(
    argv: list[str], env: dict[str, str], **kwargs: Any
) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run ``argv`` from the project root; (result, wall seconds, CPU seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, text=True, capture_output=True, **kwargs)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc, wall, cpu


def run_demo(tmp: Path, conf: dict[str, Any] | None) -> dict[str, Any]:
    """Migrate the metadata DB and run the demo in ``tmp``; the figures of demo.json."""
    env = fresh_env(tmp)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True)
    airflow = Path(sys.executable).parent / "airflow"
    migrate, migrate_s, migrate_cpu = timed([str(airflow), "db", "migrate"], env)
    if migrate.returncode != 0:
        raise SystemExit(f"airflow db migrate failed:\n{migrate.stdout[-3000:]}{migrate.stderr[-3000:]}")
    timings = tmp / "timings.json"
    argv = [sys.executable, "-m", "include.airflow_glue.demo", "--timings", str(timings)]
    if conf:
        argv += ["--conf", json.dumps(conf)]
    demo, demo_s, demo_cpu = timed(argv, env)
    recorded = json.loads(timings.read_text()) if timings.is_file() else {"steps": [], "total_seconds": None}
    steps, inside = recorded["steps"], recorded["total_seconds"]
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "conf": conf or {},
        "exit_code": demo.returncode,
        "steps": [
            {"step": "airflow_db", "seconds": round(migrate_s, 3), "cpu_seconds": round(migrate_cpu, 3)}
        ]
        + steps
        + [{"step": "process", "seconds": round(demo_s, 3), "cpu_seconds": round(demo_cpu, 3)}],
        "total_seconds": round(migrate_s + demo_s, 3),
        # the process's wall time outside the demo's own clock: interpreter start, first imports, exit
        "outside_steps_seconds": None if inside is None else round(demo_s - inside, 3),
        "printed_lines": len(demo.stdout.splitlines()) + len(demo.stderr.splitlines()),
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "arch": platform.machine(),
        },
        "output_tail": (demo.stdout + demo.stderr).splitlines()[-25:] if demo.returncode else [],
    }


def table(result: dict[str, Any]) -> str:
    """The steps as a text table."""
    lines = [f"{'step':12} {'task':8} {'seconds':>8}"]
    for step in result["steps"]:
        lines.append(f"{step['step']:12} {step.get('task_id', ''):8} {step['seconds']:8.1f}")
    lines.append(f"{'total':12} {'':8} {result['total_seconds']:8.1f}")
    if result["outside_steps_seconds"] is not None:
        lines.append(
            f"(process minus the demo's steps: {result['outside_steps_seconds']:.1f} s of start, imports, exit)"
        )
    lines.append(
        f"{result['printed_lines']} lines printed; exit {result['exit_code']}; "
        f"{result['machine']['cpus']} CPUs, load {result['machine']['loadavg_1m']} at the end"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the bench once; write demo.json and print the table; non-zero when the demo failed."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conf", type=json.loads, default=None, help="the demo's --conf (default: none)")
    parser.add_argument("--out", type=Path, default=RESULTS / "demo.json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary state (its path is printed)")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench_demo_"))
    try:
        result = run_demo(tmp, args.conf)
    finally:
        if args.keep:
            print(f"state kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    atomic_write_json(args.out, result)
    print(table(result))
    for line in result["output_tail"]:
        print(f"  | {line}")
    print(f"wrote {args.out}")
    return 0 if result["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
