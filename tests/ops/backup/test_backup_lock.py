"""Maintenance lock: exclusive across holders, re-entrant for one holder, stale locks expire, garbage blocks."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from include.ops import lock
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


class FakeClock:
    """Unix time that moves only when the test says so."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(lock, "clock", fake)
    return fake


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


def test_stale_lock_no_longer_blocks_and_is_taken_over(lock_file: Path, clock: FakeClock):
    acquire_maintenance_lock("crashed", lock_file, ttl_seconds=60)
    clock.now += 59.9
    assert is_maintenance_locked(lock_file), "not stale before its expiry"
    clock.now += 0.1
    assert not is_maintenance_locked(lock_file)
    assert_not_locked("checkpoint_backup", lock_file)
    info = acquire_maintenance_lock("new", lock_file, ttl_seconds=60)
    assert info.holder == "new" and read_lock(lock_file).holder == "new"
    assert (info.since, info.expires_at) == (clock.now, clock.now + 60)


def test_reacquire_by_the_holder_extends_the_lease_and_keeps_since(lock_file: Path, clock: FakeClock):
    first = acquire_maintenance_lock("dr:run", lock_file, ttl_seconds=60)
    clock.now += 30
    again = acquire_maintenance_lock("dr:run", lock_file, ttl_seconds=60)
    assert again.since == first.since and again.expires_at == clock.now + 60


def test_concurrent_takeover_of_a_stale_lock_has_one_winner(lock_file: Path, clock: FakeClock):
    acquire_maintenance_lock("crashed", lock_file, ttl_seconds=1)
    clock.now += 2
    start = threading.Barrier(8)
    won: list[str] = []
    refused: list[str] = []

    def contend(name: str) -> None:
        start.wait(5)
        try:
            acquire_maintenance_lock(name, lock_file)
            won.append(name)
        except MaintenanceLocked:
            refused.append(name)

    threads = [threading.Thread(target=contend, args=(f"dr:{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(won) == 1 and len(refused) == 7, (won, refused)
    assert read_lock(lock_file).holder == won[0]


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
