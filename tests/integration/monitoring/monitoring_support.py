"""Monitoring test helpers: the Debian Prometheus binaries (a missing one fails, never skips), server processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.paths import ROOT

MONITORING = ROOT / "include" / "monitoring"


def binary(name: str) -> str:
    """Absolute path of a required binary; the test fails (not skips) when the package is missing."""
    path = shutil.which(name)
    assert path, (
        f"{name} is not installed: run `make system-deps` (Debian package prometheus / prometheus-pushgateway)"
    )
    return path


def wait_http(url: str, timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers 200."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout} s: {last}")


class Process:
    """A server subprocess in its own process group, stopped by that group."""

    def __init__(self, args: list[str], ready_url: str, log: Path) -> None:
        self.log = log
        self.handle = log.open("wb")
        self.proc = subprocess.Popen(
            args, stdout=self.handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_http(ready_url)
        except TimeoutError:
            self.stop()
            raise AssertionError(f"{args[0]} did not start: {log.read_text()[-2000:]}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.handle.close()
