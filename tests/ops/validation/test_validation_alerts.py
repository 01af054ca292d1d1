"""A rejection writes an alert line and pushes the failure counter to a real Pushgateway."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.ops.validation.helpers import land, task_text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def pushgateway(tmp_path) -> Iterator[str]:
    """A real prometheus-pushgateway on a free local port, stopped after the test."""
    binary = shutil.which("prometheus-pushgateway")
    if binary is None:
        pytest.fail("prometheus-pushgateway is not installed (make system-deps installs it)")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "pushgateway.log").open("w"),
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "pushgateway.log").read_text()) from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _samples(url: str, name: str) -> dict[str, float]:
    """Samples of metric ``name`` on the Pushgateway, keyed by their label set."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    pattern = re.compile(rf"^{name}\{{(.*)\}} (\S+)$")
    return {m.group(1): float(m.group(2)) for line in text.splitlines() if (m := pattern.match(line))}


@pytest.mark.integration
def test_rejections_are_alerted_and_counted(val_env, split_digits, pushgateway, monkeypatch):
    from include.ops.validation.pipeline import validate_landed_file

    settings = val_env
    monkeypatch.setenv("PUSHGATEWAY_URL", pushgateway)
    manifest = settings.landing_dir / "manifest.json"

    empty = validate_landed_file(land(settings, "task_0.csv", b""), manifest_path=manifest)
    assert empty.status == "rejected"
    failures = _samples(pushgateway, "continual_transformer_data_validation_failures_total")
    assert failures == {'check="precheck.empty_file",instance="",job="data_validation"': 1.0}

    binary = task_text(split_digits, 1).encode().replace(b"\n", b"\n\xc3\x28", 1)
    second = validate_landed_file(land(settings, "task_1.csv", binary), manifest_path=manifest)
    assert second.failed_checks == ["precheck.encoding"]
    failures = _samples(pushgateway, "continual_transformer_data_validation_failures_total")
    assert failures == {
        'check="precheck.empty_file",instance="",job="data_validation"': 1.0,
        'check="precheck.encoding",instance="",job="data_validation"': 1.0,
    }
    last = _samples(pushgateway, "continual_transformer_data_validation_last_failure_timestamp_seconds")
    assert abs(next(iter(last.values())) - time.time()) < 120

    lines = [json.loads(line) for line in (settings.log_dir / "data_validation.log").read_text().splitlines()]
    alerts = [line for line in lines if line.get("alert") == "DataValidationFailed"]
    assert [a["file"] for a in alerts] == ["task_0.csv", "task_1.csv"]
    assert alerts[1]["component"] == "data_validation" and alerts[1]["level"] == "ERROR"
    assert "not UTF-8" in alerts[1]["message"] and alerts[1]["quarantined"] == second.path


def test_unreachable_pushgateway_does_not_break_validation(val_env, monkeypatch):
    from include.ops.validation import alerts

    monkeypatch.setenv("PUSHGATEWAY_URL", f"http://127.0.0.1:{_free_port()}")
    assert alerts.push_metrics(val_env.validated_dir, val_env.quarantine_dir, failed_now=True) is False
    monkeypatch.delenv("PUSHGATEWAY_URL")
    assert alerts.push_metrics(val_env.validated_dir, val_env.quarantine_dir, failed_now=True) is False
