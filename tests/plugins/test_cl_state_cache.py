"""The view's MLflow reads are cached: a second load asks only for the store's fingerprint (a spy on the real
client of a real SQLite store counts the calls), and a new run or an alias move reads everything again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from include.ops import cl_state
from tests.plugins.mlflow_seed import EXPERIMENT, MODEL, seed_store

UI = "http://mlflow.example:5000"
FINGERPRINT_CALLS = ["get_experiment_by_name", "search_runs", "get_registered_model"]


class ClientSpy:
    """Passes every call to the real MlflowClient and records the method's name."""

    def __init__(self, client: Any, calls: list[str]) -> None:
        self._client, self._calls = client, calls

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._calls.append(name)
            return attr(*args, **kwargs)

        return call


@pytest.fixture
def spied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Two learned tasks in a fresh store; every MlflowClient that cl_state makes is spied on."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    seeded = seed_store(uri, EXPERIMENT, MODEL, n_tasks=2, champion_task=0, challenger_task=1)
    calls: list[str] = []
    real = cl_state.mlflow_client
    monkeypatch.setattr(cl_state, "mlflow_client", lambda *a, **k: ClientSpy(real(*a, **k), calls))
    return {"uri": uri, "calls": calls, **seeded}


def _load(uri: str) -> dict[str, Any]:
    return cl_state.continual_state(uri, EXPERIMENT, MODEL, ui_url=UI, threshold=0.8)


def test_a_second_load_makes_no_expensive_mlflow_call(spied: dict[str, Any]) -> None:
    uri, calls = spied["uri"], spied["calls"]
    first = _load(uri)
    assert {"download_artifacts", "get_model_version_by_alias", "get_run"} <= set(calls), calls
    calls.clear()
    second = _load(uri)
    assert second == first and second["tasks_learned"] == 2
    assert calls == FINGERPRINT_CALLS, "a cached load reads only the fingerprint"
    second["task_ids"].append("mutated")  # the caller gets a copy: the cache stays as read
    assert _load(uri) == first

    history = cl_state.learning_history(uri, EXPERIMENT, MODEL, ui_url=UI)
    calls.clear()
    assert cl_state.learning_history(uri, EXPERIMENT, MODEL, ui_url=UI) == history
    assert calls == FINGERPRINT_CALLS


def test_a_new_run_or_an_alias_move_reads_everything_again(spied: dict[str, Any]) -> None:
    uri, calls = spied["uri"], spied["calls"]
    assert _load(uri)["tasks_learned"] == 2
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(spied["experiment_id"], tags={"ct.task_id": "task_2", "ct.status": "learned"})
    client.log_metric(run.info.run_id, "mean_retention", 0.91)
    client.set_terminated(run.info.run_id)
    calls.clear()
    state = _load(uri)
    assert state["tasks_learned"] == 3 and state["latest_run"]["run_id"] == run.info.run_id
    assert "download_artifacts" in calls

    client.set_registered_model_alias(MODEL, "champion", spied["versions"][1])
    calls.clear()
    assert _load(uri)["champion"]["version"] == spied["versions"][1]
    assert "get_model_version_by_alias" in calls
