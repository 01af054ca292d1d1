"""``make chaos``: the bad-request matrix against a running app and the training crash matrix, in one table.

    python -m include.serving.chaos                       # both matrices, the app started on a learned state
    python -m include.serving.chaos --url URL --token T   # the bad-request matrix against an app you run
    python -m include.serving.chaos --no-crash            # the bad-request matrix only

Bad requests (``include.serving.bad_requests.CASES``) go out as raw HTTP bytes, one connection each, while a
prober thread asks ``GET /health`` every 20 ms: a probe slower than ``--unresponsive-ms`` (default 1000 ms)
counts its whole duration as seconds the app was unresponsive, and the slowest probe is printed beside the
100 ms goal. The crash matrix is ``include.ops.chaos_training``: SIGKILL at every fault step, rerun, audit.
One row per kind: kinds tried, 4xx, 5xx (must be 0), seconds ``/health`` was unresponsive (must be 0), tasks
learned twice (must be 0). Exit 1 when any of these fails, a status is not the expected one, or a case fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from include.serving.bad_requests import CASES, BadRequest, send

HEALTH_GOAL_MS = 100.0


@dataclass
class HealthProber:
    """Probe ``GET /health`` in a thread; record each probe's latency and the seconds it was unresponsive."""

    url: str
    interval_s: float = 0.02
    unresponsive_ms: float = 1000.0
    latencies_ms: list[float] = field(default_factory=list)
    unresponsive_s: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _probe(self) -> None:
        started = time.perf_counter()
        ok = False
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=self.unresponsive_ms / 1000) as resp:  # noqa: S310
                ok = resp.status < 500
        except OSError as exc:
            ok = 400 <= getattr(exc, "code", 0) < 500  # a 4xx answer is an answer; 503 counts as unhealthy
        took_ms = (time.perf_counter() - started) * 1000
        self.latencies_ms.append(took_ms)
        if not ok or took_ms > self.unresponsive_ms:
            self.unresponsive_s += took_ms / 1000

    def run(self) -> None:
        """Probe until stopped."""
        while not self._stop.is_set():
            self._probe()
            self._stop.wait(self.interval_s)

    @contextmanager
    def running(self) -> Iterator[HealthProber]:
        """Probe in a daemon thread for the duration of the block."""
        thread = threading.Thread(target=self.run, name="health-prober", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=10)

    @property
    def max_ms(self) -> float:
        """The slowest probe, in milliseconds (0 when none ran)."""
        return max(self.latencies_ms, default=0.0)


def run_bad_requests(
    url: str, token: str | None, cases: tuple[BadRequest, ...] = CASES, unresponsive_ms: float = 1000.0
) -> list[dict[str, Any]]:
    """Send every case to the app at ``url`` with ``/health`` probed meanwhile; one row per case."""
    rows = []
    for case in cases:
        prober = HealthProber(url, unresponsive_ms=unresponsive_ms)
        with prober.running():
            try:
                status, body = send(url, case, token)
            except OSError as exc:  # no answer at all: as bad as a 5xx
                status, body = 0, str(exc).encode()
        rows.append(
            {
                "category": case.category,
                "kind": case.kind,
                "status": status,
                "expected": sorted(case.expect),
                "ok": status in case.expect,
                "4xx": int(400 <= status < 500),
                "5xx": int(status >= 500 or status == 0),
                "health_unresponsive_s": round(prober.unresponsive_s, 3),
                "health_max_ms": round(prober.max_ms, 1),
                "learned_twice": 0,
                "body": body[:4000].decode("utf-8", "replace"),
            }
        )
    return rows


def crash_rows(epochs: int, tasks: int, max_samples: int) -> list[dict[str, Any]]:
    """The training crash matrix (every fault step x retry/new run) as rows of the one table."""
    from include.ops.chaos_training import MODES, Case, run_matrix
    from model.faults import TRAINING_STEPS as STEPS

    with tempfile.TemporaryDirectory(prefix="ct-chaos-") as tmp:
        cases = [
            Case(s, m, Path(tmp) / f"{s}-{m}", tasks, 0, epochs, max_samples) for s in STEPS for m in MODES
        ]
        matrix = run_matrix(cases)
    return [
        {
            "category": "training_crash",
            "kind": f"kill at {r['step']}, {r['mode']}",
            "status": "completed" if r["completed"] else "stuck",
            "ok": r["ok"],
            "4xx": 0,
            "5xx": 0,
            "health_unresponsive_s": 0.0,
            "health_max_ms": 0.0,
            "learned_twice": len(r["learned_twice"]),
            "registered_twice": len(r["registered_twice"]),
        }
        for r in matrix
    ]


