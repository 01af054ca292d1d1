"""The hand-off with a real scheduler: landed batches -> data_validation -> Asset event -> continual_training.

Runs on the browser session's Airflow stack (api-server, scheduler, dag-processor) after the UI tests.
A good file for the next task and a bad file for the one after land together: the good one is validated,
its `validated_task_batch` event makes the scheduler start an asset-triggered `continual_training` run that
learns it (MLflow records the run); the bad one is quarantined with its original bytes and nothing trains on it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import pytest

from tests.integration.browser.harness import AirflowStack, Project

pytestmark = pytest.mark.integration

RUN_TIMEOUT_S = 900.0


def _learned(project: Project) -> list[str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=project.tracking_uri)
    exp = client.get_experiment_by_name("continual-tiny-transformer")
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`ct.status` = 'learned'")
    return sorted(r.data.tags["ct.task_id"] for r in runs)


def _runs(airflow: AirflowStack, dag_id: str) -> list[dict]:
    body = airflow.get(f"/api/v2/dags/{dag_id}/dagRuns?limit=100") or {"dag_runs": []}
    return body["dag_runs"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_validated_batch_triggers_training_and_bad_batch_trains_nothing(
    airflow: AirflowStack, project: Project
):
    data = project.var / "data" / "split_digits"
    manifest = json.loads((data / "manifest.json").read_text())
    order = [t["task_id"] for t in manifest["tasks"]]
    learned = _learned(project)
    good_task = next(t for t in order if t not in learned)
    bad_task = order[order.index(good_task) + 1]
    files = {t["task_id"]: t["file"] for t in manifest["tasks"]}

    landing = project.var / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    shutil.copy(data / "manifest.json", landing / "manifest.json")
    shutil.copy(data / files[good_task], landing / files[good_task])
    bad_text = (data / files[bad_task]).read_text().splitlines()
    header, first = bad_text[0], bad_text[1].split(",")
    first[-2] = (
        "0" if "0" not in {str(c) for c in manifest["tasks"][order.index(bad_task)]["classes"]} else "9"
    )
    bad_path = landing / files[bad_task]
    bad_path.write_text("\n".join([header, ",".join(first), *bad_text[2:]]) + "\n")
    bad_sha = _sha(bad_path)

    before = {r["dag_run_id"] for r in _runs(airflow, "continual_training")}
    seen_validation = {r["dag_run_id"] for r in _runs(airflow, "data_validation")}
    for dag_id in ("continual_training", "data_validation"):
        assert (
            airflow.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False}).status_code == 200
        )
    # unpausing starts the schedule's latest run; trigger one more in case the schedule has not fired yet
    resp = airflow.request(
        "POST", "/api/v2/dags/data_validation/dagRuns", json={"logical_date": None, "conf": {}}
    )
    assert resp.status_code == 200, resp.text
    deadline = time.monotonic() + RUN_TIMEOUT_S
    validation = None
    while time.monotonic() < deadline and validation is None:
        runs = [r for r in _runs(airflow, "data_validation") if r["dag_run_id"] not in seen_validation]
        validation = next((r for r in runs if r["state"] == "failed"), None)
        if validation is None and runs and all(r["state"] == "success" for r in runs) and len(runs) >= 2:
            break
        time.sleep(3)
    assert validation is not None, "the run that validated the landed files must fail on the bad batch"

    deadline = time.monotonic() + RUN_TIMEOUT_S
    triggered = None
    while time.monotonic() < deadline:
        new = [r for r in _runs(airflow, "continual_training") if r["dag_run_id"] not in before]
        triggered = next((r for r in new if r["run_type"] == "asset_triggered"), None)
        if triggered and triggered["state"] in ("success", "failed"):
            break
        time.sleep(3)
    assert triggered is not None, "no asset-triggered continual_training run was created"
    assert triggered["state"] in ("success", "failed"), f"run did not finish: {triggered}"
    tis = airflow.get(f"/api/v2/dags/continual_training/dagRuns/{triggered['dag_run_id']}/taskInstances")
    states = {ti["task_id"]: ti["state"] for ti in tis["task_instances"]}
    assert states["plan"] == "success" and states["train"] == "success", states

    assert good_task in _learned(project), "the validated batch was learned and recorded in MLflow"
    assert bad_task not in _learned(project), "nothing may train on a quarantined batch"
    quarantined = list((project.var / "quarantine").rglob(files[bad_task]))
    assert len(quarantined) == 1 and _sha(quarantined[0]) == bad_sha, "original bytes kept in quarantine"
    assert not (project.var / "validated" / files[bad_task]).exists()
