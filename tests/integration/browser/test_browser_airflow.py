"""Airflow seen from the user's seat: sign in, read the DAGs' docs, trigger training from the form (a bad
value is refused, a good one trains task_0), read what the run learned in the gate task's log, its XCom and
the checkpoint Asset event, and read the result in the continual-learning view (its loading state first)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.integration.browser.browser_support import (
    LEARN_CONF,
    RUN_TIMEOUT_S,
    UI_TIMEOUT_MS,
    LearnedRuns,
    login,
)
from tests.integration.browser.harness import AirflowStack, Project
from tests.paths import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.integration]

DAG_FILES = sorted(p for p in (ROOT / "dags").glob("*.py") if p.name[0] != "_")
DAG_RUNS = "/api/v2/dags/continual_training/dagRuns"


def _is_trigger_post(resp: Any) -> bool:
    return resp.request.method == "POST" and resp.url.endswith(DAG_RUNS)


def _mlflow_run_of(project: Project, dag_run_id: str) -> Any:
    """The MLflow run that the given Airflow DAG run created (tag ``ct.dag_run_id``)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=project.tracking_uri)
    exp = client.get_experiment_by_name("continual-tiny-transformer")
    (run,) = client.search_runs([exp.experiment_id], filter_string=f"tags.`ct.dag_run_id` = '{dag_run_id}'")
    return run


def test_sign_in_and_every_project_dag_is_listed(fresh_page: Any, airflow: AirflowStack, shot: Any) -> None:
    page = fresh_page
    page.goto(f"{airflow.url}/")
    page.wait_for_url("**/auth/login**")
    expect(page.get_by_text("Sign into Airflow")).to_be_visible()
    shot(page, "airflow-01-login")
    login(page, airflow)
    assert any(c["name"] == "_token" for c in page.context.cookies()), (
        "no Airflow JWT cookie after signing in"
    )

    dag_ids = sorted(d["dag_id"] for d in airflow.get("/api/v2/dags?limit=100")["dags"])
    assert len(dag_ids) == len(DAG_FILES), (dag_ids, [p.name for p in DAG_FILES])
    assert "continual_training" in dag_ids
    page.goto(f"{airflow.url}/dags")
    for dag_id in dag_ids:
        expect(page.get_by_role("link", name=dag_id, exact=True).first).to_be_visible()
    expect(page.get_by_text(f"{len(dag_ids)} Dags")).to_be_visible()
    shot(page, "airflow-02-dag-list")


def test_every_dag_shows_its_docs(page: Any, airflow: AirflowStack, shot: Any) -> None:
    dag_ids = sorted(d["dag_id"] for d in airflow.get("/api/v2/dags?limit=100")["dags"])
    page.goto(f"{airflow.url}/dags")
    for dag_id in dag_ids:
        doc = airflow.get(f"/api/v2/dags/{dag_id}/details")["doc_md"]
        intro = next(line for line in doc.splitlines()[1:] if line.strip())  # first line under the title
        first_words = " ".join(re.sub(r"[*`]", "", intro).split()[:4])
        page.get_by_role("link", name=dag_id, exact=True).first.click()  # in-app navigation, as a user does
        page.wait_for_url(f"**/dags/{dag_id}")
        page.get_by_test_id("markdown-button").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text(first_words)
        expect(dialog).to_contain_text("Params")
        expect(dialog).to_contain_text("When it fails")
        if dag_id == "continual_training":
            shot(page, "airflow-03-dag-docs")
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        page.go_back()
        page.wait_for_url(f"{airflow.url}/dags")


