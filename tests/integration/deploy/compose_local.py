"""Run docker-compose.yml's services as local processes: the compose file's own commands, environment and
health checks, with container hosts, ports and paths remapped to 127.0.0.1, free ports and temp folders.

No Docker engine runs here, so this is how the compose file is exercised for real: ``docker-compose config``
resolves it with a generated .env, then every service whose program exists on this machine is started from
its ``command`` (the image's entrypoint replaced by the local program) and declared ready when its own
``healthcheck`` passes. PostgreSQL is the machine's server (databases created per run); S3/MinIO is a moto
server. Every process runs in its own process group and is stopped by that group.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.paths import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
ROLLBACK_FILE = ROOT / "docker-compose.rollback.yml"
ENV_EXAMPLE = ROOT / ".env.example"
VENV_BIN = Path(sys.executable).parent

# Image -> the local program that plays its entrypoint (None: the command is a full argv already).
_AIRFLOW_PASSTHROUGH = {"bash", "python", "airflow"}  # as the official entrypoint: the rest is `airflow ...`
# Paths the images define (not in the compose file) -> the folder name standing in for them.
_IMAGE_PATHS = {"/opt/airflow": "airflow-home"}
# The image's own environment that the compose file relies on.
_IMAGE_ENV = {"airflow": {"AIRFLOW_HOME": "/opt/airflow"}, "app": {"PYTHONPATH": "/opt/ct"}}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def resolve_compose(env_file: Path, files: Iterable[Path] = (COMPOSE_FILE,)) -> dict[str, Any]:
    """``docker-compose --env-file ENV -f ... config`` parsed; AssertionError with stderr when it fails."""
    cmd = ["docker-compose", "--env-file", str(env_file)]
    for f in files:
        cmd += ["-f", str(f)]
    proc = subprocess.run([*cmd, "config"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, f"docker-compose config failed:\n{proc.stderr}"
    return yaml.safe_load(proc.stdout)


def image_kind(service: Mapping[str, Any]) -> str:
    """``airflow``, ``prometheus``, ``pushgateway``, ``redis``, ``mlflow``, ``app`` or the image name."""
    image = str(service.get("image", ""))
    for kind in ("airflow", "prometheus", "pushgateway", "redis", "mlflow", "app", "postgres", "minio"):
        if f"/{kind}:" in image or image.startswith(f"{kind}:") or f"/{kind}/" in image:
            return kind
    return image


def _container_ports(service: Mapping[str, Any]) -> list[int]:
    ports = [
        int(p["target"]) if isinstance(p, dict) else int(str(p).split(":")[-1].split("/")[0])
        for p in service.get("ports", [])
    ]
    ports += [int(str(p).split("/")[0]) for p in service.get("expose", [])]
    return sorted(set(ports))


def _volume(vol: str | Mapping[str, Any]) -> tuple[str, str, bool]:
    """``(source, target, is_bind_mount)`` of a volume in short (``src:dst:mode``) or long syntax."""
    if isinstance(vol, Mapping):
        return str(vol["source"]), str(vol["target"]), vol.get("type") == "bind"
    source, target = str(vol).split(":")[:2]
    return source, target, source.startswith(("/", "."))


@dataclass
class LocalService:
    """One compose service turned into a local process spec."""

    name: str
    kind: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    healthcheck: list[str] | None
    ports: dict[int, int]  # container port -> local port
    log_path: Path
    proc: subprocess.Popen | None = None

    def url(self, container_port: int) -> str:
        """``http://127.0.0.1:<local port>`` of a container port."""
        return f"http://127.0.0.1:{self.ports[container_port]}"


