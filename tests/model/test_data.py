"""Split-Digits: the CSV format and manifest, round trip, and malformed files named in errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from model.data import load_manifest, load_task_csv, write_split_digits


def test_stream_format(manifest: Path):
    raw = json.loads(manifest.read_text())
    assert raw["num_classes"] == 10 and len(raw["tasks"]) == 5
    assert [t["classes"] for t in raw["tasks"]] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    total = 0
    for task in raw["tasks"]:
        with (manifest.parent / task["file"]).open(newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0] == [f"f{i}" for i in range(64)] + ["label", "split"]
        body = rows[1:]
        total += len(body)
        assert {r[-1] for r in body} == {"train", "test"}
        assert {int(r[-2]) for r in body} == set(task["classes"])
        pixels = [int(v) for r in body for v in r[:64]]
        assert min(pixels) >= 0 and max(pixels) <= 16
    assert total == 1797, "every image of scikit-learn's digits appears exactly once"


def test_write_is_idempotent_and_seeded(manifest: Path, tmp_path: Path):
    before = {p.name: p.read_bytes() for p in manifest.parent.iterdir()}
    write_split_digits(manifest.parent)
    assert {p.name: p.read_bytes() for p in manifest.parent.iterdir()} == before
    other = write_split_digits(tmp_path / "seed1", seed=1)
    assert (other.parent / "task_0.csv").read_bytes() != before["task_0.csv"], "the split depends on the seed"


def test_load_task_csv_round_trip(manifest: Path):
    data = load_task_csv(manifest.parent / "task_1.csv")
    assert data.x_train.shape[1] == 64 and data.x_test.shape[1] == 64
    assert float(data.x_train.min()) >= 0.0 and float(data.x_train.max()) <= 1.0
    assert set(data.y_train.tolist()) == {2, 3} and set(data.y_test.tolist()) == {2, 3}
    assert abs(len(data.y_test) / (len(data.y_train) + len(data.y_test)) - 0.2) < 0.02


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "empty"),
        ("a,b\n1,2\n", "header"),
        ("f0,label,split\n3,1,train\nx,1,test\n", "non-integer"),
        ("f0,label,split\n17,1,train\n3,1,test\n", "pixel values"),
        ("f0,label,split\n3,1,train\n3,1,validation\n", "split"),
        ("f0,label,split\n3,1,train\n4,1,train\n", "both train and test"),
    ],
)
def test_malformed_task_file_is_named(tmp_path: Path, content: str, reason: str):
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    with pytest.raises(ValueError, match=reason) as err:
        load_task_csv(bad)
    assert str(bad) in str(err.value)


def test_another_stream_drops_in(tmp_path: Path, manifest: Path):
    """A 3-task stream with other classes and names loads and trains without code changes."""
    from model.learner import ContinualLearner
    from tests.model.model_support import tiny

    raw = json.loads(manifest.read_text())
    stream = {"name": "three-way", "num_classes": 10, "tasks": []}
    for name, src in (("a", 4), ("b", 0), ("c", 2)):
        (tmp_path / f"{name}.csv").write_bytes((manifest.parent / raw["tasks"][src]["file"]).read_bytes())
        stream["tasks"].append(
            {"task_id": name, "classes": raw["tasks"][src]["classes"], "file": f"{name}.csv"}
        )
    (tmp_path / "manifest.json").write_text(json.dumps(stream))
    assert [t.task_id for t in load_manifest(tmp_path / "manifest.json").tasks] == ["a", "b", "c"]
    learner = ContinualLearner(tmp_path / "manifest.json", tmp_path / "state", train_cfg=tiny())
    assert learner.next_task() == "a"
    result = learner.learn_task("a")
    assert result.task_ids == ["a"] and 0.0 <= result.accuracies["a"] <= 1.0


def test_bad_manifest_is_refused(tmp_path: Path):
    path = tmp_path / "manifest.json"
    path.write_text(
        json.dumps(
            {"name": "x", "num_classes": 4, "tasks": [{"task_id": "t", "classes": [9], "file": "t.csv"}]}
        )
    )
    with pytest.raises(ValueError, match="manifest"):
        load_manifest(path)
