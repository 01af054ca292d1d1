"""Human approval with a real scheduler: a run with ``require_approval`` parks its `approve` task in
``awaiting_input``, the Airflow UI shows the approval form (screenshot), the decision is given through the
REST API (``PATCH .../hitlDetails``), and the version becomes champion with the decision on its tags.

Named to run after test_browser_mlflow (which checks that task_0's run holds ``champion``) and before the
asset hand-off (which learns the next tasks after this one's task_1)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.browser.browser_support import LEARN_CONF, RUN_TIMEOUT_S
from tests.integration.browser.harness import AirflowStack, Project, wait_until

pytestmark = pytest.mark.integration


def test_a_promotion_waits_for_an_approval_given_through_the_rest_api(
    airflow: AirflowStack, project: Project, learned_run: dict, page: Any, shot: Any
) -> None:
    from mlflow import MlflowClient
    from playwright.sync_api import expect

    conf = {**LEARN_CONF, "task_id": "task_1", "require_approval": True}
    resp = airflow.request(
        "POST", "/api/v2/dags/continual_training/dagRuns", json={"logical_date": None, "conf": conf}
    )
    assert resp.status_code == 200, resp.text
    run_id = resp.json()["dag_run_id"]
    ti_path = f"/api/v2/dags/continual_training/dagRuns/{run_id}/taskInstances/approve"

    def parked() -> dict | None:
        ti = airflow.get(ti_path)
        done = ("awaiting_input", "failed", "upstream_failed", "skipped", "success")
        return ti if ti and ti["state"] in done else None

    ti = wait_until("approve awaiting_input", parked, RUN_TIMEOUT_S, airflow.procs, interval=2.0)
    assert ti["state"] == "awaiting_input", ti
    page.goto(f"{airflow.url}/dags/continual_training/runs/{run_id}/tasks/approve/required_actions")
    expect(page.get_by_text("to champion?").first).to_be_visible()
    shot(page, "approval_form")

    answer = {
        "chosen_options": ["Approve"],
        "params_input": {"comment": "e2e: approved through the REST API"},
    }
    resp = airflow.request("PATCH", f"{ti_path}/-1/hitlDetails", json=answer)
    assert resp.status_code == 200, resp.text
    run = airflow.wait_for_run("continual_training", run_id, RUN_TIMEOUT_S)
    assert run["state"] == "success", run

    client = MlflowClient(tracking_uri=project.tracking_uri)
    champion = client.get_model_version_by_alias("continual-tiny-transformer", "champion")
    assert champion.tags["task_id"] == "task_1" and champion.tags["approval"] == "approved"
    assert champion.tags["approval.comment"] == "e2e: approved through the REST API"
    assert "admin" in champion.tags["approval.user"]