@dataclass
class LocalStack:
    """The resolved compose file, mapped onto this machine; starts, checks and stops services."""

    config: dict[str, Any]
    workdir: Path
    external: dict[str, tuple[str, int]] = field(default_factory=dict)  # service -> (host, port) outside
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)  # service -> env added on top
    services: dict[str, LocalService] = field(default_factory=dict)
    _ports: dict[tuple[str, int], int] = field(default_factory=dict)
    _paths: dict[str, dict[str, str]] = field(default_factory=dict)  # service -> container path -> local
    stop_seconds: dict[str, float] = field(default_factory=dict)  # how long each took to exit on SIGTERM

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for name, svc in self.config["services"].items():
            if name in self.external:
                host, port = self.external[name]
                for cport in _container_ports(svc) or [port]:
                    self._ports[(name, cport)] = port
                continue
            for cport in _container_ports(svc):
                self._ports[(name, cport)] = free_port()
        for name, svc in self.config["services"].items():
            paths = {container: str(self.workdir / local) for container, local in _IMAGE_PATHS.items()}
            if svc.get("working_dir") == "/opt/ct":
                paths["/opt/ct"] = str(ROOT)  # the image copies the project there
            for vol in svc.get("volumes", []):
                source, target, bind = _volume(vol)
                paths[target] = source if bind else str(self.workdir / "volumes" / source)
            self._paths[name] = paths
            for local in paths.values():
                if local.startswith(str(self.workdir)):
                    Path(local).mkdir(parents=True, exist_ok=True)

    # ---- rewriting ------------------------------------------------------------------------------------

    def local_port(self, service: str, container_port: int) -> int:
        """The local port standing in for ``service:container_port``."""
        return self._ports[(service, container_port)]

    def local_path(self, service: str, container_path: str) -> Path:
        """The local path standing in for ``container_path`` inside ``service``'s container."""
        return Path(self.rewrite(container_path, service))

    def rewrite(self, text: str, service: str) -> str:
        """Rewrite hosts, ports and paths of one string as seen from ``service``'s container."""
        text = text.replace("$$", "$")
        for (svc, cport), lport in self._ports.items():
            host = self.external.get(svc, ("127.0.0.1", 0))[0]
            text = re.sub(rf"(?<![\w.-]){re.escape(svc)}:{cport}(?!\d)", f"{host}:{lport}", text)
            if svc == service:
                text = re.sub(
                    rf"(?:localhost|0\.0\.0\.0|127\.0\.0\.1):{cport}(?!\d)", f"127.0.0.1:{lport}", text
                )
                text = re.sub(rf"(?<![\w.\]]):{cport}(?!\d)", f"127.0.0.1:{lport}", text)
                text = re.sub(rf"((?:--port|-p)[ =]){cport}(?!\d)", rf"\g<1>{lport}", text)
        paths = self._paths.get(service, {})
        if paths:
            prefixes = sorted(paths, key=len, reverse=True)
            pattern = r"(?<![\w.-])(" + "|".join(re.escape(p) for p in prefixes) + r")(?=/|$|[\s'\",:;])"
            text = re.sub(pattern, lambda m: paths[m.group(1)], text)
        return text.replace("0.0.0.0", "127.0.0.1")

    def _argv(self, name: str, tokens: list[str]) -> list[str]:
        out = []
        for i, token in enumerate(tokens):
            if (
                i
                and tokens[i - 1] in ("--port", "-p")
                and token.isdigit()
                and (name, int(token)) in self._ports
            ):
                out.append(str(self._ports[(name, int(token))]))
            else:
                out.append(self.rewrite(token, name))
        return out

    def spec(self, name: str) -> LocalService:
        """The local process spec of compose service ``name`` (cached)."""
        if name in self.services:
            return self.services[name]
        svc = self.config["services"][name]
        kind = image_kind(svc)
        command = svc.get("command") or []
        command = shlex.split(command) if isinstance(command, str) else list(command)
        entry = svc.get("entrypoint")
        if entry:
            command = (shlex.split(entry) if isinstance(entry, str) else list(entry)) + command
        elif kind == "airflow" and command and command[0] not in _AIRFLOW_PASSTHROUGH:
            command = ["airflow", *command]
        elif kind == "prometheus":
            command = ["prometheus", *command]
        elif kind == "pushgateway":
            command = ["prometheus-pushgateway", *command]
        env = {
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "HOSTNAME": socket.gethostname(),
        }
        for key, value in _IMAGE_ENV.get(kind, {}).items():
            env[key] = self.rewrite(value, name)
        for key, value in (svc.get("environment") or {}).items():
            value = "" if value is None else str(value)
            if "PORT" in key and value.isdigit() and (name, int(value)) in self._ports:
                env[key] = str(self._ports[(name, int(value))])
            else:
                env[key] = self.rewrite(value, name)
        env.update(self.extra_env.get(name, {}))
        health = (svc.get("healthcheck") or {}).get("test")
        if health:
            health = list(health) if not isinstance(health, str) else ["CMD-SHELL", health]
            if health[0] == "CMD-SHELL":
                health = ["/bin/sh", "-c", self.rewrite(" ".join(health[1:]), name)]
            elif health[0] == "CMD":
                health = self._argv(name, health[1:])
            else:
                health = None
        cwd = (
            Path(self.rewrite(svc["working_dir"], name))
            if svc.get("working_dir")
            else self.workdir / "run" / name
        )
        cwd.mkdir(parents=True, exist_ok=True)
        local = LocalService(
            name=name,
            kind=kind,
            argv=self._argv(name, command),
            env=env,
            cwd=cwd,
            healthcheck=health,
            ports={cport: lport for (svc_name, cport), lport in self._ports.items() if svc_name == name},
            log_path=self.workdir / "logs" / f"{name}.log",
        )
        self.services[name] = local
        return local

    # ---- processes ------------------------------------------------------------------------------------

    def start(self, name: str) -> LocalService:
        """Start service ``name`` in its own process group, output to ``workdir/logs/<name>.log``."""
        local = self.spec(name)
        local.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = local.log_path.open("ab")
        local.proc = subprocess.Popen(
            local.argv,
            env=local.env,
            cwd=local.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return local

    def run_once(self, name: str, timeout: float) -> subprocess.CompletedProcess:
        """Run a one-shot service (an init job) to completion; its output goes to its log."""
        return self.wait_exit(self.start(name).name, timeout)

    def wait_exit(self, name: str, timeout: float) -> subprocess.CompletedProcess:
        """Wait for a started one-shot service to exit; stop it and re-raise on timeout."""
        local = self.services[name]
        assert local.proc is not None
        try:
            local.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(name)
            raise
        return subprocess.CompletedProcess(local.argv, local.proc.returncode)

    def check(self, name: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run service ``name``'s compose health check once."""
        local = self.spec(name)
        assert local.healthcheck, f"service {name} has no health check"
        return subprocess.run(
            local.healthcheck, env=local.env, cwd=local.cwd, capture_output=True, text=True, timeout=timeout
        )

    def wait_healthy(
        self,
        names: Iterable[str],
        timeout: float,
        since: float | None = None,
        gates: Mapping[str, Callable[[], bool]] | None = None,
    ) -> dict[str, float]:
        """Poll each service's health check until it passes; seconds each took (from ``since``, a monotonic
        time, else now). Fails fast when a process exits. A service's ``gates`` entry, a cheap probe, must
        be true before its check runs: checks that start an Airflow or Celery CLI cost seconds of CPU each,
        which polling them every second would take from the services still booting."""
        pending = list(names)
        started = time.monotonic()
        origin = started if since is None else since
        took: dict[str, float] = {}
        last: dict[str, str] = {}
        gates = gates or {}
        with ThreadPoolExecutor(max_workers=8) as pool:  # the checks of one round run side by side
            while pending:
                for name in pending:
                    proc = self.services[name].proc
                    if proc is not None and proc.poll() is not None:
                        raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")
                ready = [n for n in pending if n not in gates or gates[n]()]
                last.update({n: "gate not open yet" for n in pending if n not in ready})
                for name, result in zip(ready, pool.map(self.check, ready), strict=True):
                    if result.returncode == 0:
                        took[name] = time.monotonic() - origin
                        pending.remove(name)
                    else:
                        last[name] = (result.stdout + result.stderr)[-300:]
                if pending and time.monotonic() - started > timeout:
                    details = "\n".join(f"--- {n}: {last.get(n)}\n{self.tail(n, 15)}" for n in pending)
                    raise AssertionError(f"not healthy after {timeout:.0f}s: {pending}\n{details}")
                if pending:
                    time.sleep(1.0)
        return took

    def log_contains(self, name: str, text: str) -> bool:
        """Whether the service's log holds ``text`` (a readiness line such as Celery's ``ready.``)."""
        path = self.services[name].log_path
        return path.exists() and text in path.read_text(errors="replace")

    def tail(self, name: str, lines: int = 40) -> str:
        """The last ``lines`` of a service's log."""
        path = self.services[name].log_path
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self, name: str, grace: float = 20) -> None:
        """SIGTERM the service's process group, SIGKILL it after ``grace`` seconds."""
        self._stop([name], grace)

    def stop_all(self, grace: float = 10) -> None:
        """Stop every started service at once (SIGTERM to each group, SIGKILL what is left after ``grace``)."""
        self._stop(list(self.services), grace)

    def _stop(self, names: list[str], grace: float) -> None:
        procs = {
            n: self.services[n].proc
            for n in names
            if n in self.services and self.services[n].proc is not None
        }
        for proc in procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        started = time.monotonic()
        alive = dict(procs)
        while alive and time.monotonic() - started < grace:
            for name, proc in list(alive.items()):
                if proc.poll() is not None:
                    self.stop_seconds[name] = time.monotonic() - started
                    del alive[name]
            time.sleep(0.1)
        self.stop_seconds.update({name: float("inf") for name in alive})
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # children the leader left behind (task runners, workers)
            proc.wait(timeout=10)
