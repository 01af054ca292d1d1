"""The alias history: append-only registry tags + local mirror, written by the gate and the rollback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.ops.alias_history_support import gate as _gate
from tests.ops.alias_history_support import registry as _registry


def test_every_gate_move_is_one_sequenced_entry_in_the_registry_and_the_mirror(ct_env: Path):
    from include.ops import alias_history
    from include.ops.champion_record import read_champion_record

    settings, mlc, results = _registry(ct_env)
    _gate(settings, results[0])
    _gate(settings, results[1])
    _gate(settings, results[2], acc=0.1)  # fails: challenger
    _gate(settings, results[1])  # a re-gate of the champion (a retry) is no move
    history = alias_history.read_history(settings)
    assert [(e.seq, e.alias, e.from_version, e.to_version, e.kind) for e in history] == [
        (1, "champion", None, "1", "promotion"),
        (2, "champion", "1", "2", "promotion"),
        (3, "challenger", None, "3", "challenger"),
    ]
    assert "gate failed" in history[2].reason and history[1].metrics["mean_retention"] == 0.9
    tags = mlc.get_registered_model(settings.registered_model).tags
    assert sorted(k for k in tags if k.startswith("ct.alias_history.")) == [
        "ct.alias_history.000001", "ct.alias_history.000002", "ct.alias_history.000003"
    ]  # fmt: skip
    assert alias_history.read_mirror(settings) == history
    record = read_champion_record(settings)  # the champion record is the history's head
    assert (record.version, record.history_seq) == ("2", 2)


def test_a_retry_after_the_alias_moved_but_before_its_entry_records_the_move(ct_env: Path):
    """A gate that died between moving the alias and appending its entry: the retry finds the alias already on
    the version and writes the missing entry (from the version the history last gave it), once."""
    from include.ops import alias_history
    from include.ops.champion_record import read_champion_record

    settings, mlc, results = _registry(ct_env)
    _gate(settings, results[0])
    mlc.set_registered_model_alias(settings.registered_model, "champion", "2")  # the move; then the crash
    _gate(settings, results[1])  # the retry
    _gate(settings, results[1])  # and a second retry adds nothing
    history = alias_history.read_history(settings)
    assert [(e.alias, e.from_version, e.to_version, e.kind) for e in history] == [
        ("champion", None, "1", "promotion"),
        ("champion", "1", "2", "promotion"),
    ]
    record = read_champion_record(settings)
    assert (record.version, record.history_seq) == ("2", 2)


def test_an_append_never_rewrites_an_entry_and_every_value_fits_the_tag_column(ct_env: Path):
    from include.ops import alias_history

    settings, mlc, _ = _registry(ct_env, n=1)
    first = alias_history.append_move(settings, "champion", None, "1", "promotion", "first")
    before = mlc.get_registered_model(settings.registered_model).tags[alias_history.tag_key(1)]
    big = alias_history.append_move(
        settings, "champion", "1", "1", "approval", "x" * 20000, metrics={f"m{i}": i for i in range(900)}
    )
    tags = mlc.get_registered_model(settings.registered_model).tags
    assert tags[alias_history.tag_key(1)] == before and first.seq == 1 and big.seq == 2
    assert len(tags[alias_history.tag_key(2)]) <= alias_history.MAX_TAG_VALUE
    assert json.loads(tags[alias_history.tag_key(2)])["reason"].endswith("...")
    mlc.set_registered_model_tag(settings.registered_model, alias_history.tag_key(3), "{garbled")
    third = alias_history.append_move(settings, "champion", "1", "1", "approval", "after garbage")
    assert third.seq == 4  # the garbled seq is kept, not overwritten
    assert mlc.get_registered_model(settings.registered_model).tags[alias_history.tag_key(3)] == "{garbled"
    with pytest.raises(ValueError, match="kind"):
        alias_history.append_move(settings, "champion", None, "1", "teleport", "")


def test_rollback_goes_to_the_previous_champion_and_is_recorded(ct_env: Path):
    from include.ops import alias_history, rollback
    from include.ops.champion_record import read_champion_record

    settings, mlc, results = _registry(ct_env)
    for r in results:
        _gate(settings, r)
    done = rollback.rollback(settings, reason="v3 misbehaves", reload=False)
    assert (done.from_version, done.to_version) == ("3", "2")
    assert str(mlc.get_model_version_by_alias(settings.registered_model, "champion").version) == "2"
    last = alias_history.read_history(settings)[-1]
    assert (last.kind, last.from_version, last.to_version, last.seq) == (
        "rollback",
        "3",
        "2",
        done.history_seq,
    )
    assert "v3 misbehaves" in last.reason
    assert read_champion_record(settings).version == "2"
    assert rollback.rollback(settings, reload=False).to_version == "1"  # never back to a rolled-back version
    with pytest.raises(rollback.RollbackRefused, match="no earlier champion"):
        rollback.rollback(settings, reload=False)
    assert rollback.rollback(settings, version=3, reload=False).to_version == "3"  # named: gate passed


def test_rollback_refuses_an_ungated_version_a_bad_checksum_and_unknown_versions(ct_env: Path):
    from include.ops import rollback

    settings, mlc, results = _registry(ct_env)
    _gate(settings, results[0])
    _gate(settings, results[1])
    _gate(settings, results[2], acc=0.1)
    with pytest.raises(rollback.RollbackRefused, match="never passed the gate"):
        rollback.rollback(settings, version=3, reload=False)
    with pytest.raises(rollback.RollbackRefused, match="has no version 9"):
        rollback.rollback(settings, version=9, reload=False)
    with pytest.raises(rollback.RollbackRefused, match="already champion"):
        rollback.rollback(settings, version=2, reload=False)
    Path(results[0]["checkpoint_path"]).write_bytes(b"tampered")
    with pytest.raises(rollback.RollbackRefused, match="sha256"):
        rollback.rollback(settings, reload=False)
    assert str(mlc.get_model_version_by_alias(settings.registered_model, "champion").version) == "2"
    mlc.set_model_version_tag(settings.registered_model, "3", "approval", "approved")
    assert rollback.rollback(settings, version="3", reload=False).to_version == "3"  # approved counts


def test_a_restore_keeps_the_history_and_appends_a_restore_entry(ct_env: Path):
    from include.ops import alias_history
    from include.ops.backup.create import create_backup
    from include.ops.backup.restore import restore_backup

    settings, mlc, results = _registry(ct_env)
    _gate(settings, results[0])
    _gate(settings, results[1])
    backup_id = create_backup(settings=settings).backup_id
    _gate(settings, results[2])  # after the backup: the restore takes champion back to v2
    result = restore_backup(backup_id, settings=settings)  # in this process: pooled connections are dropped
    assert result.mlflow["alias_history"] == 1
    kept = alias_history.read_history(settings)
    assert [(e.seq, e.to_version) for e in kept] == [(1, "1"), (2, "2"), (3, "2")]  # the backup's two, kept
    assert (kept[2].kind, kept[2].from_version) == ("restore", "3")
    assert alias_history.read_mirror(settings)[-1].reason == f"restored backup {backup_id}"


def test_make_rollback_model_refuses_clearly_and_moves_by_version(
    ct_env: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    from include.ops import rollback

    monkeypatch.setenv("CT_APP_URL", "http://127.0.0.1:9")  # no app: the reload reports the poll

    assert rollback.main([]) == 2  # no store: nothing was ever promoted, none created
    assert "nothing was ever promoted" in capsys.readouterr().err
    assert not (ct_env / "mlflow" / "mlflow.db").exists()
    settings, mlc, results = _registry(ct_env, n=2)
    for r in results:
        _gate(settings, r)
    assert rollback.main(["--version", "1", "--reason", "operator"]) == 0
    assert json.loads(capsys.readouterr().out)["to_version"] == "1"
    assert rollback.main(["--version", "1"]) == 2
    assert "already champion" in capsys.readouterr().err
