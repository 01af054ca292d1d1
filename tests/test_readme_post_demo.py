"""The README's post-demo commands, verbatim, on the demo's state (built once per session, few epochs).

Each command of the README's "After `make demo`" block runs as printed from the demo's checkout-shaped folder
and must exit 0; so does the load-and-predict example. `make mlflow-ui` is a server: it is started, must print
its URL once the server answers and serve it, then is stopped. `make airflow-ui` is skipped (reason below).
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time

import httpx
import pytest

from tests.airflow_glue.demo_support import DemoState
from tests.integration.browser.harness import free_port
from tests.paths import ROOT

pytestmark = pytest.mark.integration

README = (ROOT / "README.md").read_text()
NOT_HERE = ("make demo", "make test")  # what builds the state and the suite itself
SKIPPED = {
    "make airflow-ui": "airflow standalone (api-server, scheduler, dag-processor, triggerer) takes about a minute "
    "to answer on 2 cores; the browser tests run the same servers on a real project (tests/integration/browser)",
}
SERVERS = {"make mlflow-ui": re.compile(r"==> MLflow UI (http://127\.0\.0\.1:\d+)\s+\(answering now\)")}
SERVER_TIMEOUT_S = 180.0


def post_demo_commands() -> list[str]:
    """The commands of the README's code block under "After `make demo`:", comments dropped, in order."""
    after = README.split("After `make demo`:", 1)[1]
    block = re.search(r"```bash\n(.*?)```", after, re.S)
    assert block, "the README shows its post-demo commands in a bash block after 'After `make demo`:'"
    lines = (re.split(r"\s#\s|^#", line, maxsplit=1)[0].strip() for line in block.group(1).splitlines())
    commands = [line for line in lines if line]
    assert not [c for c in commands if c.startswith(NOT_HERE)], commands
    return commands


def load_and_predict() -> str:
    """The README's python block that loads the champion (run with .venv/bin/python from the checkout)."""
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", README, re.S) if "pyfunc.load_model" in b]
    return code


def _run(demo: DemoState, argv: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, cwd=demo.checkout, env=demo.env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (
        f"{argv} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


def _serve_then_stop(demo: DemoState, command: str, ready: re.Pattern) -> str:
    """Start the server command, wait for its ready line (deadline), fetch the URL it prints, stop its group."""
    env = {**demo.env, "MLFLOW_UI_PORT": str(free_port())}  # the README's override: never a taken port
    proc = subprocess.Popen(["bash", "-c", command], cwd=demo.checkout, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(x) for x in proc.stdout] + [lines.put(None)], daemon=True
    ).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT_S
        while (line := lines.get(timeout=max(0.1, deadline - time.monotonic()))) is not None:
            seen.append(line)
            if match := ready.search(line):
                assert httpx.get(match.group(1) + "/", timeout=30).status_code == 200
                return match.group(1)
        raise AssertionError(f"{command} exited {proc.wait()} before answering:\n{''.join(seen)[-3000:]}")
    except queue.Empty:
        raise AssertionError(
            f"{command} not ready in {SERVER_TIMEOUT_S} s:\n{''.join(seen)[-3000:]}"
        ) from None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.mark.parametrize("command", post_demo_commands())
def test_post_demo_command_runs_as_printed(demo_state: DemoState, command: str) -> None:
    if command in SKIPPED:
        pytest.skip(SKIPPED[command])
    if command in SERVERS:
        assert _serve_then_stop(demo_state, command, SERVERS[command]).startswith("http://127.0.0.1:")
        return
    out = _run(demo_state, ["bash", "-c", command]).stdout
    if "list-runs" in command:
        assert out.count("success") >= 5, out  # "5 successful runs", as the README's comment says
    if command == "make status":
        assert "task_4" in out, out


def test_load_and_predict_example_runs_on_the_demo_state(demo_state: DemoState) -> None:
    out = _run(demo_state, [".venv/bin/python", "-c", load_and_predict()]).stdout
    assert re.search(r"\[[\d\s]+\]", out), out  # the predicted classes of task_0's rows
