"""Maintenance lock: exclusive across holders, re-entrant for one holder, stale locks expire, garbage blocks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from include.ops.lock import (
    MaintenanceLocked,
    acquire_maintenance_lock,
    assert_not_locked,
    is_maintenance_locked,
    maintenance_lock,
    read_lock,
    release_maintenance_lock,
)


@pytest.fixture
def lock_file(tmp_path: Path) -> Path:
    return tmp_path / "var" / "maintenance.lock"


def test_second_holder_is_refused_and_named(lock_file: Path):
    acquire_maintenance_lock("disaster_recovery:run1", lock_file)
    assert is_maintenance_locked(lock_file)
    with pytest.raises(MaintenanceLocked, match="disaster_recovery:run1"):
        acquire_maintenance_lock("restore:cli", lock_file)
    with pytest.raises(MaintenanceLocked, match="checkpoint_backup refused.*disaster_recovery:run1"):
        assert_not_locked("checkpoint_backup", lock_file)
    with pytest.raises(MaintenanceLocked):
        release_maintenance_lock("someone-else", lock_file)
    assert release_maintenance_lock("disaster_recovery:run1", lock_file)
    assert not is_maintenance_locked(lock_file)
    assert_not_locked("checkpoint_backup", lock_file)
    assert not lock_file.exists()


def test_context_manager_is_reentrant_for_the_same_holder(lock_file: Path):
    acquire_maintenance_lock("dr:run", lock_file)
    with maintenance_lock("dr:run", lock_file):
        assert read_lock(lock_file).holder == "dr:run"
    assert is_maintenance_locked(lock_file), "the nested block must not release the outer holder's lock"
    release_maintenance_lock("dr:run", lock_file)
    with maintenance_lock("cli", lock_file):
        assert is_maintenance_locked(lock_file)
    assert not is_maintenance_locked(lock_file)


def test_lock_released_when_block_raises(lock_file: Path):
    with pytest.raises(RuntimeError, match="boom"), maintenance_lock("cli", lock_file):
        raise RuntimeError("boom")
    assert not lock_file.exists()


def test_stale_lock_no_longer_blocks_and_is_taken_over(lock_file: Path):
    acquire_maintenance_lock("crashed", lock_file, ttl_seconds=0.01)
    time.sleep(0.05)
    assert not is_maintenance_locked(lock_file)
    info = acquire_maintenance_lock("new", lock_file)
    assert info.holder == "new" and read_lock(lock_file).holder == "new"


def test_garbled_lock_file_counts_as_held(lock_file: Path):
    lock_file.parent.mkdir(parents=True)
    lock_file.write_text("{not json")
    assert is_maintenance_locked(lock_file)
    with pytest.raises(MaintenanceLocked, match="unreadable"):
        acquire_maintenance_lock("dr", lock_file)
    assert release_maintenance_lock("operator", lock_file, force=True)


def test_lock_contents_are_complete_json(lock_file: Path):
    acquire_maintenance_lock("dr:x", lock_file)
    data = json.loads(lock_file.read_text())
    assert set(data) == {"holder", "host", "pid", "since", "expires_at"}
    assert data["expires_at"] > data["since"]
