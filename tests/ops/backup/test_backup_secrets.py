"""A backup holds only allowlisted configuration values, in 0700 folders and 0600 files; a restore puts the
recorded modes back on the live files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.ops.backup.backup_support import SECRET_VALUES

# each slipped through the old name denylist (PASS is not PASSWORD, CREDS not CREDENTIAL, a URL under a
# plain name); the webhook token sits in the URL path
LEAKED_BEFORE = {
    "CT_SMTP_PASS": "smtp-pass-8d41aa",
    "S3_CREDS": "s3-creds-0be7f2",
    "CT_DB_PASS": "db-pass-61c9e4",
    "CT_ALERT_URL": "https://hooks.example.com/services/T0AAA/B0BBB/webhook-token-9f3e27",
}
FILE_ONLY = {
    "SMTP_PASS": "file-smtp-pass-44d0",
    "ALERT_HOOK": "https://hooks.slack.com/services/T1/B1/file-hook-5ac1",
}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_backup_holds_no_secret_byte_and_is_private(state, monkeypatch: pytest.MonkeyPatch):
    from include.ops.backup import create_backup
    from include.ops.backup.layout import read_manifest

    for name, value in LEAKED_BEFORE.items():
        monkeypatch.setenv(name, value)
    env_file = Path(os.environ["CT_ENV_FILE"])
    extra = "".join(f"{k}={v}\n" for k, v in FILE_ONLY.items())
    env_file.write_text(env_file.read_text() + extra + "CT_MLFLOW_EXPERIMENT=continual-tiny-transformer\n")

    result = create_backup(settings=state)
    root = Path(result.path)

    secrets = [*LEAKED_BEFORE.values(), *FILE_ONLY.values(), *SECRET_VALUES]
    for path in root.rglob("*"):  # every byte of every file, hidden ones and the manifest included
        if path.is_file():
            data = path.read_bytes()
            for secret in secrets:
                token = secret.rsplit("/", 1)[-1]
                assert token.encode() not in data, f"{token} leaked into {path.relative_to(root)}"
    manifest = read_manifest(root)
    names = set(manifest.config["left_out"])
    assert {*LEAKED_BEFORE, *FILE_ONLY, "DB_PASSWORD", "LOG_LEVEL"} <= names  # named, never valued
    captured = json.loads((root / "config" / "config.json").read_text())
    assert captured["env_file"]["values"] == {"CT_MLFLOW_EXPERIMENT": "continual-tiny-transformer"}

    # folders 0700, files 0600, the backup root itself included
    assert _mode(root) == 0o700
    for path in root.rglob("*"):
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), path.relative_to(root)


def test_restore_applies_the_modes_recorded_at_backup_time(state):
    from include.ops.backup import create_backup, restore_backup
    from include.ops.backup.layout import read_manifest
    from include.ops.backup.mlflow_store import SQLITE_DUMP

    ckpts = sorted(state.checkpoint_dir.glob("*.pt"))
    wanted = {ckpts[0]: 0o640, ckpts[1]: 0o604, state.state_dir / "learner_state.json": 0o600}
    for path, mode in wanted.items():
        os.chmod(path, mode)
    db = state.var_dir / "mlflow" / "mlflow.db"
    os.chmod(db, 0o640)
    result = create_backup(settings=state)
    manifest = read_manifest(Path(result.path))
    recorded = {e.path: e.mode for e in manifest.files}
    assert recorded[f"state/checkpoints/{ckpts[0].name}"] == 0o640
    assert recorded[f"state/checkpoints/{ckpts[1].name}"] == 0o604
    assert recorded["state/learner_state.json"] == 0o600
    assert recorded[SQLITE_DUMP] == 0o640

    for path in wanted:  # disaster: modes changed, a checkpoint lost
        os.chmod(path, 0o666)  # noqa: S103 (what the restore must undo)
    ckpts[0].unlink()
    os.chmod(db, 0o666)  # noqa: S103

    restore_backup(result.backup_id, settings=state)
    for path, mode in wanted.items():
        assert _mode(path) == mode, path.name
    assert _mode(ckpts[2]) == recorded[f"state/checkpoints/{ckpts[2].name}"]
    assert _mode(db) == 0o640


def test_manifest_modes_round_trip_and_old_manifests_still_read():
    from include.ops.backup.layout import FileEntry, IncompleteBackup, Manifest

    sha = "0" * 64
    manifest = Manifest(
        "20261201T000000Z",
        "2026-12-01T00:00:00+00:00",
        "",
        [FileEntry("state/a.pt", 1, sha, 0o640), FileEntry("config/config.json", 1, sha)],
    )
    raw = manifest.to_json()
    again = Manifest.from_json(raw, "test")
    assert [e.mode for e in again.files] == [0o640, None]
    assert json.loads(raw)["files"][1] == {"path": "config/config.json", "size": 1, "sha256": sha}
    data = json.loads(raw)
    data["files"][0]["mode"] = 0o77777
    data.pop("checksum")
    bad = Manifest(**{**data, "files": [FileEntry(**f) for f in data["files"]]}).to_json()
    with pytest.raises(IncompleteBackup, match="bad file entry"):
        Manifest.from_json(bad, "test")
