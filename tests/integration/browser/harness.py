"""Real servers for browser tests: Airflow (api-server, scheduler, dag-processor) and MLflow, each in its own
process group on a free 127.0.0.1 port, with every path in a tmp folder. Stopped by process group."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.paths import ROOT

ARTIFACTS = ROOT / "test-artifacts"
BIN = Path(sys.executable).parent
ADMIN_USER = "admin"
COMPONENTS = ("api-server", "scheduler", "dag-processor")  # + "triggerer" for AssetWatchers and deferrals
# Tiny but real training: the full task_0 data for a few epochs reaches the 0.9 accuracy floor in seconds.
TRAIN_OVERRIDES = {"epochs": 3, "finetune_epochs": 0}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Proc:
    """A server process started in its own session (= process group), logging to a file."""

    name: str
    popen: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        """True while the process has not exited."""
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of its log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def terminate(self) -> None:
        """Send SIGTERM to the whole process group (no wait)."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the process group, wait up to ``timeout``, then SIGKILL whatever is left of the group."""
        self.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=timeout)
        # the leader may be gone while children (task runners, workers) linger in its group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)


def stop_all(procs: list[Proc], timeout: float = 10.0) -> None:
    """Stop several servers at once: SIGTERM every group first, then wait/kill each."""
    for proc in procs:
        proc.terminate()
    deadline = time.monotonic() + timeout
    for proc in procs:
        proc.stop(timeout=max(0.5, deadline - time.monotonic()))


def reap(marker: str) -> list[int]:
    """SIGKILL leftover processes whose environment contains ``marker`` (our unique tmp path); their pids."""
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in environ:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    return killed


def start(name: str, cmd: list[str], env: dict[str, str], log_dir: Path, cwd: Path = ROOT) -> Proc:
    """Start ``cmd`` in a new session with stdout+stderr to ``log_dir/<name>.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with open(log, "wb") as fh:
        popen = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Proc(name, popen, log)


def wait_until(
    what: str, check: Callable[[], Any], timeout: float, procs: list[Proc], interval: float = 1.0
) -> Any:
    """Poll ``check`` until it returns truthy; fail early with log tails when a server died or time ran out."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        dead = [p for p in procs if not p.alive()]
        if dead:
            logs = "\n".join(f"--- {p.name} exited {p.popen.returncode}:\n{p.tail()}" for p in dead)
            raise RuntimeError(f"while waiting for {what}, a server exited:\n{logs}")
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # not up yet
            last_exc = exc
        time.sleep(interval)
    logs = "\n".join(f"--- {p.name}:\n{p.tail()}" for p in procs)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s (last error: {last_exc})\n{logs}")


