"""Run the app with uvicorn: in the foreground (``python -m include.serving``) or in a background thread."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from types import TracebackType

import uvicorn
from fastapi import FastAPI


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def uvicorn_config(app: FastAPI | str, host: str, port: int, **kwargs: object) -> uvicorn.Config:
    """The one uvicorn configuration the app is served with (uvloop + httptools, no access log)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        **kwargs,
    )


class BackgroundServer:
    """Context manager serving ``app`` on ``host:port`` from a thread; waits until it accepts requests."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.server = uvicorn.Server(uvicorn_config(app, self.host, self.port))
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"uvicorn on {self.url} exited during startup")
            if time.monotonic() > deadline:
                raise TimeoutError(f"uvicorn on {self.url} did not start within 60 s")
            time.sleep(0.05)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class ServerProcess:
    """``python -m include.serving`` in its own process group on a free port, ready once a model is loaded.

    ``env`` is added to the current environment (CT_* paths, MLFLOW_TRACKING_URI, CT_SERVING_*); the port is
    chosen here. Stops with SIGTERM to the group (SIGKILL after 30 s).
    """

    def __init__(self, env: dict[str, str], log_file: Path | None = None, require_model: bool = True) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        root = str(Path(__file__).resolve().parents[2])
        pythonpath = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        self.env = {**os.environ, **env, "PYTHONPATH": pythonpath, "CT_SERVING_PORT": str(self.port)}
        self.log_file = log_file
        self.require_model = require_model
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> ServerProcess:
        out = self.log_file.open("ab") if self.log_file else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "include.serving"], env=self.env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"include.serving exited with {self.proc.returncode} during startup")
            try:
                with urllib.request.urlopen(self.url + "/health/model", timeout=2) as resp:  # noqa: S310 (http)
                    body = json.loads(resp.read())
            except OSError as exc:
                body = {"loaded": getattr(exc, "code", None) == 503 and not self.require_model}
            if body.get("loaded"):
                return self
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise TimeoutError(f"include.serving on {self.url} was not ready within 120 s")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
