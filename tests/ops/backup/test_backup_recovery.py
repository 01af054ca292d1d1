"""The disaster-recovery steps as plain functions (no scheduler), the DAG params, and the S3/CLI seam."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ops.backup.backup_support import backup_bytes, tree_digest
from tests.paths import ROOT


def test_param_pattern_is_the_backup_id_format_or_latest():
    from include.airflow_glue.recovery import BACKUP_ID_PARAM_PATTERN
    from include.ops.backup.layout import BACKUP_ID_PATTERN

    expected = rf"^(latest|{BACKUP_ID_PATTERN.strip('^$')})$"
    assert expected == BACKUP_ID_PARAM_PATTERN
    for good in ("latest", "20261128T214500Z", "20261128T214500Z-3"):
        assert re.fullmatch(BACKUP_ID_PARAM_PATTERN, good)
    for bad in ("../../etc", "20261128T214500Z/../x", "Latest", ""):
        assert not re.fullmatch(BACKUP_ID_PARAM_PATTERN, bad)


def test_recovery_steps_restore_validate_and_release(state):
    from include.ops.backup import create_backup, load_manifest, recovery
    from include.ops.lock import is_maintenance_locked
    from include.ops.task_manifest import resolve_task_manifest

    result = create_backup(settings=state)
    assert load_manifest(result.backup_id).source["task_manifest"] == str(resolve_task_manifest(state))
    backed_up = tree_digest(state.state_dir)
    for ckpt in state.checkpoint_dir.glob("*.pt"):
        ckpt.write_bytes(b"lost")  # disaster

    plan = recovery.plan_recovery("latest", "local", dry_run=False)
    assert plan == {"backup_id": result.backup_id, "source": "local", "dry_run": False, "skipped": []}
    holder = recovery.lock_for_recovery(plan, "disaster_recovery:test")
    assert is_maintenance_locked(state.lock_file)
    assert recovery.pause_for_recovery(plan, None) == {"paused": [], "note": "no Airflow API connection"}
    verified = recovery.verify_for_recovery(plan)
    assert verified["ok"] and verified["files"] == result.files
    restored = recovery.restore_for_recovery(plan, holder)  # re-entrant: the holder already has the lock
    healthy = recovery.health_after_restore(plan, restored)
    validated = recovery.validate_after_restore(plan, restored)
    assert healthy and validated["ok"], validated["problems"]
    release = recovery.release_after_recovery(plan, holder, restored, validated, [], None)
    assert release == {"lock": "released", "unpaused": []} and not is_maintenance_locked(state.lock_file)

    results = dict(
        zip(
            recovery.WORK_STEPS,
            (plan, holder, {"paused": []}, verified, restored, healthy, validated),
            strict=True,
        )
    )
    summary = recovery.notify_recovery(recovery.recovery_summary(results, plan, release), None)
    assert summary["ok"] and summary["channel"] == "log" and summary["backup_id"] == result.backup_id
    recovery.check_recovery(summary)
    restored_tree = tree_digest(state.state_dir)
    assert ".restored_from.json" in restored_tree
    assert backup_bytes(restored_tree) == backup_bytes(backed_up)


def test_a_dry_run_takes_no_lock_and_changes_nothing(state):
    from include.ops.backup import create_backup, recovery
    from include.ops.lock import is_maintenance_locked

    create_backup(settings=state)
    (state.state_dir / "notes.txt").write_text("written after the backup\n")
    before = tree_digest(state.state_dir)
    plan = recovery.plan_recovery("latest", "local", dry_run=True)
    holder = recovery.lock_for_recovery(plan, "disaster_recovery:dry")
    assert not is_maintenance_locked(state.lock_file)
    restored = recovery.restore_for_recovery(plan, holder)
    assert restored["dry_run"] and restored["changes"]["state"]["removed"] == ["notes.txt"]
    assert recovery.health_after_restore(plan, restored) == {"skipped": "dry run"}
    assert recovery.validate_after_restore(plan, restored)["ok"]
    assert tree_digest(state.state_dir) == before


def test_failed_checks_after_the_swap_keep_the_lock(state):
    from include.ops.backup import recovery
    from include.ops.lock import is_maintenance_locked, release_maintenance_lock

    plan = {"backup_id": "20261128T214500Z", "source": "local", "dry_run": False}
    holder = recovery.lock_for_recovery(plan, "disaster_recovery:bad")
    restored = {"dry_run": False, "backup_root": "/nowhere"}
    kept = recovery.release_after_recovery(plan, holder, restored, None, ["continual_training"], None)
    assert kept == {"lock": "kept", "paused": ["continual_training"]}
    assert is_maintenance_locked(state.lock_file)
    release_maintenance_lock(holder, state.lock_file)
    # nothing was swapped (restore failed): the lock is released even though validation never ran
    assert recovery.release_after_recovery(plan, holder, None, None, [], None)["lock"] == "released"
    assert not is_maintenance_locked(state.lock_file)


def test_summary_names_the_failed_steps_and_check_fails_the_run():
    from include.ops.backup import recovery

    plan = {"backup_id": "20261128T214500Z", "source": "s3", "dry_run": False}
    results = {"resolve": plan, "take_lock": "h", "pause_dags": {}, "verify": None}
    summary = recovery.recovery_summary(results, plan, {"lock": "released"})
    assert summary["ok"] is False and summary["source"] == "s3"
    assert summary["steps"]["resolve"] and not summary["steps"]["verify"]
    assert {"step verify failed", "step restore failed", "step validate failed"} <= set(summary["problems"])
    with pytest.raises(recovery.RecoveryFailed, match="step verify failed"):
        recovery.check_recovery(summary)
    with pytest.raises(recovery.RecoveryFailed, match="notify failed"):
        recovery.check_recovery(None)


def test_permanent_errors_are_the_ones_a_retry_cannot_fix(state):
    from include.ops.backup import InvalidBackupId, recovery
    from include.ops.backup.layout import BackupNotFound

    with pytest.raises(InvalidBackupId) as bad:
        recovery.plan_recovery("../../etc", "local", dry_run=False)
    with pytest.raises(BackupNotFound) as none:
        recovery.plan_recovery("latest", "local", dry_run=False)
    assert isinstance(bad.value, recovery.PERMANENT_ERRORS) and isinstance(
        none.value, recovery.PERMANENT_ERRORS
    )


def test_task_data_moves_files_named_outside_the_manifest_folder(tmp_path: Path):
    from include.ops.backup.sources import task_data
    from model.data import load_manifest

    outside = tmp_path / "raw" / "task_0.csv"
    outside.parent.mkdir()
    outside.write_text("x\n")
    store = tmp_path / "validated"
    store.mkdir()
    (store / "task_1.csv").write_text("y\n")
    manifest = store / "manifest.json"
    tasks = [
        {"task_id": "task_0", "classes": [0, 1], "file": str(outside)},  # effective manifest: absolute path
        {"task_id": "task_1", "classes": [2, 3], "file": "task_1.csv"},
    ]
    manifest.write_text(json.dumps({"name": "t", "num_classes": 4, "tasks": tasks}))
    data = task_data(manifest)
    assert data.files == [("tasks/task_0/task_0.csv", outside), ("task_1.csv", store / "task_1.csv")]
    copy = tmp_path / "backup_data" / "manifest.json"
    copy.parent.mkdir()
    copy.write_bytes(data.manifest)
    assert [t.file for t in load_manifest(copy).tasks] == ["tasks/task_0/task_0.csv", "task_1.csv"]

    tasks[0]["file"] = "task_1.csv"  # nothing outside: the manifest is backed up byte for byte
    tasks[1]["file"] = "task_1.csv"
    manifest.write_text(json.dumps({"name": "t", "num_classes": 4, "tasks": tasks[1:]}))
    assert task_data(manifest).manifest == manifest.read_bytes()
    assert task_data(tmp_path / "missing.json") == type(data)([], None)


def _cli(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_the_ops_cli_is_local_only_and_the_glue_entry_reaches_s3(state, s3):
    from include.ops.backup.s3 import store_location

    local_only = _cli("include.ops.backup.cli", "list", "--source", "s3")
    assert local_only.returncode == 1 and "include.airflow_glue.backup_cli" in local_only.stderr
    backup = _cli("include.airflow_glue.backup_cli", "--json", "backup", "--no-verify")
    assert backup.returncode == 0, backup.stderr[-2000:]
    result = json.loads(backup.stdout)["backup"]
    assert result["remote"] == {"bucket": s3.bucket, "prefix": "continual-transformer"}
    listing = _cli("include.airflow_glue.backup_cli", "list", "--source", "s3")
    assert listing.returncode == 0 and result["backup_id"] in listing.stdout
    assert store_location(None, None) == ("continual-transformer-backups", "continual-transformer")
    assert store_location("b", "") == ("b", "")
