"""continual_training end to end with dag.test(): a real Airflow DB, a real local MLflow store, the gate; and
the one training entry, task-manifest resolver and settings precedence it runs on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.dag_helpers import asset_events, load_dag, returned, state_name
from tests.paths import ROOT


@pytest.fixture
def small_training(ct_env: Path, airflow_db: Path, monkeypatch: pytest.MonkeyPatch):
    """Split-Digits written into the tmp data dir and training made tiny (1 epoch, 256 samples)."""
    from include.ops.settings import get_settings
    from model.data import write_split_digits

    monkeypatch.setenv("CT_TRAIN_OVERRIDES", json.dumps({"epochs": 1, "max_samples_per_task": 256}))
    settings = get_settings()
    write_split_digits(settings.data_dir)
    return settings


def test_two_tasks_tracked_registered_and_gated(small_training):
    import mlflow

    from include.ops import tracking
    from model.fsio import sha256_file

    settings = small_training
    dag = load_dag("continual_training")

    first = dag.test(run_conf={"task_id": "task_0", "strategy": "naive", "accuracy_floor": 0.5})
    assert state_name(first.state) == "success"
    events = asset_events("model_checkpoint", first.run_id)
    assert len(events) == 1 and events[0]["task_id"] == "task_0"
    assert sha256_file(Path(events[0]["checkpoint_path"])) == events[0]["checkpoint_sha256"]

    mlc = tracking.mlflow_client(settings)
    exp = mlc.get_experiment_by_name(settings.mlflow_experiment)
    runs = mlc.search_runs([exp.experiment_id], filter_string="tags.`ct.task_id` = 'task_0'")
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["ct.status"] == "learned"
    assert run.data.tags["ct.dag_run_id"] == first.run_id
    assert run.data.params["train.epochs"] == "1"
    assert run.data.params["train.max_samples_per_task"] == "256"
    assert 0.5 <= run.data.metrics["acc.task_0"] <= 1.0
    assert run.data.metrics["param_count"] < 100_000
    assert "strategy_memory_bytes" in run.data.metrics
    assert [m.step for m in mlc.get_metric_history(run.info.run_id, "loss")] == [0]
    artifacts = {a.path for a in mlc.list_artifacts(run.info.run_id)}
    assert {"acc_matrix.json", "acc_matrix.png", "checkpoint", "learn_result.json"} <= artifacts
    champion = mlc.get_model_version_by_alias(settings.registered_model, "champion")
    assert champion.tags["task_id"] == "task_0"
    # what the run learned, where the UI shows it: train's and gate's XCom, the Asset event's extra
    acc = run.data.metrics["acc.task_0"]
    (learned,) = returned(first, "train")
    assert learned["mlflow_run_id"] == run.info.run_id and learned["new_task_acc"] == pytest.approx(acc)
    assert events[0]["new_task_acc"] == learned["new_task_acc"] and events[0]["min_retention"] is None
    line = f"learned task_0: new-task acc {acc:.3f}, no old task to retain"
    assert events[0]["summary"] == line
    (report,) = returned(first, "gate")
    assert report["summary"] == f"{line}, gate: champion v{champion.version}"
    assert (report["version"], report["mlflow_run_id"]) == (str(champion.version), run.info.run_id)
    assert champion.tags["checkpoint_sha256"] == events[0]["checkpoint_sha256"]
    # the run's resolved settings, logged once: the conf's floor wins, the threshold is the settings default
    resolved = mlc.get_run(run.info.run_id)
    assert (
        resolved.data.tags["ct.accuracy_floor"] == "0.5"
        and resolved.data.tags["ct.retention_threshold"] == "0.8"
    )
    logged = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="run_settings.json")
        ).read_text()
    )
    assert (
        logged["sources"]["accuracy_floor"] == "param"
        and logged["sources"]["retention_threshold"] == "default"
    )
    assert logged["sources"]["train.epochs"] == "env" and logged["train_config"]["epochs"] == 1

    # Naive fine-tuning (no replay) forgets task_0 in the class-incremental scenario: the gate must fail the run visibly.
    second = load_dag("continual_training").test(run_conf={"strategy": "naive", "accuracy_floor": 0.5})
    assert state_name(second.state) == "failed"
    states = {ti.task_id: state_name(ti.state) for ti in second.get_task_instances()}
    assert states["train"] == "success" and states["register"] == "success" and states["gate"] == "failed"
    (event,) = asset_events("model_checkpoint", second.run_id)
    assert event["task_id"] == "task_1", "checkpoint Asset emitted despite the gate"
    assert event["min_retention"] < 0.8 and "min retention" in event["summary"]
    challenger = mlc.get_model_version_by_alias(settings.registered_model, "challenger")
    assert challenger.tags["task_id"] == "task_1" and challenger.tags["gate"] == "failed"
    assert mlc.get_model_version_by_alias(settings.registered_model, "champion").version == champion.version
    assert tracking.learned_task_ids(settings) == ["task_0", "task_1"]

    # triggering a learned task again (the README's first example, on a trained state): a successful no-op
    again = load_dag("continual_training").test(run_conf={"task_id": "task_0"})
    assert state_name(again.state) == "success"
    states = {ti.task_id: state_name(ti.state) for ti in again.get_task_instances()}
    assert states["plan"] == "skipped" and states["train"] == "skipped", states
    assert [ti.try_number for ti in again.get_task_instances() if ti.task_id == "plan"] == [1], "no retry"
    assert tracking.learned_task_ids(settings) == ["task_0", "task_1"]

    matrix = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(run_id=challenger.run_id, artifact_path="acc_matrix.json")
        ).read_text()
    )
    assert matrix["task_ids"] == ["task_0", "task_1"] and len(matrix["matrix"]) == 2

    # The registered model loads as a models-from-code pyfunc and predicts probabilities on real rows.
    from model.data import load_task_csv

    data = load_task_csv(settings.data_dir / "task_0.csv")
    pyfunc = mlflow.pyfunc.load_model(f"models:/{settings.registered_model}@champion")
    import pandas as pd

    rows = (
        pd.read_csv(settings.data_dir / "task_0.csv")
        .query("split == 'test'")
        .drop(columns=["label", "split"])
    )
    probs = pyfunc.predict(rows.astype("float64"))
    assert probs.shape == (len(data.y_test), 10)
    assert abs(float(probs.sum(axis=1).mean()) - 1.0) < 1e-4


def test_retry_of_same_dag_run_does_not_train_twice(small_training):
    from include.ops import training
    from include.ops.run_settings import resolve_train_config

    settings = small_training
    cfg = resolve_train_config({})
    first = training.learn_one(settings, "task_0", cfg, "continual_training", "manual__retry-test")
    ckpt = Path(first["checkpoint_path"])
    mtime = ckpt.stat().st_mtime_ns
    again = training.learn_one(settings, "task_0", cfg, "continual_training", "manual__retry-test")
    assert again["mlflow_run_id"] == first["mlflow_run_id"]
    assert ckpt.stat().st_mtime_ns == mtime, "the retry must not retrain the task"
    with pytest.raises(training.TrainingRefused, match="already learned"):
        training.plan_tasks(settings, "task_0", [])
    assert training.plan_tasks(settings, None, []) == ["task_1"]
    assert training.plan_tasks(settings, None, ["task_1", "task_0"]) == ["task_1"]
    with pytest.raises(training.TrainingRefused, match="not in the manifest"):
        training.plan_tasks(settings, "task_99", [])


def test_bad_train_override_is_refused_by_name(small_training, monkeypatch):
    from include.ops.run_settings import resolve_train_config

    monkeypatch.setenv("CT_TRAIN_OVERRIDES", json.dumps({"epochz": 3}))
    with pytest.raises(ValueError, match="epochz"):
        resolve_train_config({})
    monkeypatch.setenv("CT_TRAIN_OVERRIDES", "{not json")
    with pytest.raises(ValueError, match="CT_TRAIN_OVERRIDES"):
        resolve_train_config({})


def test_next_task_waits_for_validated_data(small_training):
    import shutil

    from include.ops import training
    from include.ops.task_manifest import resolve_task_manifest

    settings = small_training
    assert resolve_task_manifest(settings) == settings.source_manifest, (
        "no validated store yet: the raw stream"
    )
    settings.validated_dir.mkdir(parents=True)
    shutil.copy(settings.data_dir / "manifest.json", settings.validated_dir / "manifest.json")
    shutil.copy(settings.data_dir / "task_1.csv", settings.validated_dir / "task_1.csv")
    assert resolve_task_manifest(settings) == settings.validated_dir / "manifest.json"
    assert training.plan_tasks(settings, None, []) == [], "task_0 has not passed validation: nothing to train"
    with pytest.raises(training.TrainingRefused, match="has no data"):
        training.plan_tasks(settings, "task_0", [])
    assert training.plan_tasks(settings, None, ["task_1"]) == ["task_1"]


def test_docker_backend_wires_container_then_tracking(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("CT_TRAINING_BACKEND", "docker")
    monkeypatch.setenv("CT_TRAINING_QUEUE", "gpu")
    bag = DagBag(dag_folder=str(ROOT / "dags" / "continual_training.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag("continual_training")
    assert {t.task_id for t in dag.tasks} == {
        "plan",
        "train_container",
        "track",
        "register",
        "approve",
        "gate",
    }
    container = dag.get_task("train_container")
    assert (
        type(container).__name__ == "TrainingContainerOperator"
    )  # a DockerOperator whose refusal never retries
    assert container.queue == "gpu"
    assert container.upstream_task_ids == {"plan"}
    assert dag.get_task("track").upstream_task_ids == {"train_container"}
    assert "include.ops.train_cli" in " ".join(container.command)
    # the container learns the planned task with the run's resolved TrainConfig, both from plan's XCom
    assert "xcom_pull(task_ids='plan')['tasks'][0]" in container.command[4]
    assert "xcom_pull(task_ids='plan')['run']['train_config']" in container.command[6]
    assert [o.name for o in dag.get_task("track").outlets] == ["model_checkpoint"]


def test_training_task_is_routed_by_settings(monkeypatch):
    """CT_TRAINING_QUEUE / CT_TRAINING_EXECUTOR reach the train task (only it); an unknown executor is refused."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("CT_TRAINING_QUEUE", "gpu")
    monkeypatch.setenv("CT_TRAINING_EXECUTOR", "LocalExecutor")  # the one this test config has
    bag = DagBag(dag_folder=str(ROOT / "dags" / "continual_training.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag("continual_training")
    train = dag.get_task("train")
    assert (train.queue, train.executor) == ("gpu", "LocalExecutor")
    assert {dag.get_task(t).executor for t in ("plan", "register", "gate")} == {None}
    monkeypatch.setenv("CT_TRAINING_EXECUTOR", "NoSuchExecutor")
    bag = DagBag(dag_folder=str(ROOT / "dags" / "continual_training.py"))
    assert "NoSuchExecutor" in " ".join(bag.import_errors.values())


def test_settings_precedence_param_over_override_over_env_over_default(ct_env: Path, monkeypatch):
    """A param counts only when the trigger conf sets it; below it operator overrides, then env, then defaults."""
    from include.ops import runtime_config
    from include.ops.run_settings import resolve_run_settings
    from include.ops.settings import get_settings

    unset = {k: load_dag("continual_training").params[k] for k in load_dag("continual_training").params}
    assert unset["retention_threshold"] is None and unset["accuracy_floor"] is None
    run = resolve_run_settings(unset, get_settings())
    assert (run.retention_threshold, run.accuracy_floor) == (0.8, 0.9)
    assert run.sources["retention_threshold"] == run.sources["accuracy_floor"] == "default"

    monkeypatch.setenv("CT_RETENTION_THRESHOLD", "0.7")
    monkeypatch.setenv("CT_TRAIN_OVERRIDES", json.dumps({"epochs": 3, "lr": 0.01}))
    run = resolve_run_settings(unset, get_settings())
    assert (run.retention_threshold, run.sources["retention_threshold"]) == (0.7, "env")
    assert (run.train_config["lr"], run.sources["train.lr"]) == (0.01, "env")

    runtime_config.set_gate_overrides({"retention_threshold": 0.6, "accuracy_floor": 0.5})
    runtime_config.set_train_overrides({"lr": 0.001})
    run = resolve_run_settings(unset, get_settings())
    assert (run.retention_threshold, run.sources["retention_threshold"]) == (0.6, "override")
    assert (run.accuracy_floor, run.sources["accuracy_floor"]) == (0.5, "override")
    assert (run.train_config["lr"], run.sources["train.lr"]) == (0.001, "override")
    assert (run.train_config["epochs"], run.sources["train.epochs"]) == (3, "env")

    conf = {**unset, "retention_threshold": 0.95, "epochs": 2, "lr": 0.05}
    run = resolve_run_settings(conf, get_settings())
    assert (run.retention_threshold, run.sources["retention_threshold"]) == (0.95, "param")
    assert (run.accuracy_floor, run.sources["accuracy_floor"]) == (0.5, "override")
    assert (run.train_config["epochs"], run.train_config["lr"]) == (2, 0.05)
    assert run.sources["train.batch_size"] == "default"
    with pytest.raises(ValueError, match="gate override"):
        runtime_config.set_gate_overrides({"accuracy_floor": 1.5})


def test_maintenance_lock_refuses_every_training_path(small_training):
    """learn_one (in-process and the container's CLI) and the container task's pre_execute all check the lock."""
    import subprocess
    import sys

    from airflow.sdk.exceptions import AirflowFailException

    from include.airflow_glue.docker_training import refuse_while_locked
    from include.ops import training
    from include.ops.lock import maintenance_lock
    from include.ops.run_settings import resolve_train_config

    settings = small_training
    cfg = resolve_train_config({"strategy": "naive"})
    with maintenance_lock("restore-test", settings.lock_file):
        with pytest.raises(training.TrainingRefused, match="maintenance lock"):
            training.learn_one(settings, "task_0", cfg, "continual_training", "manual__locked")
        with pytest.raises(training.TrainingRefused, match="maintenance lock"):
            training.learn_one(settings, "task_0", cfg)
        with pytest.raises(AirflowFailException, match="refused: maintenance lock"):  # no retry
            refuse_while_locked({})
        cli = subprocess.run(
            [sys.executable, "-m", "include.ops.train_cli", "--task-id", "task_0"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert cli.returncode == 3 and "refused: maintenance lock" in cli.stderr  # REFUSED_EXIT: no retry
    assert not list(settings.checkpoint_dir.glob("*.pt")), "nothing was trained under the lock"


def test_container_result_line_is_tracked_once(small_training):
    import subprocess
    import sys

    from include.ops import tracking, training

    settings = small_training
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "include.ops.train_cli",
            "--task-id",
            "task_0",
            "--train-config",
            '{"strategy": "naive"}',
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    line = out.stdout.strip().splitlines()[-1]
    first = training.record_container_result(settings, line, "continual_training", "manual__container")
    again = training.record_container_result(settings, line, "continual_training", "manual__container")
    assert first["mlflow_run_id"] == again["mlflow_run_id"]
    assert tracking.learned_task_ids(settings) == ["task_0"]
    with pytest.raises(ValueError, match="LearnResult JSON"):
        training.record_container_result(
            settings, "Traceback (most recent call last)", "continual_training", "x"
        )


def test_tasks_learned_before_validation_keep_their_raw_files_new_ones_need_validation(small_training):
    import shutil

    from include.ops import training
    from include.ops.run_settings import resolve_train_config
    from include.ops.task_manifest import resolve_task_manifest
    from model.data import load_manifest

    settings = small_training
    cfg = resolve_train_config({"strategy": "naive"})
    training.learn_one(settings, "task_0", cfg, "continual_training", "manual__before-validation")
    settings.validated_dir.mkdir(parents=True)
    shutil.copy(settings.data_dir / "manifest.json", settings.validated_dir / "manifest.json")
    shutil.copy(settings.data_dir / "task_1.csv", settings.validated_dir / "task_1.csv")

    path = resolve_task_manifest(settings)
    files = {t.task_id: t.file for t in load_manifest(path).tasks}
    assert files["task_0"] == str(settings.data_dir / "task_0.csv"), "learned task evaluated on its raw file"
    assert files["task_1"] == str(settings.validated_dir / "task_1.csv")
    assert files["task_2"] == str(settings.validated_dir / "task_2.csv"), "never the raw file of a new task"
    assert training.plan_tasks(settings, None, []) == ["task_1"]
    summary = training.learn_one(settings, "task_1", cfg, "continual_training", "manual__after-validation")
    assert summary["task_ids"] == ["task_0", "task_1"]
    assert training.plan_tasks(settings, None, []) == [], "task_2 has not passed validation"


def test_experiment_is_tagged_as_model_training_even_when_it_existed_before(ct_env: Path):
    """MLflow 3's UI picks its view from mlflow.experimentKind; an untagged older experiment gets the tag."""
    from include.ops import tracking
    from include.ops.settings import get_settings

    settings = get_settings()
    mlc = tracking.mlflow_client(settings)
    old_id = mlc.create_experiment(settings.mlflow_experiment)  # created by an older version: no kind tag
    assert tracking.EXPERIMENT_KIND_TAG not in mlc.get_experiment(old_id).tags
    assert tracking.ensure_experiment(settings) == old_id
    assert mlc.get_experiment(old_id).tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    fresh = settings.replace(mlflow_experiment="another")
    new_id = tracking.ensure_experiment(fresh)
    assert mlc.get_experiment(new_id).tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"


def test_a_run_with_nothing_to_learn_registers_what_a_crash_left_unregistered(small_training):
    """Learned in MLflow, killed before `register`: the next trigger gates it without training or an Asset event."""
    import shutil

    from include.ops import tracking, training
    from include.ops.run_settings import resolve_train_config

    settings = small_training
    cfg = resolve_train_config({"strategy": "naive"})
    learned = training.learn_one(
        settings, "task_0", cfg, "continual_training", "manual__killed-before-register"
    )
    settings.validated_dir.mkdir(parents=True)  # task_1 has not passed validation: nothing new to learn
    shutil.copy(settings.data_dir / "manifest.json", settings.validated_dir / "manifest.json")
    assert training.plan_tasks(settings, None, []) == []

    dagrun = load_dag("continual_training").test(run_conf={"accuracy_floor": 0.0})
    states = {ti.task_id: state_name(ti.state) for ti in dagrun.get_task_instances()}
    assert state_name(dagrun.state) == "success", states
    assert (states["plan"], states["train"], states["register"], states["gate"]) == (
        "success",
        "skipped",
        "success",
        "success",
    ), states
    assert asset_events("model_checkpoint", dagrun.run_id) == [], "nothing was trained"
    version = tracking.registered_version(settings, learned["mlflow_run_id"])
    mlc = tracking.mlflow_client(settings)
    assert mlc.get_model_version(settings.registered_model, version).tags["gate"] == "passed"
    again = load_dag("continual_training").test()  # nothing pending any more: every task skipped
    assert state_name(again.state) == "success"
    assert {ti.task_id: state_name(ti.state) for ti in again.get_task_instances()}["plan"] == "skipped"
    assert len(mlc.search_model_versions(f"name = '{settings.registered_model}'")) == 1, "registered once"
