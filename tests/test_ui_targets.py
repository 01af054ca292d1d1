"""The UI servers for one person on one machine (mk/ui.mk, include/ops/local_ports.py): 127.0.0.1 by default,
free ports so a second instance does not collide, one MLFLOW_UI_PORT for the MLflow UI and every link to it,
and a readiness wait before the MLflow UI's URL is printed. No long-running server is started here."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from include.ops import local_ports
from tests.paths import ROOT


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something listens on (127.0.0.1, SO_REUSEADDR as servers bind) for the test's duration."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_free_ports_refuse_a_taken_exact_port_and_replace_a_taken_preferred_one(listening: int) -> None:
    assert not local_ports.port_is_free(listening)
    with pytest.raises(local_ports.PortTaken, match=f"port {listening} is in use"):
        local_ports.free_ports([str(listening)])
    api, worker, trigger = local_ports.free_ports([f"~{listening}", "0", "0"])
    assert listening not in (api, worker, trigger)
    assert len({api, worker, trigger}) == 3, "the three servers need three different ports"
    assert all(local_ports.port_is_free(p) for p in (api, worker, trigger))
    (again,) = local_ports.free_ports([str(api)])  # a free port asked for exactly is given as is
    assert again == api
    with pytest.raises(ValueError, match="expected N, ~N or 0"):
        local_ports.free_ports(["http"])


def test_free_ports_command_line_prints_ports_and_names_a_taken_one(
    listening: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert local_ports.main(["free", f"~{listening}", "0"]) == 0
    ports = [int(p) for p in capsys.readouterr().out.split()]
    assert len(ports) == 2 and listening not in ports
    assert local_ports.main(["free", str(listening)]) == 2
    assert f"port {listening} is in use" in capsys.readouterr().err


def test_mlflow_ui_port_comes_from_the_settings_url_and_is_checked(
    listening: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert local_ports.mlflow_ui_port("http://127.0.0.1:5123") == 5123
    assert local_ports.mlflow_ui_port("http://localhost") == 80
    with pytest.raises(ValueError, match="not on this machine.*MLFLOW_UI_PORT"):
        local_ports.mlflow_ui_port("https://mlflow.example.com")
    (free,) = local_ports.free_ports(["0"])
    monkeypatch.setenv("CT_MLFLOW_UI_URL", f"http://127.0.0.1:{free}")
    assert local_ports.main(["mlflow-ui"]) == 0 and capsys.readouterr().out.strip() == str(free)
    monkeypatch.setenv("CT_MLFLOW_UI_URL", f"http://127.0.0.1:{listening}")
    assert local_ports.main(["mlflow-ui"]) == 2
    err = capsys.readouterr().err
    assert f"port {listening} is in use" in err and "MLFLOW_UI_PORT=" in err


def test_wait_http_returns_once_the_server_answers_and_gives_up_when_its_process_is_gone() -> None:
    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # any answer counts, an error status too
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert local_ports.wait_http(f"http://127.0.0.1:{server.server_port}/", timeout_s=30)
    finally:
        server.shutdown()
        server.server_close()
    (closed,) = local_ports.free_ports(["0"])
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(gone.stdout)
    assert not local_ports.wait_http(f"http://127.0.0.1:{closed}/", timeout_s=60, pid=dead_pid)
    assert not local_ports.wait_http(f"http://127.0.0.1:{closed}/", timeout_s=0)


def _make(*args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_make_airflow_ui_binds_127_0_0_1_with_free_ports_and_a_host_override() -> None:
    env = {"AIRFLOW_UI_HOST": "", "AIRFLOW_UI_PORT": ""}
    recipe = _make("-n", "airflow-ui", env=env)
    assert "AIRFLOW__API__HOST=127.0.0.1 " in recipe
    assert "local_ports free" in recipe and '"~8080"' in recipe, "8080 only when it is free"
    for setting in ("AIRFLOW__API__PORT=$1", "WORKER_LOG_SERVER_PORT=$2", "TRIGGER_LOG_SERVER_PORT=$3"):
        assert setting in recipe
    assert "exec airflow standalone" in recipe
    wide = _make("-n", "airflow-ui", "AIRFLOW_UI_HOST=0.0.0.0", "AIRFLOW_UI_PORT=8091", env=env)
    assert "AIRFLOW__API__HOST=0.0.0.0 " in wide and '"8091"' in wide


def test_make_status_links_follow_mlflow_ui_port(tmp_path: Path) -> None:
    # an empty store: the state's base URL is the one every link of make status / the view is built on
    var = tmp_path / "var"
    env = {"CT_VAR_DIR": str(var), "MLFLOW_TRACKING_URI": f"sqlite:///{var / 'mlflow' / 'mlflow.db'}"}
    env["CT_MLFLOW_UI_URL"] = "http://127.0.0.1:5999"  # MLFLOW_UI_PORT, when given, wins over it
    out = _make("-s", "status", "CLI_ARGS=--json", "MLFLOW_UI_PORT=5123", env=env)
    assert json.loads(out[out.index("{") :])["mlflow_ui_url"] == "http://127.0.0.1:5123"
    out = _make("-s", "status", "CLI_ARGS=--json", env={**env, "MLFLOW_UI_PORT": "5124"})
    assert json.loads(out[out.index("{") :])["mlflow_ui_url"] == "http://127.0.0.1:5124"
