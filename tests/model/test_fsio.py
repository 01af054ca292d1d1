"""The one atomic-write helper every writer of the project goes through."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from model.fsio import atomic_write_bytes, atomic_write_text, atomic_writer


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
