"""Backups to S3 over HTTP (moto server, S3Hook): dedup, an outage mid-upload, corruption, restore, retention."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from tests.ops.backup.backup_support import listing, restart_s3, s3_client, tree_digest


def _store():
    from include.airflow_glue.s3 import s3_store_from_connection

    store = s3_store_from_connection()
    assert store is not None
    return store


def test_second_backup_of_unchanged_state_uploads_nothing_again(state, s3):
    from include.ops.backup import create_backup, latest_complete_backup, verify_backup

    store = _store()
    assert store.bucket == s3.bucket  # from the connection's service_config
    first = create_backup(settings=state, store=store)
    assert first.uploaded == first.files - _duplicates(first) and first.skipped_remote == 0
    puts_after_first = len(s3.object_puts())
    objects_before = {k: v for k, v in listing(s3).items() if "/objects/" in k}
    assert len(objects_before) == puts_after_first

    second = create_backup(settings=state, store=store)
    assert second.uploaded == 0 and second.skipped_remote == second.files
    assert len(s3.object_puts()) == puts_after_first, "the server saw an object upload on an unchanged state"
    objects_after = {k: v for k, v in listing(s3).items() if "/objects/" in k}
    assert objects_after == objects_before
    manifests = sorted(k for k in listing(s3) if k.endswith("manifest.json"))
    assert sorted(k.split("/")[-2] for k in manifests) == sorted([first.backup_id, second.backup_id])
    assert latest_complete_backup(state, "s3", store).backup_id == second.backup_id
    report = verify_backup(second.backup_id, "s3", state, store)
    assert report.ok and report.files == second.files


def _duplicates(result) -> int:
    from include.ops.backup import load_manifest

    files = load_manifest(result.backup_id).files
    return len(files) - len({f.sha256 for f in files})


def test_s3_outage_mid_upload_leaves_no_manifest_and_previous_backup_latest(state, s3):
    from include.ops.backup import RemoteUnavailable, create_backup, latest_complete_backup, list_backups

    store = _store()
    good = create_backup(settings=state, store=store)
    (state.state_dir / "notes.txt").write_text("new state the next backup must upload\n" * 1000)
    (state.state_dir / "more-notes.txt").write_text("a second new object\n" * 1000)
    s3.stop_after_object_puts = len(s3.object_puts())  # the first new object upload takes the server down

    with pytest.raises(RemoteUnavailable):
        create_backup(settings=state, store=store)
    infos = list_backups(state)
    failed = [i for i in infos if i.backup_id != good.backup_id]
    assert len(failed) == 1 and not failed[0].complete, "the local copy must stay incomplete"
    assert latest_complete_backup(state).backup_id == good.backup_id

    restart_s3(s3)
    keys = listing(s3)
    assert not any(k.endswith(f"{failed[0].backup_id}/manifest.json") for k in keys)
    assert latest_complete_backup(state, "s3", _store()).backup_id == good.backup_id
    remote = {i.backup_id: i.complete for i in list_backups(state, "s3", _store())}
    assert remote == {good.backup_id: True, failed[0].backup_id: False}


def test_corrupted_object_in_s3_is_named_and_restore_refused(state, s3, tmp_path: Path):
    from include.ops.backup import (
        BackupIntegrityError,
        RestoreTarget,
        create_backup,
        restore_backup,
        verify_backup,
    )
    from include.ops.backup.layout import read_manifest

    store = _store()
    result = create_backup(settings=state, store=store)
    entry = next(e for e in read_manifest(Path(result.path)).files if e.path.endswith(".pt"))
    key = store.object_key(entry.sha256)
    body = bytearray(s3_client(s3).get_object(Bucket=s3.bucket, Key=key)["Body"].read())
    body[100] ^= 0xFF
    s3_client(s3).put_object(Bucket=s3.bucket, Key=key, Body=bytes(body))
    with pytest.raises(BackupIntegrityError, match=entry.path):
        verify_backup(result.backup_id, "s3", state, store)
    before = tree_digest(state.state_dir)
    with pytest.raises(BackupIntegrityError, match=entry.path):
        restore_backup(result.backup_id, "s3", state, store)
    assert tree_digest(state.state_dir) == before
    with pytest.raises(BackupIntegrityError):
        restore_backup(
            result.backup_id, "s3", state, store, target=RestoreTarget.scratch(tmp_path / "scratch")
        )


def test_restore_from_s3_into_scratch_is_byte_identical(state, s3, tmp_path: Path):
    from include.ops.backup import RestoreTarget, create_backup, restore_backup, validate_restore

    store = _store()
    result = create_backup(settings=state, store=store)
    shutil.rmtree(result.path)  # the local copy is gone: only S3 is left
    target = RestoreTarget.scratch(tmp_path / "scratch")
    restored = restore_backup(result.backup_id, "s3", state, store, target=target)
    live = tree_digest(state.state_dir)
    scratch = tree_digest(target.state_dir)
    scratch.pop(".restored_from.json")
    assert scratch == live
    report = validate_restore(result.backup_id, "s3", state, target, backup_root=Path(restored.backup_root))
    assert report.ok and report.measured == report.recorded


def test_gfs_cleanup_in_s3_removes_expired_manifests_and_unreferenced_objects(state, s3):
    from include.ops.backup import cleanup_backups, create_backup, verify_backup

    store = _store()
    only_old = b"a file only the old backup holds\n"
    (state.state_dir / "old-only.txt").write_bytes(only_old)
    old = create_backup(settings=state, store=store)
    (state.state_dir / "old-only.txt").unlink()
    new = create_backup(settings=state, store=store)
    old_object = store.object_key(hashlib.sha256(only_old).hexdigest())
    assert old_object in listing(s3)

    # both backups are from the same day: daily=1 keeps only the newest
    dry = cleanup_backups(daily=1, weekly=0, monthly=0, settings=state, source="s3", store=store, dry_run=True,
                          incomplete_grace_hours=0)  # fmt: skip
    assert old.backup_id in dry.removed and old_object in listing(s3)
    before = listing(s3)
    report = cleanup_backups(daily=1, weekly=0, monthly=0, settings=state, source="s3", store=store,
                             incomplete_grace_hours=0)  # fmt: skip
    assert old.backup_id in report.removed and new.backup_id in report.kept
    after = listing(s3)
    assert not any(f"/{old.backup_id}/" in k for k in after)
    assert any(k.endswith(f"{new.backup_id}/manifest.json") for k in after)
    assert [k for k in before if k not in after and "/objects/" in k] == [old_object]
    assert verify_backup(new.backup_id, "s3", state, store).ok
