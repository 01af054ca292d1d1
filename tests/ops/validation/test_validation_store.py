"""Passing batches: the real Split-Digits tasks pass, land in the validated store with an index, are never
validated twice, cannot be silently replaced, and a leak against a concurrently validated task is caught."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.ops.validation.helpers import land, store_snapshot, task_text


def test_real_tasks_pass_and_are_stored_once(val_env, split_digits):
    from include.ops.validation.landing import land_task_stream
    from include.ops.validation.zone import validate_landing_zone
    from model.fsio import sha256_file

    settings = val_env
    landed = land_task_stream(split_digits, settings.landing_dir)
    assert [p.name for p in landed] == [f"task_{k}.csv" for k in range(5)]
    assert land_task_stream(split_digits, settings.landing_dir) == landed  # idempotent

    results = validate_landing_zone()
    assert [(r.name, r.status) for r in results] == [(f"task_{k}.csv", "validated") for k in range(5)], [
        r.reason for r in results
    ]
    index = json.loads((settings.validated_dir / "index.json").read_text())
    for k, result in enumerate(results):
        stored = settings.validated_dir / f"task_{k}.csv"
        assert stored.read_bytes() == landed[k].read_bytes()
        assert stat.S_IMODE(stored.stat().st_mode) == 0o644, "readable by the services that train and serve"
        assert index["files"][stored.name]["sha256"] == sha256_file(stored) == result.checksum
        extra = result.asset_extra()
        assert extra["task_id"] == f"task_{k}" and extra["path"] == str(stored)
        assert extra["rows"] == sum(extra["summary"]["class_counts"].values())
        assert extra["summary"]["task_index"] == k and extra["summary"]["expectations_evaluated"] >= 200
        assert json.loads(Path(extra["summary"]["report"]).read_text())["status"] == "validated"
        assert result.data_docs is None  # data docs off here; built in the concurrency test
        assert json.dumps(extra)  # JSON-serialisable event extra
    assert (settings.validated_dir / "manifest.json").read_bytes() == split_digits.read_bytes()
    assert landed[0].exists(), "a passing file stays in the landing zone"

    before = store_snapshot(settings.validated_dir)
    again = validate_landing_zone()
    assert [r.status for r in again] == ["skipped"] * 5
    assert all("already validated" in r.reason for r in again)
    assert store_snapshot(settings.validated_dir) == before

    # same name, new bytes: a validated batch is immutable
    changed = task_text(split_digits, 0).replace("\n", "\n", 1)[:-1]  # drop the final newline
    path = land(settings, "task_0.csv", changed)
    from include.ops.validation.pipeline import validate_landed_file

    result = validate_landed_file(path, manifest_path=settings.landing_dir / "manifest.json")
    assert result.status == "rejected" and result.failed_checks == ["precheck.conflicts_with_validated"]
    assert store_snapshot(settings.validated_dir) == before


def test_leak_against_a_task_validated_concurrently_is_caught_at_commit(val_env, split_digits, monkeypatch):
    """task_1 leaks task_0's test rows; task_0 is published while task_1's suite runs (after its GX leakage
    check saw an empty store). The commit-time re-check under the store lock rejects task_1."""
    from include.ops.validation import gx_suite
    from include.ops.validation.pipeline import validate_landed_file

    settings = val_env
    manifest = settings.landing_dir / "manifest.json"
    lines0 = task_text(split_digits, 0).splitlines()
    stolen = [
        ",".join([*line.split(",")[:64], "2", "train"]) for line in lines0[1:] if line.endswith("test")
    ][:2]
    leaky = land(settings, "task_1.csv", task_text(split_digits, 1) + "\n".join(stolen) + "\n")
    first = land(settings, "task_0.csv", task_text(split_digits, 0))

    real_run_suite = gx_suite.run_suite

    def run_suite_then_other_run_commits(frame, **kwargs):
        outcome = real_run_suite(frame, **kwargs)
        if kwargs["file_name"] == "task_1.csv":
            assert outcome.success  # nothing in the store yet: GX saw no leak
            assert validate_landed_file(first, manifest_path=manifest).status == "validated"
        return outcome

    monkeypatch.setattr(gx_suite, "run_suite", run_suite_then_other_run_commits)
    result = validate_landed_file(leaky, manifest_path=manifest)

    assert result.status == "rejected" and result.stage == "publish"
    assert result.failed_checks == ["expect_table_train_rows_to_be_disjoint_from_test_rows"]
    report = json.loads(Path(result.report_path).read_text())
    assert report["result"]["results"][0]["result"]["details"]["by_reference"] == {"task_0.csv": 2}
    assert sorted(json.loads((settings.validated_dir / "index.json").read_text())["files"]) == ["task_0.csv"]


def test_landing_manifest_may_not_change_validated_tasks(tmp_path, split_digits):
    from include.ops.validation.prechecks import PrecheckFailure
    from include.ops.validation.store import check_manifest_compatible

    store = tmp_path / "validated"
    store.mkdir()
    (store / "manifest.json").write_bytes(split_digits.read_bytes())
    (store / "index.json").write_text(json.dumps({"version": 1, "files": {"task_0.csv": {"sha256": "x"}}}))
    manifest = json.loads(split_digits.read_text())

    grown = tmp_path / "grown.json"
    manifest["tasks"][4]["classes"] = [8, 9]  # unchanged
    grown.write_text(json.dumps(manifest))
    check_manifest_compatible(store, grown)  # tasks not yet validated may change; held ones are equal

    changed = tmp_path / "changed.json"
    manifest["tasks"][0]["classes"], manifest["tasks"][4]["classes"] = [0, 9], [8, 1]
    changed.write_text(json.dumps(manifest))
    with pytest.raises(PrecheckFailure, match="changes validated task 'task_0'"):
        check_manifest_compatible(store, changed)