def test_trigger_form_refuses_a_bad_param(page: Any, airflow: AirflowStack, shot: Any) -> None:
    before = airflow.get(DAG_RUNS)["total_entries"]
    page.goto(f"{airflow.url}/dags/continual_training")
    page.get_by_test_id("trigger-dag-button").click()
    page.locator("#element_task_id").fill("bad id; rm -rf /")  # the param's pattern allows [A-Za-z0-9_.-]
    # the rule is in the Param's description, shown next to the field (a refusal's toast alone hides it)
    expect(
        page.get_by_text("Rule: letters, digits, _ . - only, 1-64 characters", exact=False)
    ).to_be_visible()
    with page.expect_response(_is_trigger_post) as answer:
        page.get_by_test_id("trigger-dag-submit").click()
    resp = answer.value
    assert resp.status == 400, resp.text()
    assert "task_id" in resp.text(), resp.text()
    expect(page.get_by_text("Failed to Trigger Dag")).to_be_visible()
    expect(page.get_by_role("dialog")).to_be_visible()  # the form stays open for a correction
    shot(page, "airflow-04-bad-param-refused")
    assert airflow.get(DAG_RUNS)["total_entries"] == before, "a refused trigger still created a run"


def test_trigger_form_trains_task_0_and_the_run_succeeds(
    page: Any, airflow: AirflowStack, learned_runs: LearnedRuns, shot: Any
) -> None:
    page.goto(f"{airflow.url}/dags/continual_training")
    page.get_by_test_id("trigger-dag-button").click()
    page.locator("#element_task_id").fill(LEARN_CONF["task_id"])
    epochs_input = page.locator("[id='number-input:element_epochs:inc']").get_attribute("aria-controls")
    page.locator(f"[id='{epochs_input}']").fill(str(LEARN_CONF["epochs"]))
    unpause = page.get_by_label("Unpause continual_training on trigger")
    if airflow.get("/api/v2/dags/continual_training")["is_paused"]:
        expect(unpause).to_be_checked()  # new DAGs start paused; the form unpauses on trigger by default
    else:
        expect(unpause).to_have_count(0)
    shot(page, "airflow-05-trigger-form")
    with page.expect_response(_is_trigger_post) as answer:
        page.get_by_test_id("trigger-dag-submit").click()
    resp = answer.value
    assert resp.status == 200, resp.text()
    created = resp.json()
    assert created["conf"]["task_id"] == "task_0" and created["conf"]["epochs"] == LEARN_CONF["epochs"]
    run_id = created["dag_run_id"]
    assert airflow.get("/api/v2/dags/continual_training")["is_paused"] is False

    run = airflow.wait_for_run("continual_training", run_id, RUN_TIMEOUT_S)
    learned_runs.record(run)
    page.goto(f"{airflow.url}/dags/continual_training/runs/{run_id}")
    expect(page.get_by_text(run_id).first).to_be_visible()
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    for task_id in ("plan", "train", "register", "gate"):
        expect(page.get_by_text(task_id, exact=True).first).to_be_visible()
    shot(page, "airflow-06-run-finished")
    tis = airflow.get(f"{DAG_RUNS}/{run_id}/taskInstances")["task_instances"]
    assert run["state"] == "success", {t["task_id"]: t["state"] for t in tis}
    assert {t["task_id"]: t["state"] for t in tis} == {
        **dict.fromkeys(("plan", "train", "register", "gate"), "success"),
        "approve": "skipped",  # approval is off on the embedded defaults (CT_PROMOTION_APPROVAL)
    }


def test_the_run_says_what_it_learned_in_log_xcom_and_asset_event(
    page: Any, airflow: AirflowStack, project: Project, learned_run: dict[str, Any], shot: Any
) -> None:
    from mlflow import MlflowClient

    run_id = learned_run["dag_run_id"]
    mlrun = _mlflow_run_of(project, run_id)
    champion = MlflowClient(tracking_uri=project.tracking_uri).get_model_version_by_alias(
        "continual-tiny-transformer", "champion"
    )
    learned = f"learned task_0: new-task acc {mlrun.data.metrics['acc.task_0']:.3f}, no old task to retain"
    line = f"{learned}, gate: champion v{champion.version}"
    tasks = f"{airflow.url}/dags/continual_training/runs/{run_id}/tasks"

    page.goto(f"{tasks}/gate")  # the task's page opens on its log; the line is its own INFO record
    expect(page.get_by_text(re.compile(rf"INFO - {re.escape(line)}")).first).to_be_visible()
    shot(page, "airflow-08-gate-log-summary")

    page.goto(f"{tasks}/gate/xcom")
    page.get_by_role("button", name="Expand all extra JSON").click()  # the value opens collapsed
    expect(page.get_by_text(line).first).to_be_visible()
    shot(page, "airflow-09-gate-xcom-summary")
    xcom = airflow.get(f"{DAG_RUNS}/{run_id}/taskInstances/train/xcomEntries/return_value")["value"]
    assert xcom[0]["task_id"] == "task_0" and xcom[0]["mlflow_run_id"] == mlrun.info.run_id, xcom

    (asset,) = airflow.get("/api/v2/assets?name_pattern=model_checkpoint")["assets"]
    events = airflow.get(f"/api/v2/assets/events?asset_id={asset['id']}&limit=100")["asset_events"]
    (event,) = [e for e in events if e["source_run_id"] == run_id]
    assert event["extra"]["summary"] == learned and event["extra"]["mlflow_run_id"] == mlrun.info.run_id
    page.goto(f"{airflow.url}/assets/{asset['id']}")
    page.locator(".codicon-folding-collapsed").first.click()  # the event's extra opens folded
    expect(page.get_by_text(learned).first).to_be_visible()
    shot(page, "airflow-10-checkpoint-asset-event")


