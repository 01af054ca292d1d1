"""data_validation end to end with dag.test(): a good and a bad file land; one Asset event, one quarantine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.dag_helpers import asset_events, load_dag, state_name, task_states
from tests.ops.validation.helpers import land, store_snapshot, task_text


@pytest.mark.integration
def test_good_file_emits_event_bad_file_is_quarantined(val_env, airflow_db, split_digits):
    from model.fsio import sha256_file

    settings = val_env
    good = land(settings, "task_0.csv", task_text(split_digits, 0))
    bad_text = task_text(split_digits, 1).replace("\n", "\n0,oops\n", 1)  # row 2 has 2 fields: garbled
    bad = land(settings, "task_1.csv", bad_text)
    good_sha, bad_sha = sha256_file(good), sha256_file(bad)

    dagrun = load_dag("data_validation").test()  # build_data_docs null: env CT_GX_DATA_DOCS=0 from val_env

    assert state_name(dagrun.state) == "failed"  # the bad file's mapped task fails the run
    states = task_states(dagrun)
    assert states["find_new_batches"] == ["success"]
    assert sorted(states["validate"]) == ["failed", "success"]

    events = asset_events("validated_task_batch", dagrun.run_id)
    assert len(events) == 1
    extra = events[0]
    assert set(extra) == {"task_id", "path", "checksum", "rows", "summary"}
    assert extra["task_id"] == "task_0" and extra["checksum"] == good_sha and extra["rows"] == 360
    assert Path(extra["path"]) == settings.validated_dir / "task_0.csv"
    assert sha256_file(Path(extra["path"])) == good_sha
    assert extra["summary"]["class_counts"] == {"0": 178, "1": 182}
    assert extra["summary"]["leaked_rows"] == 0

    index = json.loads((settings.validated_dir / "index.json").read_text())
    assert list(index["files"]) == ["task_0.csv"]
    stored = json.loads((settings.validated_dir / "manifest.json").read_text())
    assert [t["task_id"] for t in stored["tasks"]] == ["task_0"], "validated entries only: task_1 is pending"

    assert not bad.exists()
    folders = [p for p in settings.quarantine_dir.iterdir() if p.is_dir()]
    assert len(folders) == 1
    assert sha256_file(folders[0] / "task_1.csv") == bad_sha
    report = json.loads((folders[0] / "report.json").read_text())
    assert report["check"] == "precheck.csv_structure" and "line 2 has 2 fields" in report["reason"]

    # a second run finds nothing new: no event, nothing validated or trained twice
    before = store_snapshot(settings.validated_dir)
    again = load_dag("data_validation").test()
    assert state_name(again.state) == "success"
    assert asset_events("validated_task_batch", again.run_id) == []
    assert store_snapshot(settings.validated_dir) == before
