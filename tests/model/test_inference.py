"""Inference: a verified checkpoint loads into an equal model; probabilities are masked to allowed classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model.checkpoint import CheckpointError
from model.inference import load_model, pixels_to_input, predict_proba
from model.learner import ContinualLearner
from tests.model.model_support import tiny


@pytest.fixture(scope="module")
def learned(manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> ContinualLearner:
    learner = ContinualLearner(
        manifest, tmp_path_factory.mktemp("inference"), train_cfg=tiny(strategy="naive")
    )
    learner.learn_task("task_0")
    learner.learn_task("task_1")
    return learner


def test_load_model_matches_the_learner(learned: ContinualLearner):
    model, cfg, meta = load_model(learned.latest_checkpoint)
    assert cfg == learned.model_cfg and not model.training
    for key, value in learned.model.state_dict().items():
        assert torch.equal(value.cpu(), model.state_dict()[key]), key
    assert meta["learned_tasks"] == ["task_0", "task_1"] and meta["task_id"] == "task_1"
    assert meta["classes_seen"] == [0, 1, 2, 3] and meta["scenario"] == "class_incremental"
    assert meta["sha256"] == learned.checkpoints[-1]["sha256"]


def test_predict_proba_is_masked_to_allowed_classes(learned: ContinualLearner):
    model, _, _ = load_model(learned.latest_checkpoint)
    x = learned.task_data("task_1").x_test[:7]
    probs = predict_proba(model, x, allowed_classes=[0, 1, 2, 3])
    assert probs.shape == (7, 10)
    assert torch.allclose(probs.sum(dim=1), torch.ones(7))
    assert torch.all(probs[:, 4:] == 0), "classes never seen get probability 0"
    single = predict_proba(model, x[0].numpy(), allowed_classes=[2, 3])
    assert single.shape == (1, 10) and float(single[0, [2, 3]].sum()) == pytest.approx(1.0)


def test_pixels_to_input_scales_and_checks_range():
    x = pixels_to_input(np.array([[0, 8, 16] + [0] * 61]))
    assert x.dtype == torch.float32 and x.shape == (1, 64) and float(x.max()) == 1.0
    with pytest.raises(ValueError, match="pixel values"):
        pixels_to_input(np.full((1, 64), 17))
    with pytest.raises(ValueError, match="batch, features"):
        pixels_to_input(np.zeros(64))


def test_corrupted_checkpoint_is_not_served(learned: ContinualLearner, tmp_path: Path):
    copy = tmp_path / "task_001_task_1.pt"
    data = bytearray(learned.latest_checkpoint.read_bytes())
    data[-10] ^= 0xFF
    copy.write_bytes(bytes(data))
    (tmp_path / "task_001_task_1.pt.sha256").write_bytes(
        Path(str(learned.latest_checkpoint) + ".sha256").read_bytes()
    )
    with pytest.raises(CheckpointError, match="task_001_task_1.pt"):
        load_model(copy)
