"""Browser-test fixtures: one throwaway project, real Airflow and MLflow servers, headless Chromium.

Servers start on first use and stop at the end of the session (each in its own process group). Screenshots
go to ``test-artifacts/screenshots/``, server logs to ``test-artifacts/browser-logs/`` (both git-ignored).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.integration.browser.harness import ARTIFACTS, AirflowStack, MlflowServer, Project

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
SCREENSHOTS = ARTIFACTS / "screenshots"
LOGS = ARTIFACTS / "browser-logs"
VIEWPORT = {"width": 1400, "height": 1000}
LEARN_CONF = {"task_id": "task_0", "epochs": 3}  # what the trigger form submits, and the REST fallback too
RUN_TIMEOUT_S = 600.0  # training under a loaded 2-core box; a quiet one needs about a minute
UI_TIMEOUT_MS = 60_000  # first paint of a page (and the plugin's first MLflow import) on 2 shared cores

expect.set_options(timeout=UI_TIMEOUT_MS)


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A fresh project state (task data written, empty MLflow store) with reserved ports."""
    proj = Project(tmp_path_factory.mktemp("ct-browser"))
    proj.prepare()
    return proj


@pytest.fixture(scope="session")
def artifacts_dirs() -> Path:
    """Empty screenshot and log folders for this session."""
    for folder in (SCREENSHOTS, LOGS):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def mlflow_launcher(project: Project, artifacts_dirs: Path) -> Iterator[MlflowServer]:
    """The (not yet started) MLflow server of the session; stopped at session end if it was started."""
    server = MlflowServer(project, LOGS)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def airflow(
    project: Project, artifacts_dirs: Path, mlflow_launcher: MlflowServer, request: pytest.FixtureRequest
) -> Iterator[AirflowStack]:
    """Airflow api-server + scheduler + dag-processor on the project (stopped at session end)."""
    stack = AirflowStack(project, LOGS)
    try:
        stack.start()
        if any("mlflow_server" in item.fixturenames for item in request.session.items):
            mlflow_launcher.launch()  # boots while Airflow trains; ``mlflow_server`` waits for it
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def mlflow_server(mlflow_launcher: MlflowServer) -> MlflowServer:
    """``mlflow server`` on the project's SQLite store, on the port the plugin links to."""
    mlflow_launcher.start()
    return mlflow_launcher


@pytest.fixture(scope="module")  # Playwright's sync loop must end before later tests call asyncio.run()
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright (no browser download)."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: install the Debian 'chromium' package (make system-deps)"
    )
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def shot(artifacts_dirs: Path) -> Callable[[Any, str], Path]:
    """``shot(page, name)`` saves a full-window screenshot as ``test-artifacts/screenshots/<name>.png``."""

    def take(page: Any, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path))
        return path

    return take


def login(page: Any, airflow: AirflowStack) -> None:
    """Sign in through Airflow's login form as the seeded admin."""
    page.goto(f"{airflow.url}/")
    page.wait_for_url("**/auth/login**")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", airflow.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{airflow.url}/", timeout=60_000)


@pytest.fixture(scope="module")
def airflow_session(browser: Any, airflow: AirflowStack) -> Iterator[Any]:
    """A browser context signed in to Airflow (the JWT cookie is shared by its pages)."""
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.set_default_timeout(UI_TIMEOUT_MS)
    page = ctx.new_page()
    login(page, airflow)
    page.close()
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Keep each phase's report on the test item so page fixtures can tell whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def _screenshot_if_failed(request: pytest.FixtureRequest, tab: Any) -> None:
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and not tab.is_closed():
        tab.screenshot(path=str(SCREENSHOTS / f"FAILED-{request.node.name}.png"), full_page=True)


@pytest.fixture
def page(airflow_session: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh tab in the signed-in Airflow context (screenshot ``FAILED-<test>.png`` when the test fails)."""
    tab = airflow_session.new_page()
    try:
        yield tab
    finally:
        _screenshot_if_failed(request, tab)
        tab.close()


@pytest.fixture
def fresh_page(browser: Any, artifacts_dirs: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A tab in a new, signed-out browser context (screenshot ``FAILED-<test>.png`` when the test fails)."""
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.set_default_timeout(UI_TIMEOUT_MS)
    tab = ctx.new_page()
    try:
        yield tab
    finally:
        _screenshot_if_failed(request, tab)
        ctx.close()


class LearnedRuns:
    """The successful ``continual_training`` runs of this session, so later tests reuse instead of retrain."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []

    def record(self, run: dict[str, Any]) -> None:
        """Remember a finished DAG run (as returned by the REST API)."""
        self.runs.append(run)

    def latest_success(self) -> dict[str, Any] | None:
        """The newest recorded successful run, if any."""
        return next((r for r in reversed(self.runs) if r["state"] == "success"), None)


@pytest.fixture(scope="session")
def learned_runs() -> LearnedRuns:
    """Session registry of finished training runs."""
    return LearnedRuns()


@pytest.fixture(scope="session")
def learned_run(airflow: AirflowStack, learned_runs: LearnedRuns) -> dict[str, Any]:
    """A successful ``continual_training`` run of task_0: the one the trigger-form test made, else one via REST."""
    run = learned_runs.latest_success()
    if run is None:
        body = {"logical_date": None, "conf": LEARN_CONF}
        resp = airflow.request("POST", "/api/v2/dags/continual_training/dagRuns", json=body)
        assert resp.status_code == 200, resp.text
        airflow.request("PATCH", "/api/v2/dags/continual_training", json={"is_paused": False})
        run = airflow.wait_for_run("continual_training", resp.json()["dag_run_id"], RUN_TIMEOUT_S)
        learned_runs.record(run)
    assert run["state"] == "success", json.dumps(run)
    return run
