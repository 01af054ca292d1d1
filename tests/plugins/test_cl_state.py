"""``include.ops.cl_state`` against a real MLflow SQLite store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from include.ops import cl_state, tracking
from include.ops.settings import RETENTION_THRESHOLD
from tests.plugins.mlflow_seed import EXPERIMENT, MATRIX, MODEL, TASK_IDS

UI = "http://mlflow.example:5000"


def test_empty_store_gives_empty_state(tracking_uri: str) -> None:
    state = cl_state.continual_state(tracking_uri, EXPERIMENT, MODEL, ui_url=UI)
    assert state["tasks_learned"] == 0
    assert state["acc_matrix"] is None
    assert state["retention"] == []
    assert state["champion"] is None and state["challenger"] is None
    assert set(state) == set(cl_state.empty_state(EXPERIMENT, MODEL, tracking_uri, RETENTION_THRESHOLD))
    json.dumps(state)


def test_state_reads_latest_matrix_retention_and_aliases(seeded: dict[str, Any]) -> None:
    state = cl_state.continual_state(seeded["tracking_uri"], EXPERIMENT, MODEL, ui_url=UI)
    assert state["tasks_learned"] == 3
    assert state["task_ids"] == TASK_IDS
    assert state["acc_matrix"] == {"task_ids": TASK_IDS, "matrix": MATRIX}
    latest = seeded["run_ids"][2]
    assert state["latest_run"]["run_id"] == latest
    assert state["latest_run"]["task_id"] == "task_2"
    assert state["latest_run"]["url"] == f"{UI}/#/experiments/{seeded['experiment_id']}/runs/{latest}"
    rows = {r["task_id"]: r for r in state["retention"]}
    assert [r["task_id"] for r in state["retention"]] == TASK_IDS
    assert rows["task_0"]["retention"] == pytest.approx(0.60 / 0.99)
    assert rows["task_0"]["passed"] is False
    assert rows["task_1"]["retention"] == pytest.approx(0.85 / 0.97)
    assert rows["task_1"]["passed"] is True
    assert state["below_threshold"] == ["task_0"]
    expected_mean = (0.60 / 0.99 + 0.85 / 0.97 + 1.0) / 3
    assert state["mean_retention"] == pytest.approx(expected_mean)

    champ, chall = state["champion"], state["challenger"]
    assert champ["version"] == seeded["versions"][1]
    assert champ["run_id"] == seeded["run_ids"][1]
    assert champ["task_id"] == "task_1"
    assert champ["run_url"] == f"{UI}/#/experiments/{seeded['experiment_id']}/runs/{seeded['run_ids'][1]}"
    assert champ["version_url"] == f"{UI}/#/models/{MODEL}/versions/{seeded['versions'][1]}"
    assert chall["version"] == seeded["versions"][2]
    assert chall["run_id"] == latest
    json.dumps(state)


def test_threshold_is_a_parameter(seeded: dict[str, Any]) -> None:
    state = cl_state.continual_state(seeded["tracking_uri"], EXPERIMENT, MODEL, ui_url=UI, threshold=0.5)
    assert state["retention_threshold"] == 0.5
    assert state["below_threshold"] == []
    assert all(r["passed"] for r in state["retention"])


def test_missing_matrix_artifact_and_unset_aliases(tracking_uri: str) -> None:
    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.create_experiment(EXPERIMENT)
    run = client.create_run(exp, tags={"ct.task_id": "task_0", "ct.status": "learned"})
    client.log_metric(run.info.run_id, "retention.task_0", float("nan"))
    client.create_run(exp, tags={"ct.task_id": "task_1"})  # started, never learned: not counted
    state = cl_state.continual_state(tracking_uri, EXPERIMENT, MODEL, ui_url=UI)
    assert state["tasks_learned"] == 1
    assert state["acc_matrix"] is None
    assert state["retention"] == [{"task_id": "task_0", "retention": None, "passed": None}]
    assert state["champion"] is None
    json.dumps(state)


def test_history_lists_runs_with_versions_and_aliases(seeded: dict[str, Any]) -> None:
    rows = cl_state.learning_history(seeded["tracking_uri"], EXPERIMENT, MODEL, ui_url=UI)
    assert [r["task_id"] for r in rows] == TASK_IDS
    assert [r["version"] for r in rows] == seeded["versions"]
    assert [r["aliases"] for r in rows] == [[], ["champion"], ["challenger"]]
    assert rows[0]["new_task_acc"] == pytest.approx(0.99)
    assert rows[2]["avg_acc"] == pytest.approx((0.60 + 0.85 + 0.98) / 3)


def test_ui_url_comes_from_env(monkeypatch: pytest.MonkeyPatch, seeded: dict[str, Any]) -> None:
    monkeypatch.setenv("CT_MLFLOW_UI_URL", "http://mlflow.internal:5500/")
    state = cl_state.continual_state(seeded["tracking_uri"], EXPERIMENT, MODEL)
    assert state["mlflow_ui_url"] == "http://mlflow.internal:5500"
    assert state["latest_run"]["url"].startswith("http://mlflow.internal:5500/#/experiments/")


def test_fail_fast_http_is_scoped_and_respects_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "99")
    with cl_state.fail_fast_http(max_retries=0, timeout_s=5):
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "99"
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "99"


def test_a_missing_sqlite_store_is_empty_and_not_created(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'nowhere' / 'mlflow.db'}"
    assert cl_state.continual_state(uri, EXPERIMENT, MODEL)["tasks_learned"] == 0
    assert cl_state.learning_history(uri, EXPERIMENT, MODEL) == []
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("nan", None), (float("inf"), None), ("abc", None), ([1], None), ("0.5", 0.5), (1, 1.0)],
)
def test_finite_turns_metric_values_into_json_safe_floats(value: Any, expected: float | None) -> None:
    assert tracking.finite(value) == expected


def test_read_only_client_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    monkeypatch.setattr(mlflow, "set_tracking_uri", lambda uri: pytest.fail(f"set_tracking_uri({uri})"))
    missing = f"sqlite:///{tmp_path / 'nowhere' / 'mlflow.db'}"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tracking.mlflow_client(missing, read_only=True)
    assert not (tmp_path / "nowhere").exists()
    (tmp_path / "store").mkdir()
    existing = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store" / "mlflow.db").touch()
    client = tracking.mlflow_client(existing, read_only=True)
    assert client.tracking_uri == existing and client._registry_uri == existing


def test_threshold_defaults_to_the_settings(seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    assert cl_state.continual_state(seeded["tracking_uri"], EXPERIMENT, MODEL)["retention_threshold"] == (
        RETENTION_THRESHOLD
    )
    monkeypatch.setenv("CT_RETENTION_THRESHOLD", "0.5")
    state = cl_state.continual_state(seeded["tracking_uri"], EXPERIMENT, MODEL)
    assert state["retention_threshold"] == 0.5 and state["below_threshold"] == []
    assert cl_state.state_from_settings()["retention_threshold"] == 0.5
