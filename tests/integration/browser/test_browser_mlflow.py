"""MLflow UI seen from the user's seat, on the store the Airflow run wrote: the experiment, the run's
retention metrics, the accuracy-matrix image, and the registered model with its ``champion`` alias."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from include.ops.cl_state import continual_state
from tests.integration.browser.harness import MlflowServer, Project

pytestmark = [pytest.mark.browser, pytest.mark.integration]

EXPERIMENT = MODEL = "continual-tiny-transformer"


def js_number(value: float) -> str:
    """How the MLflow UI prints a metric value (JavaScript's shortest round-trip form)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_mlflow_ui_shows_the_learned_run(
    fresh_page: Any,
    project: Project,
    learned_run: dict[str, Any],
    mlflow_server: MlflowServer,
    shot: Any,
    tmp_path: Path,
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=project.tracking_uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    (mlrun,) = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`ct.dag_run_id` = '{learned_run['dag_run_id']}'"
    )
    run_id = mlrun.info.run_id
    page = fresh_page
    page.goto(f"{mlflow_server.url}/")
    # MLflow 3 opens in its GenAI workspace, whose experiment overview greets a fresh browser with onboarding
    # pop-overs that block clicks; an operator switches to "Model training", where the experiment lands on
    # its runs table.
    page.get_by_text("Model training", exact=True).first.click()
    page.get_by_role("link", name=EXPERIMENT).first.click()
    page.wait_for_url(f"**/experiments/{exp.experiment_id}**")
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    run_link = page.get_by_role("link", name="task_0").first
    expect(run_link).to_be_visible()
    shot(page, "mlflow-01-experiment-runs")

    run_link.click()
    page.wait_for_url(f"**/runs/{run_id}**")
    for metric in ("retention.task_0", "mean_retention", "acc.task_0"):
        row = page.get_by_role("row").filter(has_text=metric).first
        expect(row).to_contain_text(js_number(mlrun.data.metrics[metric]))
    page.get_by_placeholder("Search metrics").fill("retention")
    retention_row = page.get_by_role("row").filter(has_text="retention.task_0").first
    retention_row.evaluate("row => row.scrollIntoView({block: 'center'})")
    expect(page.get_by_role("row").filter(has_text="acc.task_0")).to_have_count(0)  # the filter applied
    shot(page, "mlflow-02-run-retention-metrics")

    page.get_by_role("tab", name="Artifacts").click()
    with page.expect_response(lambda r: "get-artifact" in r.url and "acc_matrix.png" in r.url) as got:
        page.get_by_text("acc_matrix.png", exact=True).first.click()
    assert got.value.status == 200
    width, height = png_size(Path(client.download_artifacts(run_id, "acc_matrix.png", str(tmp_path))))
    image = page.locator("img[src^='blob:']").first
    expect(image).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    assert image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [width, height]
    shot(page, "mlflow-03-acc-matrix-artifact")

    # the champion link of the Airflow view lands on the registered version
    state = continual_state(project.tracking_uri, EXPERIMENT, MODEL, ui_url=mlflow_server.url)
    champion = state["champion"]
    assert champion["run_id"] == run_id
    page.goto(f"{mlflow_server.url}/#/models/{MODEL}")
    version_row = page.get_by_role("row").filter(has_text=f"Version {champion['version']}").first
    expect(version_row).to_contain_text("champion")
    shot(page, "mlflow-04-registered-model-champion")
    page.goto(champion["version_url"])
    expect(page.get_by_text("champion").first).to_be_visible()
    expect(page.get_by_text(run_id[:8]).first).to_be_visible()
