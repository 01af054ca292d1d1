"""The row index: a batch repeating another task's images (any labels) is refused, per stream, crash-safe,
checked again at commit time, and backed up with the store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.ops.validation.helpers import land, store_snapshot


def _publish(validated_dir: Path, src: Path, task_id: str, manifest: Path) -> None:
    """Put ``src`` into the validated store as the real publish does (index.json), without any row index."""
    from include.ops.validation.store import publish_validated
    from model.fsio import sha256_file

    entry = {"task_id": task_id, "rows": 0, "validated_at": "earlier", "source": str(src), "report": ""}
    publish_validated(src, src.name, sha256_file(src), manifest, validated_dir, entry)


def _hashes(path: Path) -> np.ndarray:
    from include.ops.validation.row_index import frame_pixels, row_hashes

    return row_hashes(frame_pixels(pd.read_csv(path)))


def _relabelled(split_digits: Path, k: int, mapping: dict[int, int]) -> str:
    """Task ``k``'s images (same splits, so no train/test leak) under other labels."""
    frame = pd.read_csv(split_digits.parent / f"task_{k}.csv")
    frame["label"] = frame["label"].map(mapping)
    return frame.to_csv(index=False)


def _regrouped_stream(folder: Path, groups: list[list[int]]) -> Path:
    """Split-Digits' images regrouped into other tasks (another stream, its own folder); the manifest path."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x, y = digits.data.astype(np.int64), digits.target
    train, _ = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=1)
    split = np.full(len(y), "test", dtype=object)
    split[train] = "train"
    folder.mkdir(parents=True)
    tasks = []
    for k, group in enumerate(groups):
        rows = np.flatnonzero(np.isin(y, group))
        frame = pd.DataFrame(x[rows], columns=[f"f{i}" for i in range(64)])
        frame["label"], frame["split"] = y[rows], split[rows]
        frame.to_csv(folder / f"task_{k}.csv", index=False)
        tasks.append({"task_id": f"task_{k}", "classes": group, "file": f"task_{k}.csv"})
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps({"name": "regrouped", "num_classes": 10, "tasks": tasks}))
    return manifest


def test_row_hashes_match_equal_images_only():
    from include.ops.validation.row_index import row_hashes

    x = np.array([[0, 3, 16], [0, 3, 16], [0, 16, 3], [300, 0, 0]], dtype=np.int64)
    h = row_hashes(x)
    assert h.dtype == np.uint64 and len(h) == 4
    assert h[0] == h[1] and len({h[0], h[2], h[3]}) == 3
    assert (row_hashes(x[:3]) == row_hashes(x[:3].astype(np.int32))).all()


def test_relabelled_images_of_another_task_are_rejected_and_quarantined(val_env, split_digits):
    """Defect 3: task_0's images relabelled as task_1 passed every expectation; now refused naming task_0."""
    from include.ops.validation.pipeline import validate_landed_file

    settings = val_env
    manifest = settings.landing_dir / "manifest.json"
    _publish(settings.validated_dir, split_digits.parent / "task_0.csv", "task_0", manifest)
    poisoned = _relabelled(split_digits, 0, {0: 2, 1: 3})
    path = land(settings, "task_1.csv", poisoned)
    before = store_snapshot(settings.validated_dir)

    result = validate_landed_file(path, manifest_path=manifest, settings=settings)

    assert result.status == "rejected", result.reason
    assert result.stage == "stream" and result.failed_checks == ["duplicate_rows"]
    assert "task_0" in result.reason and "CT_VALIDATION_MAX_DUPLICATE_SHARE" in result.reason
    report = json.loads(Path(result.report_path).read_text())
    assert report["check"] == "duplicate_rows"
    observed = report["result"]["results"][0]["result"]["details"]
    rows = len(pd.read_csv(split_digits.parent / "task_0.csv"))
    assert observed["by_task"] == {"task_0": {"file": "task_0.csv", "rows": rows}}
    assert observed["duplicate_rows"] == rows and observed["share"] == 1.0
    assert Path(result.path).read_text() == poisoned  # the landed bytes, kept
    assert store_snapshot(settings.validated_dir) == before and not path.exists()


def test_a_few_repeated_rows_pass_and_are_counted(tmp_path, split_digits):
    from include.ops.validation.row_index import check_duplicates, load
    from include.ops.validation.store import read_index

    store = tmp_path / "validated"
    _publish(store, split_digits.parent / "task_0.csv", "task_0", split_digits)
    batch = _hashes(split_digits.parent / "task_1.csv").copy()
    batch[:3] = _hashes(split_digits.parent / "task_0.csv")[:3]  # 3 of ~360 rows: under 1 %

    index = load(store)
    assert sorted(index.files) == ["task_0.csv"] and sorted(read_index(store)["files"]) == ["task_0.csv"]
    report = check_duplicates(batch, index, "task_1.csv", "task_1", 0.01)
    assert report["duplicate_rows"] == 3 and report["by_task"] == {
        "task_0": {"file": "task_0.csv", "rows": 3}
    }
    assert report["sample_lines"] == [2, 3, 4]
    with pytest.raises(Exception, match="task_0") as err:
        check_duplicates(batch, index, "task_1.csv", "task_1", 0.005)
    assert err.value.check == "duplicate_rows"
    # the file itself and its own task are never "another task"
    assert (
        check_duplicates(_hashes(split_digits.parent / "task_0.csv"), index, "x.csv", "task_0", 0.0)[
            "duplicate_rows"
        ]
        == 0
    )


