"""The model's side of the data contract: task files confined to the manifest's folder, and a stream's
capacity (head classes, parameter budget) fixed by configuration and the learner state, never by a manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.capacity import StreamCapacity, read_capacity, record_capacity
from model.config import ModelConfig
from model.learner import ContinualLearner
from model.network import TinyTransformer
from tests.model.model_support import tiny


def _stream(folder: Path, manifest: Path, tasks: list[dict], num_classes: int = 10) -> Path:
    """A manifest in ``folder`` naming ``tasks`` (files as given), Split-Digits task_0 copied beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "task_0.csv").write_bytes((manifest.parent / "task_0.csv").read_bytes())
    path = folder / "manifest.json"
    path.write_text(json.dumps({"name": "s", "num_classes": num_classes, "tasks": tasks}))
    return path


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_learner_reads_task_files_only_inside_the_manifest_folder(manifest: Path, tmp_path: Path, how: str):
    outside = tmp_path / "unvalidated" / "task_1.csv"
    outside.parent.mkdir()
    outside.write_bytes(
        (manifest.parent / "task_1.csv").read_bytes()
    )  # a valid CSV that never passed the gate
    store = tmp_path / "validated"
    file = {"absolute": str(outside), "dotdot": "../unvalidated/task_1.csv", "symlink": "link.csv"}[how]
    tasks = [{"task_id": "task_0", "classes": [0, 1], "file": "task_0.csv"}]
    path = _stream(store, manifest, [*tasks, {"task_id": "task_1", "classes": [2, 3], "file": file}])
    if how == "symlink":
        (store / "link.csv").symlink_to(outside)
    learner = ContinualLearner(path, tmp_path / "state", train_cfg=tiny(strategy="naive"))
    assert len(learner.task_data("task_0").y_train) > 0, "a file inside the folder is read"
    with pytest.raises(ValueError, match=r"task file .*task_1.*outside .*refused"):
        learner.task_data("task_1")


def test_a_data_root_of_the_effective_manifest_admits_absolute_files(manifest: Path, tmp_path: Path):
    raw = tmp_path / "raw"
    _stream(raw, manifest, [])
    state = tmp_path / "state"
    state.mkdir()
    effective = state / "effective_manifest.json"
    task = {"task_id": "task_0", "classes": [0, 1], "file": str(raw / "task_0.csv")}
    body = {"name": "s", "num_classes": 10, "tasks": [task]}
    effective.write_text(json.dumps({**body, "data_roots": [str(raw)]}))
    assert len(ContinualLearner(effective, state / "a", train_cfg=tiny()).task_data("task_0").y_test) > 0
    effective.write_text(json.dumps(body))
    with pytest.raises(ValueError, match="refused"):
        ContinualLearner(effective, state / "b", train_cfg=tiny()).task_data("task_0")


def test_a_model_over_the_parameter_budget_is_not_built():
    with pytest.raises(ValueError, match=r"has 170916 parameters, over the parameter budget of 100000"):
        TinyTransformer(ModelConfig(num_classes=100))
    assert TinyTransformer(ModelConfig(num_classes=100, param_budget=None)).num_parameters() > 100_000
    assert TinyTransformer(ModelConfig()).num_parameters() < ModelConfig().param_budget == 100_000


def test_capacity_comes_from_the_state_not_from_the_manifest(manifest: Path, tmp_path: Path):
    wide = tmp_path / "wide"
    path = _stream(wide, manifest, [{"task_id": "task_0", "classes": [0, 1], "file": "task_0.csv"}], 100)
    with pytest.raises(ValueError, match="100 classes but the model's head has 10"):
        ContinualLearner(path, tmp_path / "fresh", train_cfg=tiny())  # no record: the default capacity
    given = ContinualLearner(manifest, tmp_path / "given", capacity=StreamCapacity(12, 100_000))
    assert given.model_cfg.num_classes == 12 and given.model_cfg.param_budget == 100_000

    state = tmp_path / "state"
    assert read_capacity(state) is None
    assert record_capacity(state, StreamCapacity(20, 90_000)) == StreamCapacity(20, 90_000)
    assert record_capacity(state, StreamCapacity(10, 100_000)) == StreamCapacity(20, 90_000), "kept"
    learner = ContinualLearner(
        manifest, state, train_cfg=tiny(strategy="naive"), capacity=StreamCapacity(10, 1)
    )
    assert (learner.model_cfg.num_classes, learner.model_cfg.param_budget) == (20, 90_000), "the record wins"
    learner.learn_task("task_0")
    saved = json.loads((state / "learner_state.json").read_text())
    assert saved["capacity"] == {"num_classes": 20, "param_budget": 90_000}
    saved.pop("capacity")  # a learner state from before the record: the checkpoint says
    (state / "learner_state.json").write_text(json.dumps(saved))
    assert read_capacity(state) == StreamCapacity(20, 90_000)


def test_a_checkpoint_without_a_budget_keeps_its_model(manifest: Path, tmp_path: Path):
    """A state trained before the budget existed (no param_budget in its model_config) still loads."""
    import torch

    from model.checkpoint import save_checkpoint
    from model.learner import list_checkpoints

    learner = ContinualLearner(manifest, tmp_path, train_cfg=tiny(strategy="naive"))
    learner.learn_task("task_0")
    (_, path), *_ = list_checkpoints(tmp_path / "checkpoints")
    payload = torch.load(path, weights_only=True)
    del payload["model_config"]["param_budget"]
    save_checkpoint(path, payload)
    (tmp_path / "learner_state.json").unlink()
    assert read_capacity(tmp_path) == StreamCapacity(10, None)
    assert (
        ContinualLearner(manifest, tmp_path, train_cfg=tiny(strategy="naive")).model_cfg.param_budget is None
    )
