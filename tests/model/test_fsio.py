"""The file primitives every writer of the project goes through: atomic writes, checksums, locks."""

from __future__ import annotations

import hashlib
import stat
import threading
from pathlib import Path

import pytest

from model.fsio import (
    CHUNK,
    LockTimeout,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    atomic_writer,
    file_lock,
    sha256_file,
)


def test_replaces_whole_file_with_mode_and_creates_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "file.txt"
    atomic_write_text(target, "first\n", mode=0o600)
    assert target.read_text() == "first\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"], "no temp file left behind"


def test_failure_mid_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "live.json"
    target.write_bytes(b"old bytes")
    with pytest.raises(RuntimeError, match="boom"), atomic_writer(target) as f:
        f.write(b"half of the new ")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old bytes"
    assert [p.name for p in tmp_path.iterdir()] == ["live.json"]


def test_atomic_write_json_is_sorted_indented_and_newline_terminated(tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.json"
    atomic_write_json(target, {"b": 1, "a": tmp_path})
    assert target.read_text() == f'{{\n  "a": "{tmp_path}",\n  "b": 1\n}}\n'


def test_sha256_file_matches_hashlib_for_empty_small_and_multi_chunk_files(tmp_path: Path) -> None:
    for name, data in {"empty": b"", "small": b"abc", "big": b"x" * (CHUNK * 2 + 7)}.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert sha256_file(path) == hashlib.sha256(data).hexdigest(), name


def test_file_lock_excludes_a_second_holder_until_released(tmp_path: Path) -> None:
    lock_path = tmp_path / "sub" / "store.lock"
    with file_lock(lock_path), pytest.raises(LockTimeout), file_lock(lock_path, timeout=0):
        pass
    with file_lock(lock_path, timeout=0):
        pass


def test_file_lock_blocks_a_waiting_thread_until_the_holder_leaves(tmp_path: Path) -> None:
    lock_path = tmp_path / "store.lock"
    waiting, acquired = threading.Event(), threading.Event()

    def contender() -> None:
        waiting.set()
        with file_lock(lock_path):
            acquired.set()

    with file_lock(lock_path):
        thread = threading.Thread(target=contender)
        thread.start()
        assert waiting.wait(5)
        assert not acquired.is_set(), "the lock let a second holder in"
    thread.join(5)
    assert acquired.is_set()