@contextmanager
def learned_app(work: Path, token: str) -> Iterator[str]:
    """The serving app in its own process on a freshly learned state (one task, one epoch); yields its URL."""
    from include.ops.chaos_training import _learn, _run_settings, case_settings
    from include.serving.server import ServerProcess
    from model.config import TrainConfig
    from model.data import write_split_digits

    settings = case_settings(work / "var")
    write_split_digits(settings.data_dir)
    cfg = TrainConfig(epochs=1, max_samples_per_task=64).to_dict()
    _learn(settings, "task_0", cfg, "chaos__serve", _run_settings(cfg))
    env = {"CT_VAR_DIR": str(settings.var_dir), "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri}
    env["CT_API_TOKEN"] = token
    with ServerProcess(env, log_file=work / "serving.log") as server:
        yield server.url


def format_table(rows: list[dict[str, Any]]) -> str:
    """One fixed-width row per kind, then the totals the issue asks for."""
    lines = [f"{'category':<15} {'kind':<44} {'status':>9} {'ok':>3} {'4xx':>3} {'5xx':>3} {'unresp_s':>8} "
             f"{'health_ms':>9} {'twice':>5}"]  # fmt: skip
    for r in rows:
        lines.append(
            f"{r['category']:<15} {r['kind'][:44]:<44} {r['status']!s:>9} {'y' if r['ok'] else 'N':>3} "
            f"{r['4xx']:>3} {r['5xx']:>3} {r['health_unresponsive_s']:>8.3f} {r['health_max_ms']:>9.1f} "
            f"{r['learned_twice']:>5}"
        )
    summary = totals(rows)
    lines.append(
        f"kinds tried: {summary['kinds']} in {summary['categories']} categories; 4xx: {summary['4xx']}; "
        f"5xx: {summary['5xx']}; not as expected: {summary['failed']}; seconds /health unresponsive: "
        f"{summary['health_unresponsive_s']}; slowest /health: {summary['health_max_ms']} ms "
        f"(goal < {HEALTH_GOAL_MS:.0f} ms); tasks learned twice: {summary['learned_twice']}"
    )
    return "\n".join(lines)


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The totals of the table: kinds, categories, 4xx, 5xx, failures, unresponsive seconds, learned twice."""
    return {
        "kinds": len(rows),
        "categories": len({r["category"] for r in rows}),
        "4xx": sum(r["4xx"] for r in rows),
        "5xx": sum(r["5xx"] for r in rows),
        "failed": sum(not r["ok"] for r in rows),
        "health_unresponsive_s": round(sum(r["health_unresponsive_s"] for r in rows), 3),
        "health_max_ms": round(max((r["health_max_ms"] for r in rows), default=0.0), 1),
        "learned_twice": sum(r["learned_twice"] for r in rows),
    }


def passed(rows: list[dict[str, Any]]) -> bool:
    """True when every kind was handled as expected, with no 5xx, no unresponsive second, nothing learned twice."""
    t = totals(rows)
    return t["failed"] == 0 and t["5xx"] == 0 and t["health_unresponsive_s"] == 0 and t["learned_twice"] == 0


def quiet_mlflow() -> None:
    """Keep MLflow's progress bars, INFO lines and signature warnings out of the table's terminal."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\.|$)")
    logging.getLogger("mlflow").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point of ``make chaos``: print the table (and write ``--json``); exit 1 on any failure."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=None, help="a running app (default: start one on a learned state)")
    parser.add_argument("--token", default=None, help="its API token (with --url)")
    parser.add_argument("--no-crash", action="store_true", help="skip the training crash matrix")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per training in the crash matrix")
    parser.add_argument("--tasks", type=int, default=2, help="tasks per crash case")
    parser.add_argument("--max-samples", type=int, default=64, help="training samples per task")
    parser.add_argument("--unresponsive-ms", type=float, default=1000.0)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this file")
    args = parser.parse_args(argv)
    quiet_mlflow()
    print("==> bad-request matrix", flush=True)
    if args.url:
        rows = run_bad_requests(args.url.rstrip("/"), args.token, unresponsive_ms=args.unresponsive_ms)
    else:
        token = secrets.token_urlsafe(16)
        with tempfile.TemporaryDirectory(prefix="ct-chaos-app-") as tmp, learned_app(Path(tmp), token) as url:
            rows = run_bad_requests(url, token, unresponsive_ms=args.unresponsive_ms)
    if not args.no_crash:
        print("==> training crash matrix (SIGKILL at every fault step, then rerun)", flush=True)
        rows += crash_rows(args.epochs, args.tasks, args.max_samples)
    print(format_table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"totals": totals(rows), "rows": rows}, indent=2) + "\n")
    return 0 if passed(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