def test_continual_learning_view_shows_that_run(
    page: Any, browser: Any, airflow: AirflowStack, project: Project, learned_run: dict[str, Any], shot: Any
) -> None:
    from mlflow import MlflowClient

    mlrun = _mlflow_run_of(project, learned_run["dag_run_id"])
    acc = mlrun.data.metrics["acc.task_0"]
    retention = mlrun.data.metrics["retention.task_0"]
    champion = MlflowClient(tracking_uri=project.tracking_uri).get_model_version_by_alias(
        "continual-tiny-transformer", "champion"
    )
    run_url = f"{project.mlflow_url}/#/experiments/{mlrun.info.experiment_id}/runs/{mlrun.info.run_id}"

    held: list[Any] = []  # the view's content request, held until the loading state was seen
    page.route("**/ct/view/content", lambda route: held.append(route))
    page.goto(f"{airflow.url}/dags")
    page.get_by_role("link", name="Continual learning").click()
    page.wait_for_url("**/plugin/continual-learning")
    view = page.frame_locator("iframe[title='Continual learning']")
    expect(view.locator("[data-testid=loading]")).to_contain_text("Loading the continual-learning state")
    shot(page, "airflow-07a-continual-learning-loading")
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while not held and time.monotonic() < deadline:  # the shell's fetch reaches the route
        page.wait_for_timeout(50)
    assert held, "the view's shell never fetched its content"
    held[0].continue_()
    page.unroute("**/ct/view/content")
    expect(view.locator("[data-testid=content]")).to_be_visible()
    expect(view.locator("[data-testid=loading]")).to_have_count(0)
    cell = view.locator("[data-testid=cell-0-0]")
    expect(cell).to_have_attribute("data-value", f"{acc:.4f}")
    expect(cell).to_have_text(f"{acc:.2f}")
    row = view.locator("[data-testid=retention-task_0]")
    expect(row).to_have_attribute("data-value", f"{retention:.4f}")
    expect(row.locator(".badge")).to_have_text("ok" if retention >= 0.8 else "below")
    expect(view.locator("[data-testid=tasks-learned]")).to_contain_text("task_0")
    expect(view.locator("[data-testid=champion]")).to_contain_text(f"version {champion.version}")
    expect(view.locator("[data-testid=champion-run-link]")).to_have_attribute("href", run_url)
    expect(view.locator("[data-testid=latest-run-link]")).to_have_attribute("href", run_url)
    expect(view.locator("[data-testid=challenger]")).to_contain_text("not set")
    shot(page, "airflow-07-continual-learning-view")

    state = page.request.get(f"{airflow.url}/ct/api/state")  # same signed-in browser context
    assert state.status == 200
    assert state.json()["latest_run"]["run_id"] == mlrun.info.run_id
    assert state.json()["acc_matrix"] == {"task_ids": ["task_0"], "matrix": [[acc]]}

    anonymous = browser.new_context()
    try:
        assert anonymous.request.get(f"{airflow.url}/ct/api/state").status == 401
        assert anonymous.request.get(f"{airflow.url}/ct/view").status == 401
    finally:
        anonymous.close()