def clean_env() -> dict[str, str]:
    """The test process env without Airflow/project/MLflow settings (the servers get their own)."""
    drop = ("AIRFLOW__", "AIRFLOW_", "CT_", "MLFLOW_", "PYTEST_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    env["GX_ANALYTICS_ENABLED"] = "false"
    env["MPLBACKEND"] = "Agg"
    env["PYTHONUNBUFFERED"] = "1"
    # offline machine: no usage telemetry from MLflow (server and UI) or Airflow
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["DO_NOT_TRACK"] = "true"
    env["SCARF_ANALYTICS"] = "false"
    return env


@dataclass
class Project:
    """One throwaway project state: CT_* paths, the MLflow store, and the ports the servers will use."""

    root: Path
    airflow_port: int = field(default_factory=free_port)
    mlflow_port: int = field(default_factory=free_port)

    @property
    def var(self) -> Path:
        """The project's var/ folder."""
        return self.root / "var"

    @property
    def mlflow_db(self) -> Path:
        """The MLflow SQLite store shared by Airflow tasks, the plugin and the MLflow server."""
        return self.var / "mlflow" / "mlflow.db"

    @property
    def tracking_uri(self) -> str:
        """``sqlite:///`` URI of the MLflow store."""
        return f"sqlite:///{self.mlflow_db}"

    @property
    def mlflow_url(self) -> str:
        """Base URL of the MLflow UI (also what the plugin links to)."""
        return f"http://127.0.0.1:{self.mlflow_port}"

    def env(self) -> dict[str, str]:
        """CT_* and MLflow variables pointing into this project."""
        return {
            "CT_VAR_DIR": str(self.var),
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "CT_MLFLOW_UI_URL": self.mlflow_url,
            "CT_TRAIN_OVERRIDES": json.dumps(TRAIN_OVERRIDES),
        }

    def prepare(self) -> None:
        """Write the Split-Digits task stream into the project's data folder."""
        from model.data import write_split_digits

        (self.var / "mlflow").mkdir(parents=True, exist_ok=True)
        write_split_digits(self.var / "data" / "split_digits")


class AirflowStack:
    """api-server + scheduler + dag-processor on SQLite/LocalExecutor, dags/ and plugins/ of this repo."""

    def __init__(self, project: Project, log_dir: Path) -> None:
        self.project = project
        self.home = project.root / "airflow"
        self.log_dir = log_dir
        self.password = secrets.token_urlsafe(12)
        self.url = f"http://127.0.0.1:{project.airflow_port}"
        self.procs: list[Proc] = []
        self._token: str | None = None
        self.overrides: dict[
            str, str | None
        ] = {}  # on top of the project's env (None: unset), e.g. a bench's

    def env(self) -> dict[str, str]:
        """Environment of every Airflow process."""
        env = clean_env()
        env.update(self.project.env())
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.project.airflow_port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                # parse each file once at start; the test does not edit DAGs (saves CPU on a 2-core box)
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "600",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            }
        )
        env.update({k: v for k, v in self.overrides.items() if v is not None})
        for key in [k for k, v in self.overrides.items() if v is None]:
            env.pop(key, None)
        return env

    def start(self, timeout: float = 240.0, components: tuple[str, ...] = COMPONENTS) -> None:
        """Migrate the DB, seed the admin password, start the servers and wait until DAGs are served.

        After :meth:`stop` it starts again on the same state (new secrets: the old token is dropped)."""
        self.procs, self._token = [], None
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # SimpleAuthManager keeps users' passwords here and only generates the ones it does not find
        (self.home / "simple_auth_manager_passwords.json.generated").write_text(
            json.dumps({ADMIN_USER: self.password})
        )
        env = self.env()
        migrate = subprocess.run(
            [str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True, timeout=timeout
        )
        (self.log_dir / "airflow-db-migrate.log").write_text(migrate.stdout + migrate.stderr)
        if migrate.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{migrate.stderr[-3000:]}")
        for name in components:
            self.procs.append(start(f"airflow-{name}", [str(BIN / "airflow"), name], env, self.log_dir))
        wait_until("Airflow health", self._healthy, timeout, self.procs)
        wait_until(
            "DAG continual_training parsed",
            lambda: self.get("/api/v2/dags/continual_training"),
            120,
            self.procs,
        )

    def _healthy(self) -> bool:
        body = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
        return all(
            body.get(part, {}).get("status") == "healthy"
            for part in ("metadatabase", "scheduler", "dag_processor")
        )

    def token(self) -> str:
        """A JWT for the admin user from ``POST /auth/token``."""
        if self._token is None:
            resp = httpx.post(
                f"{self.url}/auth/token", json={"username": ADMIN_USER, "password": self.password}, timeout=10
            )
            resp.raise_for_status()
            self._token = resp.json()["access_token"]
        return self._token

    def get(self, path: str) -> dict[str, Any] | None:
        """GET a REST API path as admin; the JSON body, or None on a non-200 answer."""
        resp = httpx.get(f"{self.url}{path}", headers={"Authorization": f"Bearer {self.token()}"}, timeout=10)
        return resp.json() if resp.status_code == 200 else None

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Any REST API call as admin."""
        headers = {"Authorization": f"Bearer {self.token()}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300.0) -> dict[str, Any]:
        """Wait until the DAG run reaches a final state; returns the run (with ``state``)."""

        def final() -> dict[str, Any] | None:
            run = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            return run if run and run["state"] in ("success", "failed") else None

        return wait_until(f"{dag_id} run {run_id}", final, timeout, self.procs, interval=2.0)

    def stop(self) -> None:
        """Stop every server, then anything still running with this stack's AIRFLOW_HOME (task runners)."""
        stop_all(self.procs)
        reap(str(self.home))


class MlflowServer:
    """``mlflow server`` on the project's SQLite store."""

    def __init__(self, project: Project, log_dir: Path) -> None:
        self.project = project
        self.log_dir = log_dir
        self.url = project.mlflow_url
        self.proc: Proc | None = None

    def launch(self) -> None:
        """Start the server process (once) without waiting for it."""
        if self.proc is not None:
            return
        cmd = [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            self.project.tracking_uri,
            "--default-artifact-root",
            (self.project.var / "mlflow" / "artifacts").as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.project.mlflow_port),
            "--workers",
            "1",
        ]
        self.proc = start("mlflow-server", cmd, clean_env(), self.log_dir)

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Wait until the server answers its REST API."""
        assert self.proc is not None, "launch() first"

        def up() -> bool:
            r = httpx.get(f"{self.url}/api/2.0/mlflow/experiments/search?max_results=10", timeout=5)
            return r.status_code == 200

        wait_until("MLflow server", up, timeout, [self.proc])

    def start(self, timeout: float = 180.0) -> None:
        """Start the server and wait until it answers the REST API."""
        self.launch()
        self.wait_ready(timeout)

    def stop(self) -> None:
        """Stop the server's process group."""
        if self.proc:
            self.proc.stop()
