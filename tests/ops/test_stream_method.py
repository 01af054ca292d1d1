"""A stream's strategy and scenario are fixed at its first task (issue 15, item 5): left empty, a run uses the
stream's own; asked for another by any layer (param, operator override, env), the run is refused, never retried."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dag_helpers import load_dag
from tests.paths import ROOT


def _record(state_dir: Path, strategy: str, scenario: str = "class_incremental") -> None:
    """A learner state as the learner writes it after a stream's first task (only the keys read here)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    state = {"strategy": strategy, "scenario": scenario, "learned_tasks": ["task_0"]}
    (state_dir / "learner_state.json").write_text(json.dumps(state))


def _unset() -> dict:
    dag = load_dag("continual_training")
    return {k: dag.params[k] for k in dag.params}


def test_params_leave_strategy_and_scenario_to_the_stream():
    params = _unset()
    assert params["strategy"] is None and params["scenario"] is None
    description = load_dag("continual_training").params.get_param("strategy").description
    assert "fixed at its first task" in description and "refused" in description


def test_a_new_stream_takes_the_default_and_an_existing_one_keeps_its_own(ct_env: Path):
    from include.ops.run_settings import resolve_run_settings
    from include.ops.settings import get_settings
    from model.config import TrainConfig

    settings = get_settings()
    run = resolve_run_settings(_unset(), settings)
    assert (
        run.train_config["strategy"] == TrainConfig().strategy and run.sources["train.strategy"] == "default"
    )

    _record(settings.state_dir, "analytic", "task_incremental")
    run = resolve_run_settings(_unset(), settings)
    assert (run.train_config["strategy"], run.sources["train.strategy"]) == ("analytic", "stream")
    assert (run.train_config["scenario"], run.sources["train.scenario"]) == ("task_incremental", "stream")
    same = resolve_run_settings({**_unset(), "strategy": "analytic"}, settings)  # asking for its own is fine
    assert (same.train_config["strategy"], same.sources["train.strategy"]) == ("analytic", "param")


@pytest.mark.parametrize("layer", ["param", "override", "env"])
def test_another_strategy_than_the_streams_is_refused_from_every_layer(layer, ct_env: Path, monkeypatch):
    from include.ops import runtime_config
    from include.ops.errors import Refusal
    from include.ops.run_settings import StreamMethodMismatch, resolve_run_settings
    from include.ops.settings import get_settings

    settings = get_settings()
    _record(settings.state_dir, "analytic")
    params = _unset()
    if layer == "param":
        params["strategy"] = "replay"
    elif layer == "override":
        runtime_config.set_train_overrides({"strategy": "replay"})
    else:
        monkeypatch.setenv("CT_TRAIN_OVERRIDES", json.dumps({"strategy": "replay"}))
    with pytest.raises(StreamMethodMismatch) as info:
        resolve_run_settings(params, settings)
    assert isinstance(info.value, Refusal)
    message = str(info.value)
    assert "'replay' (from " + layer + ")" in message and "'analytic'" in message
    assert str(settings.state_dir) in message and "leave strategy empty" in message


def test_the_dag_plan_fails_without_retry_on_a_mismatch(ct_env: Path, airflow_db):
    from airflow.sdk.exceptions import AirflowFailException

    from include.ops.settings import get_settings

    _record(get_settings().state_dir, "analytic")
    plan = load_dag("continual_training").get_task("plan").python_callable
    with pytest.raises(AirflowFailException, match="refused: strategy 'ewc' \\(from param\\)"):
        plan(params={**_unset(), "strategy": "ewc"})


def test_the_container_cli_exits_refused_on_a_mismatch(ct_env: Path):
    from include.ops.errors import REFUSED_EXIT
    from include.ops.settings import get_settings

    _record(get_settings().state_dir, "analytic")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "include.ops.train_cli",
            "--task-id",
            "task_1",
            "--train-config",
            '{"strategy": "lwf"}',
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == REFUSED_EXIT, done.stderr
    assert "refused: strategy 'lwf' (from param)" in done.stderr


def test_the_method_falls_back_to_the_newest_checkpoint(tmp_path: Path):
    """A state without the keys (older learner state): the newest verified checkpoint's train_config says."""
    from model.capacity import read_stream_method
    from model.config import ModelConfig, TrainConfig
    from model.data import write_split_digits
    from model.learner import ContinualLearner

    assert read_stream_method(tmp_path / "state") is None
    manifest = write_split_digits(tmp_path / "stream")
    cfg = TrainConfig(strategy="naive", scenario="task_incremental", epochs=1, max_samples_per_task=32)
    learner = ContinualLearner(manifest, tmp_path / "state", ModelConfig(), cfg)
    learner.learn_task("task_0")
    state_file = tmp_path / "state" / "learner_state.json"
    state = json.loads(state_file.read_text())
    del state["strategy"], state["scenario"]
    state_file.write_text(json.dumps(state))
    assert read_stream_method(tmp_path / "state") == {"strategy": "naive", "scenario": "task_incremental"}
