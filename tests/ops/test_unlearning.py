"""``unlearn_task`` end to end against a real MLflow store (SQLite in tmp) and a validated store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

TRAIN = {"strategy": "analytic", "analytic_features": 64, "device": "cpu"}


def _validated_store(settings, manifest: Path, names: list[str]) -> None:
    """Publish Split-Digits task files into the validated store as validation does."""
    from include.ops.validation.store import publish_validated
    from model.fsio import sha256_file

    for name in names:
        src = manifest.parent / name
        publish_validated(
            src,
            name,
            sha256_file(src),
            manifest,
            settings.validated_dir,
            {"task_id": name.removesuffix(".csv")},
        )


@pytest.fixture
def learned(ct_env: Path, manifest: Path):
    """task_0..task_2 learned with the analytic strategy through learn_one, the last registered as champion."""
    from include.ops import tracking, training
    from include.ops.settings import get_settings

    settings = get_settings()
    _validated_store(settings, manifest, ["task_0.csv", "task_1.csv", "task_2.csv"])
    for task_id in ("task_0", "task_1", "task_2"):
        summary = training.learn_one(
            settings, task_id, TRAIN, dag_id="continual_training", dag_run_id=f"m_{task_id}"
        )
    version = tracking.register_version(settings, summary["mlflow_run_id"], summary)
    assert tracking.apply_gate(settings, version, summary, 0.5, 0.5).passed
    return settings


def test_unlearn_task_end_to_end(learned, manifest: Path):
    import mlflow

    from include.ops import tracking, training
    from include.ops.unlearning import unlearn_task, unlearned_task_ids
    from include.ops.validation.store import read_index
    from model.checkpoint import load_checkpoint
    from model.fsio import sha256_file

    settings = learned
    _refusals_change_nothing(settings, manifest)
    done = unlearn_task(settings, "task_0", requested_by="dpo@example.org")
    assert (
        done.learned_tasks == ["task_1", "task_2"]
        and done.version_before == "1"
        and done.version_after == "2"
    )
    assert done.gate_passed

    mlc = tracking.mlflow_client(settings)
    run = mlc.get_run(done.run_id)
    assert run.data.tags["ct.unlearned_task"] == "task_0"
    assert run.data.tags["ct.requested_by"] == "dpo@example.org"
    assert (run.data.tags["ct.version_before"], run.data.tags["ct.version_after"]) == ("1", "2")
    assert run.info.status == "FINISHED" and run.data.tags.get(tracking.TAG_STATUS) != tracking.STATUS_LEARNED
    version = mlc.get_model_version(settings.registered_model, "2")
    assert version.tags["gate"] == "passed" and version.tags["unlearned_task"] == "task_0"
    assert str(mlc.get_model_version_by_alias(settings.registered_model, "champion").version) == "2"

    # the served pyfunc predicts with the new head and holds no strategy memory
    served = Path(mlflow.artifacts.download_artifacts(f"models:/{settings.registered_model}/2")) / "artifacts"
    payload = load_checkpoint(next(served.glob("*.pt")))
    assert "strategy_state" not in payload and payload["learned_tasks"] == ["task_1", "task_2"]
    pixels = (manifest.parent / "task_0.csv").read_text().splitlines()[1:40]
    model = mlflow.pyfunc.load_model(f"models:/{settings.registered_model}/2")
    frame = pd.DataFrame(
        [[int(v) for v in line.split(",")[:64]] for line in pixels], columns=[f"f{i}" for i in range(64)]
    )
    assert set(model.predict(frame).argmax(axis=1).tolist()) <= {2, 3, 4, 5}

    # the file left the validated store for the quarantine, bytes intact
    assert "task_0.csv" not in read_index(settings.validated_dir)["files"]
    assert not (settings.validated_dir / "task_0.csv").exists()
    assert sha256_file(Path(done.quarantined)) == sha256_file(manifest.parent / "task_0.csv")

    # never learned again: the planner refuses a request and skips it automatically; unlearning twice is refused
    assert unlearned_task_ids(settings) == ["task_0"]
    with pytest.raises(training.TrainingRefused, match="was unlearned"):
        training.plan_tasks(settings, "task_0", [])
    assert training.plan_tasks(settings, None, []) == []
    from include.ops.unlearning import UnlearningRefusal

    with pytest.raises(UnlearningRefusal, match="already unlearned"):
        unlearn_task(settings, "task_0")

    # a crash after the unlearning's checkpoint, before MLflow heard of it: a rerun records it, not refuses
    from include.ops.task_manifest import resolve_task_manifest
    from model.learner import ContinualLearner

    ContinualLearner(resolve_task_manifest(settings), settings.state_dir).unlearn_task("task_2")
    resumed = unlearn_task(settings, "task_2", requested_by="dpo")
    assert resumed.learned_tasks == ["task_1"] and (resumed.version_before, resumed.version_after) == (
        "2",
        "3",
    )
    assert unlearned_task_ids(settings) == ["task_0", "task_2"]
    assert not (settings.validated_dir / "task_2.csv").exists()


def _refusals_change_nothing(settings, manifest: Path) -> None:
    """A changed file and a task never learned are refused, with the learner state and registry untouched."""
    from include.ops import tracking
    from include.ops.task_manifest import resolve_task_manifest
    from include.ops.unlearning import UnlearningRefusal, unlearn_task
    from model.learner import ContinualLearner

    stored = settings.validated_dir / "task_0.csv"
    original = stored.read_bytes()
    stored.write_bytes(original.replace(b"train", b"test", 1))
    with pytest.raises(UnlearningRefusal, match="was learned from"):
        unlearn_task(settings, "task_0")
    shutil.copyfile(manifest.parent / "task_0.csv", stored)
    with pytest.raises(UnlearningRefusal, match="not recorded as learned"):
        unlearn_task(settings, "task_4")
    learner = ContinualLearner(resolve_task_manifest(settings), settings.state_dir)
    assert learner.learned_tasks == ["task_0", "task_1", "task_2"]
    mlc = tracking.mlflow_client(settings)
    assert len(mlc.search_model_versions(f"name = '{settings.registered_model}'")) == 1


@pytest.mark.parametrize("step", ["after_unlearned_tag", "after_unlearned_quarantine"])
def test_a_crash_after_the_unlearned_mark_is_finished_by_a_rerun(step, learned, manifest: Path):
    """SIGKILL once the task's learned run is marked unlearned (no version yet), or once the file is quarantined
    (the run does not say so yet): the rerun finishes it, with one version and one quarantine entry, no refusal."""
    import json
    import os
    import signal
    import subprocess
    import sys

    from include.ops import tracking
    from include.ops.unlearning import UnlearningRefusal, unlearn_task, unlearned_task_ids
    from model.fsio import sha256_file
    from tests.paths import ROOT

    settings = learned
    sha = sha256_file(manifest.parent / "task_0.csv")
    code = (
        "from include.ops.settings import get_settings\n"
        "from include.ops.unlearning import unlearn_task\n"
        "unlearn_task(get_settings(), 'task_0', requested_by='dpo@example.org')\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "CT_FAULT_AT": step}, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]

    done = unlearn_task(settings, "task_0", requested_by="someone else")
    assert done.requested_by == "dpo@example.org", "the unlearning run's own record is finished"
    assert done.learned_tasks == ["task_1", "task_2"] and (done.version_before, done.version_after) == (
        "1",
        "2",
    )
    mlc = tracking.mlflow_client(settings)
    assert [str(mv.version) for mv in mlc.search_model_versions(f"run_id = '{done.run_id}'")] == ["2"]
    assert str(mlc.get_model_version_by_alias(settings.registered_model, "champion").version) == "2"
    run = mlc.get_run(done.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["ct.quarantined"] == done.quarantined
    entries = json.loads((settings.quarantine_dir / "index.json").read_text())["entries"]
    assert [e["sha256"] for e in entries].count(sha) == 1 and sha256_file(Path(done.quarantined)) == sha
    assert unlearned_task_ids(settings) == ["task_0"]
    with pytest.raises(UnlearningRefusal, match="already unlearned"):
        unlearn_task(settings, "task_0")
