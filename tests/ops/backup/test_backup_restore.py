"""Local backup -> verify -> restore on a real learned state and MLflow store: integrity, identity, refusal."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.ops.backup.backup_support import SECRET_VALUES, backup_bytes, tree_digest


def _predictions(checkpoint: Path, data_manifest: Path):
    import torch

    from model.data import load_manifest, load_task_csv
    from model.inference import load_model, predict_proba

    model, _, _ = load_model(checkpoint)
    xs = [load_task_csv(data_manifest.parent / t.file).x_test for t in load_manifest(data_manifest).tasks]
    return predict_proba(model, torch.cat(xs))


MLFLOW_SECRET = b"gateway-api-key-5e3b9d"


def cli_main(argv: list[str]) -> int:
    """``python -m include.ops.backup.cli`` in-process, leaving the log levels it sets as they were."""
    import logging

    from include.ops.backup.cli import main

    logger = logging.getLogger("include.ops")
    level = logger.level
    try:
        return main(argv)
    finally:
        logger.setLevel(level)


def _store_mlflow_secret(db: Path) -> None:
    """A gateway secret as MLflow keeps it in its own store (encrypted value + wrapped key)."""
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO secrets (secret_id, secret_name, encrypted_value, wrapped_dek, kek_version, masked_value, "
            "created_at, last_updated_at) VALUES ('s1', 'openai', ?, ?, 1, 'sk-...9d', 0, 0)",
            (MLFLOW_SECRET, b"wrapped-dek"),
        )


def test_backup_holds_everything_checksummed_and_no_secret(state):
    from include.ops.backup import create_backup, verify_backup
    from include.ops.backup.layout import read_manifest

    result = create_backup(settings=state)
    root = Path(result.path)
    manifest = read_manifest(root)
    paths = {e.path for e in manifest.files}
    checkpoints = sorted(p.name for p in state.checkpoint_dir.glob("*.pt"))
    assert len(checkpoints) == 3
    for name in checkpoints:
        assert f"state/checkpoints/{name}" in paths and f"state/checkpoints/{name}.sha256" in paths
    assert {
        "state/learner_state.json",
        "mlflow/mlflow.db",
        "config/config.json",
        "data/manifest.json",
    } <= paths
    assert any(p.startswith("mlflow/artifacts/") for p in paths)
    for entry in manifest.files:  # the manifest's sizes and hashes describe the bytes on disk
        data = (root / entry.path).read_bytes()
        assert len(data) == entry.size
    assert verify_backup(result.backup_id, settings=state).ok

    # what a restore needs to know was recorded
    assert manifest.mlflow["aliases"]["champion"]["version"] == "2"
    assert manifest.mlflow["aliases"]["challenger"]["version"] == "3"
    assert len(manifest.mlflow["run_ids"]) == 3 and manifest.mlflow["checkpoints_without_run"] == []
    assert manifest.evaluation["checkpoint"] == f"state/checkpoints/{checkpoints[1]}"
    assert set(manifest.evaluation["accuracies"]) == {f"task_{i}" for i in range(5)}
    roles = {Path(r["path"]).name: r["roles"] for r in manifest.references["checkpoints"]}
    assert roles == {checkpoints[1]: ["champion"], checkpoints[2]: ["challenger", "latest"]}
    assert manifest.packages["mlflow"] and manifest.code_version["project_version"]
    assert "DB_PASSWORD" in manifest.config["left_out"]
    assert "CT_SERVING_API_TOKEN" in manifest.config["left_out"]

    # the SQLite copy is a consistent, readable database
    with sqlite3.connect(root / "mlflow" / "mlflow.db") as conn:
        assert conn.execute("SELECT count(*) FROM model_versions").fetchone()[0] == 3

    # no secret value anywhere in the backup, nor in the manifest
    for path in [*root.rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            for secret in SECRET_VALUES:
                assert secret.encode() not in data, f"secret leaked into {path}"


def test_flipped_byte_refuses_restore_names_file_and_leaves_live_untouched(state):
    from include.ops.backup import BackupIntegrityError, create_backup, restore_backup, verify_backup
    from include.ops.lock import is_maintenance_locked

    result = create_backup(settings=state)
    victim = sorted((Path(result.path) / "state" / "checkpoints").glob("*.pt"))[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    state_before = tree_digest(state.state_dir)
    db_before = tree_digest(state.var_dir / "mlflow")

    with pytest.raises(BackupIntegrityError, match=victim.name):
        verify_backup(result.backup_id, settings=state)
    with pytest.raises(BackupIntegrityError, match=f"state/checkpoints/{victim.name}.*sha256"):
        restore_backup(result.backup_id, settings=state)
    assert tree_digest(state.state_dir) == state_before
    assert tree_digest(state.var_dir / "mlflow") == db_before
    assert not is_maintenance_locked(state.lock_file)
    assert not list(state.var_dir.glob(".*restore*")), "staging folders must be cleaned up"


def test_restore_gives_byte_identical_checkpoints_and_identical_predictions(state):
    from include.ops.backup import create_backup, restore_backup, validate_restore
    from include.ops.backup.mlflow_store import aliases_from_sqlite
    from include.ops.lock import is_maintenance_locked

    champion = sorted(state.checkpoint_dir.glob("*.pt"))[1]
    data_manifest = state.data_dir / "manifest.json"
    before = _predictions(champion, data_manifest)
    db = state.var_dir / "mlflow" / "mlflow.db"
    _store_mlflow_secret(db)
    result = create_backup(settings=state)
    backed_up = tree_digest(state.state_dir)
    aliases_before = aliases_from_sqlite(db, state.registered_model)
    dump = Path(result.path) / "mlflow" / "mlflow.db"
    assert MLFLOW_SECRET not in dump.read_bytes(), "MLflow-held secrets must be scrubbed from the backup"
    with sqlite3.connect(dump) as conn:
        assert conn.execute("SELECT count(*) FROM secrets").fetchone()[0] == 0

    # disaster: a checkpoint lost, another corrupted, the registry changed, the learner state garbled
    sorted(state.checkpoint_dir.glob("*.pt"))[0].unlink()
    champion.write_bytes(b"garbage")
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM registered_model_aliases")
    (state.state_dir / "learner_state.json").write_text("{}")
    (state.var_dir / "mlflow" / "artifacts").rename(state.var_dir / "mlflow" / "artifacts-lost")

    dry = restore_backup(result.backup_id, settings=state, dry_run=True)
    lost = sorted(p.name for p in Path(result.path, "state", "checkpoints").glob("*.pt"))[0]
    assert dry.changes["state"]["added"] == [f"checkpoints/{lost}"]
    assert (state.state_dir / "learner_state.json").read_text() == "{}", "dry run must not touch live state"

    restored = restore_backup("latest", settings=state)
    assert restored.backup_id == result.backup_id
    after = tree_digest(state.state_dir)
    assert ".restored_from.json" in after
    assert backup_bytes(after) == backup_bytes(backed_up)
    assert aliases_from_sqlite(db, state.registered_model) == aliases_before
    assert Path(restored.previous["state_dir"]).is_dir(), "the replaced live state is kept for rollback"
    assert (state.var_dir / "mlflow" / "artifacts").is_dir()
    assert not is_maintenance_locked(state.lock_file)
    import torch

    assert torch.equal(_predictions(champion, data_manifest), before)

    report = validate_restore(settings=state)
    assert report.ok and report.backup_id == result.backup_id
    assert report.measured == report.recorded and len(report.measured) == 5
    assert report.health["status"] == "healthy"

    with sqlite3.connect(db) as conn:  # the live store's secret survived the restore
        assert conn.execute("SELECT encrypted_value FROM secrets").fetchone()[0] == MLFLOW_SECRET

    # the env file: non-secrets restored, the live secret kept
    env_text = Path(restored.config["env_file"]).read_text()
    assert f"DB_PASSWORD={SECRET_VALUES[1]}" in env_text
    assert restored.config["missing_secrets"] == []


def test_backup_without_manifest_is_ignored_and_named_when_latest_skips_it(state, capsys):
    from include.ops.backup import (
        IncompleteBackup,
        create_backup,
        latest_complete_backup,
        list_backups,
        restore_backup,
    )
    from include.ops.backup.cleanup import cleanup_backups

    first = create_backup(settings=state)
    second = create_backup(settings=state)
    (Path(second.path) / "manifest.json").unlink()
    assert latest_complete_backup(state).backup_id == first.backup_id
    infos = {i.backup_id: i for i in list_backups(state)}
    assert not infos[second.backup_id].complete and "incomplete" in infos[second.backup_id].problem
    with pytest.raises(IncompleteBackup, match=second.backup_id):
        restore_backup(second.backup_id, settings=state, dry_run=True)
    dry = restore_backup("latest", settings=state, dry_run=True)
    assert dry.backup_id == first.backup_id
    # the incomplete newer backup is named, with why, in the result and in the CLI's output
    assert [s["backup_id"] for s in dry.skipped] == [second.backup_id]
    assert "no manifest.json" in dry.skipped[0]["reason"]
    capsys.readouterr()
    assert cli_main(["restore", "--dry-run", "--backup-id", "latest"]) == 0
    out = capsys.readouterr().out
    assert f"would restore backup {first.backup_id}" in out
    assert f"WARNING skipped newer backup {second.backup_id}" in out and "incomplete" in out
    assert cli_main(["verify"]) == 0
    assert f"skipped newer backup {second.backup_id}" in capsys.readouterr().out
    report = cleanup_backups(daily=0, weekly=0, monthly=0, settings=state)
    assert report.kept[first.backup_id] == ["latest complete"]
    assert "in progress" in report.kept[second.backup_id][0], "a fresh incomplete backup may be running"
    assert Path(second.path).is_dir() and Path(first.path).is_dir()
    report = cleanup_backups(daily=0, weekly=0, monthly=0, settings=state, incomplete_grace_hours=0)
    assert report.removed == [second.backup_id] and not Path(second.path).exists()


def test_backup_refused_while_recovery_holds_the_lock(state):
    from include.ops.backup import create_backup
    from include.ops.lock import MaintenanceLocked, maintenance_lock

    with maintenance_lock("disaster_recovery:test", state.lock_file), pytest.raises(MaintenanceLocked):
        create_backup(settings=state)
    assert not state.backup_dir.exists() or not any(state.backup_dir.iterdir())


def test_restore_refused_while_someone_else_holds_the_lock(state):
    from include.ops.backup import create_backup, restore_backup
    from include.ops.lock import MaintenanceLocked, maintenance_lock

    result = create_backup(settings=state)
    before = tree_digest(state.state_dir)
    with maintenance_lock("disaster_recovery:other-run", state.lock_file), pytest.raises(MaintenanceLocked):
        restore_backup(result.backup_id, settings=state)
    assert tree_digest(state.state_dir) == before


def test_checkpoint_cleanup_keeps_aliased_and_backed_up_references(state):
    from include.ops.backup import cleanup_checkpoints, create_backup

    names = sorted(p.name for p in state.checkpoint_dir.glob("*.pt"))
    # a fourth, unaliased, unreferenced old checkpoint: the only one cleanup may remove with keep=1
    extra = state.checkpoint_dir / "task_000_old.pt"
    shutil.copy(state.checkpoint_dir / names[0], extra)
    shutil.copy(state.checkpoint_dir / f"{names[0]}.sha256", state.checkpoint_dir / "task_000_old.pt.sha256")
    (state.checkpoint_dir / "task_000_old.pt.sha256").write_text("0" * 64 + "  task_000_old.pt\n")

    dry = cleanup_checkpoints(keep=1, settings=state, dry_run=True)
    assert sorted(dry.removed) == sorted([names[0], "task_000_old.pt"])
    assert extra.exists()
    assert any("champion" in r for r in dry.kept[names[1]])
    assert any("challenger" in r for r in dry.kept[names[2]])

    create_backup(settings=state)  # references champion (names[1]) and challenger/latest (names[2])
    # the aliases are gone: from now on only the latest backup's references protect those checkpoints
    with sqlite3.connect(state.var_dir / "mlflow" / "mlflow.db") as conn:
        conn.execute("DELETE FROM registered_model_aliases")
    report = cleanup_checkpoints(keep=1, settings=state)
    assert sorted(report.removed) == sorted([names[0], "task_000_old.pt"])
    assert not extra.exists() and not (state.checkpoint_dir / "task_000_old.pt.sha256").exists()
    assert (state.checkpoint_dir / names[1]).exists() and (state.checkpoint_dir / names[2]).exists()
    assert any("latest complete backup" in r for r in report.kept[names[1]])


def test_manifest_lists_source_run_ids(state):
    from include.ops.backup import create_backup, load_manifest

    result = create_backup(settings=state)
    manifest = load_manifest(result.backup_id, state)
    with sqlite3.connect(state.var_dir / "mlflow" / "mlflow.db") as conn:
        run_ids = {r[0] for r in conn.execute("SELECT run_uuid FROM runs")}
    assert set(manifest.mlflow["run_ids"]) == run_ids
    shas = {e.sha256 for e in manifest.files if e.path.endswith(".pt")}
    assert set(manifest.mlflow["checkpoint_runs"]) == shas
    assert json.loads((Path(result.path) / "config" / "config.json").read_text())["settings"]["state_dir"]
