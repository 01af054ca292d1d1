"""Every landing entry is accounted for (issue 12, defect 6): a symlink (to a file outside the zone or inside it)
or a folder is rejected with a reason and moved to the quarantine as it is; a link's target is never touched."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.ops.validation.helpers import land, task_text


def _by_name(results) -> dict:
    return {r.name: r for r in results}


def test_symlinks_and_folders_are_rejected_and_moved_never_followed(val_env, split_digits, tmp_path, capsys):
    from include.ops.validation.cli import main

    settings = val_env
    outside = tmp_path / "elsewhere" / "secret.csv"
    outside.parent.mkdir()
    outside.write_text(task_text(split_digits, 1))
    before = outside.read_bytes()
    inside = land(settings, "task_0.csv", task_text(split_digits, 0))
    (settings.landing_dir / "task_1.csv").symlink_to(outside)  # points outside the zone
    (settings.landing_dir / "task_2.csv").symlink_to("task_0.csv")  # points inside it (relative)
    (settings.landing_dir / "task_3.csv").mkdir()

    assert main(["validate", "--json"]) == 1
    results = {r["name"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert sorted(results) == ["task_0.csv", "task_1.csv", "task_2.csv", "task_3.csv"], "every entry listed"
    assert results["task_0.csv"]["status"] == "validated"
    for name, target in (("task_1.csv", str(outside)), ("task_2.csv", "task_0.csv")):
        r = results[name]
        assert r["status"] == "rejected" and r["failed_checks"] == ["precheck.file_type"], r
        assert "symbolic link" in r["reason"] and target in r["reason"]
        moved = Path(r["path"])
        assert moved.is_relative_to(settings.quarantine_dir) and moved.is_symlink()
        assert os.readlink(moved) == target, "the link itself was moved, not a copy of its target"
        assert not (settings.landing_dir / name).is_symlink() and not (settings.landing_dir / name).exists()
        report = json.loads(Path(r["report_path"]).read_text())
        assert report["check"] == "precheck.file_type" and report["result"]["success"] is False
    assert outside.read_bytes() == before, "the outside target is untouched"
    assert inside.read_bytes() == task_text(split_digits, 0).encode(), "the inside target is untouched"
    folder = results["task_3.csv"]
    assert folder["status"] == "rejected" and "is a folder" in folder["reason"]
    assert Path(folder["path"]).is_dir() and not (settings.landing_dir / "task_3.csv").exists()
    index = json.loads((settings.quarantine_dir / "index.json").read_text())
    assert sorted(e["original_name"] for e in index["entries"]) == ["task_1.csv", "task_2.csv", "task_3.csv"]
    assert {e["check"] for e in index["entries"]} == {"precheck.file_type"}
    alert = json.loads((settings.log_dir / "data_validation.log").read_text().splitlines()[-1])
    assert alert["level"] == "ERROR" and alert["failed_checks"] == ["precheck.file_type"]
    # nothing left behind: the next run sees the validated file only
    assert main(["validate", "--json"]) == 0
    assert [json.loads(line)["status"] for line in capsys.readouterr().out.splitlines()] == ["skipped"]


def test_the_dag_path_lists_and_rejects_a_symlink(val_env, split_digits, tmp_path):
    """scan_landing -> validate_batch (the DAG's two tasks) give the same verdict as the CLI."""
    from include.ops.validation.landing import LandedFile
    from include.ops.validation.zone import scan_landing, validate_batch

    target = tmp_path / "task_0.csv"
    target.write_text(task_text(split_digits, 0))
    (val_env.landing_dir / "task_0.csv").symlink_to(target)
    todo, skipped = scan_landing()
    assert skipped == [] and [(i.name, i.kind) for i in todo] == [("task_0.csv", "symlink")]
    item = LandedFile.from_dict(json.loads(json.dumps(todo[0].to_dict())))  # through XCom
    result = validate_batch(item)
    assert result.status == "rejected" and result.failed_checks == ["precheck.file_type"]
    assert target.read_text() == task_text(split_digits, 0)
    assert not (val_env.validated_dir / "task_0.csv").exists()


def test_a_file_swapped_for_a_link_after_listing_is_rejected(val_env, split_digits, tmp_path):
    """A regular file listed, then replaced by a symlink before its mapped task runs, is not followed."""
    from include.ops.validation.zone import scan_landing, validate_batch

    path = land(val_env, "task_0.csv", task_text(split_digits, 0))
    todo, _ = scan_landing()
    assert todo[0].kind == "file"
    target = tmp_path / "other.csv"
    target.write_text(task_text(split_digits, 0))
    path.unlink()
    path.symlink_to(target)
    result = validate_batch(todo[0])
    assert result.status == "rejected" and result.failed_checks == ["precheck.file_type"]
    assert Path(result.path).is_symlink() and target.exists()
