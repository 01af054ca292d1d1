"""Retracting a validated batch that has not been learned yet frees a stuck stream: its bytes go to the
quarantine, the store's index and manifest forget it, a learned task is refused and nothing changes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.ops.validation.helpers import land, store_snapshot, task_text
from tests.paths import ROOT


@pytest.fixture
def two_validated(val_env, split_digits):
    """task_0 and task_1 validated (both still in the landing zone, as passing files stay)."""
    from include.ops.validation.zone import validate_landing_zone

    for k in (0, 1):
        land(val_env, f"task_{k}.csv", task_text(split_digits, k))
    assert [r.status for r in validate_landing_zone()] == ["validated", "validated"]
    return val_env


def test_retract_moves_bytes_to_quarantine_and_frees_the_name(
    two_validated, split_digits, monkeypatch, capsys
):
    from include.ops import tracking
    from include.ops.validation.cli import main
    from include.ops.validation.zone import validate_landing_zone
    from model.data import load_manifest

    settings = two_validated
    monkeypatch.setattr(tracking, "learned_task_ids", lambda s: ["task_0"])
    original = (settings.validated_dir / "task_1.csv").read_bytes()

    assert main(["retract", "task_1.csv"]) == 0
    out = capsys.readouterr().out
    assert "retracted task_1.csv (task task_1" in out and "retracted by operator" in out
    assert not (settings.validated_dir / "task_1.csv").exists()
    index = json.loads((settings.validated_dir / "index.json").read_text())
    assert sorted(index["files"]) == ["task_0.csv"]
    assert [t.task_id for t in load_manifest(settings.validated_dir / "manifest.json").tasks] == ["task_0"]
    entries = json.loads((settings.quarantine_dir / "index.json").read_text())["entries"]
    assert [e["reason"] for e in entries] == ["retracted by operator", "retracted by operator (landing copy)"]
    assert all(Path(e["file"]).read_bytes() == original for e in entries), "bytes kept, byte for byte"
    assert not (settings.landing_dir / "task_1.csv").exists(), "the landing copy is not re-validated"
    report = json.loads((Path(entries[0]["file"]).parent / "report.json").read_text())
    assert report["task_id"] == "task_1" and report["status"] == "retracted"

    # the name is free again: a corrected file validates, the rest of the stream is untouched
    assert [r.status for r in validate_landing_zone()] == ["skipped"]
    land(settings, "task_1.csv", task_text(split_digits, 1).replace("\n", "\r\n"))
    assert [r.status for r in validate_landing_zone()] == ["skipped", "validated"]


def test_a_learned_task_is_refused_and_nothing_changes(two_validated, monkeypatch, capsys):
    from include.ops import tracking
    from include.ops.validation.cli import main

    settings = two_validated
    monkeypatch.setattr(tracking, "learned_task_ids", lambda s: ["task_0", "task_1"])
    before = store_snapshot(settings.validated_dir)
    assert main(["retract", "task_1.csv"]) == 1
    assert "recorded as learned in MLflow" in capsys.readouterr().err
    assert store_snapshot(settings.validated_dir) == before
    assert not (settings.quarantine_dir / "index.json").exists()

    def broken(s):
        raise ConnectionError("tracking server down")

    monkeypatch.setattr(tracking, "learned_task_ids", broken)
    assert main(["retract", "task_1.csv"]) == 1
    assert "cannot tell from MLflow" in capsys.readouterr().err
    assert store_snapshot(settings.validated_dir) == before


def test_retracting_the_only_task_keeps_its_manifest_in_quarantine(val_env, split_digits):
    from include.ops.validation.retract import RetractRefused, retract_batch
    from include.ops.validation.zone import validate_landing_zone

    land(val_env, "task_0.csv", task_text(split_digits, 0))
    assert [r.status for r in validate_landing_zone()] == ["validated"]
    stored_manifest = (val_env.validated_dir / "manifest.json").read_bytes()
    done = retract_batch(val_env, "task_0.csv", learned=[])
    assert not (val_env.validated_dir / "manifest.json").exists()
    assert (done.quarantined.parent / "manifest.json").read_bytes() == stored_manifest
    assert json.loads((val_env.validated_dir / "index.json").read_text())["files"] == {}
    with pytest.raises(RetractRefused, match="not a validated batch"):
        retract_batch(val_env, "task_0.csv", learned=[])


def test_an_interrupted_retraction_is_finished_by_a_rerun(two_validated):
    """Killed after the bytes moved but before the index was written: the rerun completes it."""
    from include.ops.validation.retract import retract_batch
    from include.ops.validation.store import quarantine

    settings = two_validated
    entry = json.loads((settings.validated_dir / "index.json").read_text())["files"]["task_1.csv"]
    original = (settings.validated_dir / "task_1.csv").read_bytes()
    report = {"check": "retracted", "stage": "retract", "reason": "retracted by operator"}
    quarantine(
        settings.validated_dir / "task_1.csv", "task_1.csv", entry["sha256"], report, settings.quarantine_dir
    )
    done = retract_batch(settings, "task_1.csv", learned=[])
    assert done.quarantined.read_bytes() == original
    assert sorted(json.loads((settings.validated_dir / "index.json").read_text())["files"]) == ["task_0.csv"]
    assert "task_1.csv" not in (settings.validated_dir / "manifest.json").read_text()


def test_make_retract_batch(val_env):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    usage = subprocess.run(
        ["make", "--no-print-directory", "retract-batch"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert usage.returncode != 0 and "usage: make retract-batch FILE=task_2.csv" in usage.stderr
    out = subprocess.run(
        ["make", "--no-print-directory", "retract-batch", "FILE=task_2.csv"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode != 0 and "'task_2.csv' is not a validated batch" in out.stderr


def test_an_s3_landing_copy_is_moved_to_the_quarantine_prefix(two_validated, split_digits):
    """With an S3 landing zone the object holding the retracted bytes moves to the quarantine prefix."""
    from include.ops.validation.landing import S3Landing
    from include.ops.validation.retract import retract_batch
    from tests.ops.validation.test_validation_landing import FakeS3

    data = (two_validated.validated_dir / "task_1.csv").read_bytes()
    client = FakeS3({("b", "landing/task_1.csv"): data, ("b", "landing/task_0.csv"): b"other"})
    landing = S3Landing(client, "s3://b/landing/", "s3://b/quarantine/")
    done = retract_batch(two_validated, "task_1.csv", learned=[], landing=landing)
    assert done.landing_copy == f"s3://b/quarantine/{done.quarantined.parent.name}/task_1.csv"
    assert ("b", "landing/task_1.csv") not in client.objects and ("b", "landing/task_0.csv") in client.objects
    assert client.objects[("b", f"quarantine/{done.quarantined.parent.name}/task_1.csv")] == data
    assert (two_validated.landing_dir / "task_1.csv").exists(), "the local zone is not the one in use here"


def test_retracting_every_batch_never_falls_back_to_the_raw_stream(two_validated, monkeypatch):
    from include.ops import tracking
    from include.ops.errors import Refusal
    from include.ops.task_manifest import resolve_task_manifest
    from include.ops.validation.cli import main

    settings = two_validated
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "manifest.json").write_text("{}")  # a raw stream that never passed the gate
    monkeypatch.setattr(tracking, "learned_task_ids", lambda s: [])
    assert main(["retract", "task_0.csv"]) == 0 and main(["retract", "task_1.csv"]) == 0
    assert not (settings.validated_dir / "manifest.json").exists()
    with pytest.raises(Refusal, match="holds no validated task"):
        resolve_task_manifest(settings, learned=set())


def test_the_learned_check_and_the_move_run_under_the_training_lock(two_validated, monkeypatch, capsys):
    """A training holding the lock makes a retract wait, then refuse with nothing changed; the "learned?"
    question is asked with the lock held, so no training can start on the batch between check and move."""
    from include.ops import tracking
    from include.ops.training_recovery import training_lock_path
    from include.ops.validation.cli import main
    from model.fsio import LockTimeout, file_lock

    settings = two_validated
    monkeypatch.setenv("CT_TRAINING_LOCK_TIMEOUT_S", "0")
    lock = training_lock_path(settings)
    before = store_snapshot(settings.validated_dir)
    with file_lock(lock):  # a training in progress
        assert main(["retract", "task_1.csv"]) == 1
    assert "holds the training lock" in capsys.readouterr().err
    assert store_snapshot(settings.validated_dir) == before

    seen = []

    def learned_while_locked(s):
        with pytest.raises(LockTimeout), file_lock(lock, timeout=0):  # the retract holds it now
            pass
        seen.append(True)
        return []

    monkeypatch.setattr(tracking, "learned_task_ids", learned_while_locked)
    assert main(["retract", "task_1.csv"]) == 0 and seen == [True]
    assert not (settings.validated_dir / "task_1.csv").exists()
