"""Backup ids, manifest integrity and path safety: nothing outside the backup root is ever named or reached."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from include.ops.backup.layout import (
    FileEntry,
    IncompleteBackup,
    InvalidBackupId,
    Manifest,
    UnsafePathError,
    backup_path,
    copy_hashed,
    resolve_inside,
    safe_relpath,
    validate_backup_id,
)
from model.fsio import sha256_file


@pytest.mark.parametrize("good", ["20261128T214500Z", "20261128T214500Z-3"])
def test_valid_ids(good: str):
    assert validate_backup_id(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "../etc",
        "20261128",
        "20261328T000000Z",
        "20261128T214500Z/..",
        "latest",
        "",
        None,
        "20261128T214500Z-1234",
    ],
)
def test_invalid_ids_are_rejected_with_the_id_named(bad):
    with pytest.raises(InvalidBackupId, match="invalid backup id"):
        validate_backup_id(bad)


@pytest.mark.parametrize(
    "bad",
    ["../x", "/etc/passwd", "state/../../x", "other/file", "state", "state//x", "state/./x", "state\\..\\x"],
)
def test_unsafe_manifest_paths(bad: str):
    with pytest.raises(UnsafePathError):
        safe_relpath(bad)


def test_symlink_escaping_the_root_is_refused(tmp_path: Path):
    root = tmp_path / "backup"
    (root / "state").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, root / "state" / "link")
    with pytest.raises(UnsafePathError, match="outside"):
        resolve_inside(root, "state/link/secret")
    assert resolve_inside(root, "state/ok.pt") == root.resolve() / "state/ok.pt"
    with pytest.raises(InvalidBackupId):
        backup_path(tmp_path, "..")


def _manifest(files: list[FileEntry]) -> Manifest:
    return Manifest(
        backup_id="20261128T214500Z", created_at="2026-11-28T21:45:00+00:00", completed_at="", files=files
    )


def test_manifest_round_trip_and_tamper_detection(tmp_path: Path):
    src = tmp_path / "a.bin"
    src.write_bytes(os.urandom(3 << 20))
    size, digest = copy_hashed(src, tmp_path / "copy" / "a.bin")
    assert digest == sha256_file(src) == sha256_file(tmp_path / "copy" / "a.bin")
    assert size == src.stat().st_size
    manifest = _manifest([FileEntry("state/a.bin", size, digest)])
    raw = manifest.to_json()
    assert Manifest.from_json(raw, "m").files == manifest.files

    data = json.loads(raw)
    data["files"][0]["sha256"] = "0" * 64  # an edit that keeps the JSON valid
    with pytest.raises(IncompleteBackup, match="checksum mismatch"):
        Manifest.from_json(json.dumps(data), "edited manifest")


def test_manifest_with_escaping_path_is_rejected_even_with_a_valid_checksum():
    evil = _manifest([FileEntry("state/../../etc/passwd", 1, "a" * 64)])
    with pytest.raises(UnsafePathError, match="escapes"):
        Manifest.from_json(evil.to_json(), "evil manifest")