def test_a_second_stream_in_its_own_folder_has_its_own_index(val_env, split_digits, tmp_path):
    """The same images regrouped into another stream pass in that stream's store; in the first they would not."""
    from include.ops.validation.pipeline import validate_landed_file
    from include.ops.validation.prechecks import PrecheckFailure
    from include.ops.validation.row_index import check_duplicates, load

    first = val_env
    _publish(first.validated_dir, split_digits.parent / "task_0.csv", "task_0", split_digits)
    regrouped = _regrouped_stream(tmp_path / "regrouped", [[0, 5], [1, 6], [2, 7], [3, 8], [4, 9]])
    second = first.replace(validated_dir=tmp_path / "regrouped_validated")
    _publish(second.validated_dir, regrouped.parent / "task_0.csv", "task_0", regrouped)
    path = land(second, "task_1.csv", (regrouped.parent / "task_1.csv").read_text())

    result = validate_landed_file(path, manifest_path=regrouped, settings=second)

    assert result.status == "validated", result.reason
    assert result.summary["rows_of_other_tasks"]["duplicate_rows"] == 0
    assert (second.validated_dir / "row_index.npz").is_file()
    assert sorted(load(second.validated_dir).files) == ["task_0.csv", "task_1.csv"]
    with pytest.raises(PrecheckFailure, match="task_0"):  # its 1s are images of the first stream's task_0
        check_duplicates(
            _hashes(regrouped.parent / "task_1.csv"), load(first.validated_dir), "task_1.csv", "task_1", 0.01
        )


def test_index_is_rebuilt_and_reconciled_after_a_kill(tmp_path, split_digits):
    from include.ops.validation.row_index import ROW_INDEX_NAME, load, record
    from include.ops.validation.store import INDEX_NAME

    store = tmp_path / "validated"
    for k in (0, 1):
        _publish(store, split_digits.parent / f"task_{k}.csv", f"task_{k}", split_digits)
    assert not (store / ROW_INDEX_NAME).exists()
    rebuilt = load(store)  # missing: rebuilt from the store's files
    assert sorted(rebuilt.files) == ["task_0.csv", "task_1.csv"] and rebuilt.changed
    assert (rebuilt.files["task_1.csv"].hashes == _hashes(split_digits.parent / "task_1.csv")).all()
    record(store, "task_1.csv", rebuilt.files["task_1.csv"].hashes)
    assert not load(store).changed

    # killed between publishing task_2 and recording it: the next load indexes it from the store
    _publish(store, split_digits.parent / "task_2.csv", "task_2", split_digits)
    late = load(store)
    assert sorted(late.files) == ["task_0.csv", "task_1.csv", "task_2.csv"] and late.changed
    # a file no longer validated is dropped
    index = json.loads((store / INDEX_NAME).read_text())
    del index["files"]["task_1.csv"]
    (store / INDEX_NAME).write_text(json.dumps(index))
    assert sorted(load(store).files) == ["task_0.csv", "task_2.csv"]
    # a garbled index file is rebuilt, never an error
    (store / ROW_INDEX_NAME).write_bytes(b"not an npz")
    assert sorted(load(store).files) == ["task_0.csv", "task_2.csv"]


def test_commit_time_recheck_refuses_a_batch_whose_twin_was_validated_meanwhile(tmp_path, split_digits):
    """Two batches with the same images both pass their pre-publish checks; the second to commit is refused."""
    from include.ops.settings import get_settings
    from include.ops.validation.outcome import publish_rejection
    from include.ops.validation.pipeline import identify, late_duplicate_check
    from include.ops.validation.prechecks import PrecheckFailure
    from include.ops.validation.store import publish_validated, read_index

    store = tmp_path / "validated"
    settings = get_settings().replace(validated_dir=store)
    twin = tmp_path / "landing" / "task_1.csv"
    twin.parent.mkdir()
    twin.write_text(_relabelled(split_digits, 0, {0: 2, 1: 3}))
    base = identify(twin)
    base.task_id = "task_1"
    recheck = late_duplicate_check(_hashes(twin), base, settings, then=lambda files: None)
    recheck([])  # the store was empty when this batch was checked
    _publish(store, split_digits.parent / "task_0.csv", "task_0", split_digits)  # committed meanwhile

    with pytest.raises(PrecheckFailure) as err:
        publish_validated(twin, twin.name, base.checksum, split_digits, store, {"task_id": "task_1"}, recheck)

    assert err.value.check == "duplicate_rows" and "task_1.csv" not in read_index(store)["files"]
    rejection = publish_rejection(err.value, twin.name, store, None)
    assert rejection.stage == "publish" and rejection.failed == ["duplicate_rows"]
    assert not (store / "task_1.csv").exists()


def test_the_store_indexes_are_in_a_backup(state):
    """The row index and image statistics are backed up with the validated files they describe."""
    from include.ops.backup import create_backup, load_manifest
    from include.ops.validation import image_stats, row_index
    from model.fsio import sha256_file

    settings = state
    src = settings.data_dir / "task_0.csv"
    _publish(settings.validated_dir, src, "task_0", settings.source_manifest)
    pixels = row_index.read_pixels(src)
    npz = row_index.record(settings.validated_dir, "task_0.csv", row_index.row_hashes(pixels))
    stats = image_stats.record(settings.validated_dir, "task_0.csv", image_stats.sufficient_stats(pixels))

    result = create_backup(settings=settings)

    files = {e.path: e.sha256 for e in load_manifest(result.backup_id).files}
    assert files["data/row_index.npz"] == sha256_file(npz)
    assert files["data/image_stats.json"] == sha256_file(stats)
    # task_0 is backed up with them (under data/tasks/ when the state learned raw tasks before validation)
    assert sha256_file(src) in set(files.values())
