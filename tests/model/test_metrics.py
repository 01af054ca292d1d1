"""Continual-learning metrics against a matrix computed by hand; the one scenario-aware accuracy evaluation."""

from __future__ import annotations

import pytest
import torch

from model.config import ModelConfig
from model.metrics import (
    AccuracyMatrix,
    EvalSet,
    accuracy,
    allowed_classes,
    average_accuracy,
    backward_transfer,
    chance_corrected_retention,
    chance_levels,
    forgetting,
    mean_over_earlier,
    retention,
    summarize,
    task_accuracies,
)
from model.network import TinyTransformer

R = [
    [0.90, None, None],
    [0.60, 0.80, None],
    [0.45, 0.70, 1.00],
]


def test_hand_computed_matrix():
    assert average_accuracy(R) == pytest.approx((0.45 + 0.70 + 1.00) / 3)
    assert retention(R) == pytest.approx([0.5, 0.875, 1.0])
    assert mean_over_earlier(retention(R)) == pytest.approx((0.5 + 0.875) / 2)
    assert backward_transfer(R) == pytest.approx(((0.45 - 0.90) + (0.70 - 0.80)) / 2)
    assert forgetting(R) == pytest.approx(((0.90 - 0.45) + (0.80 - 0.70)) / 2)


def test_chance_corrected_retention_class_and_task_incremental():
    classes = [[0, 1], [2, 3], [4, 5]]
    assert chance_levels(classes, "class_incremental") == pytest.approx([1 / 6] * 3)
    assert chance_levels(classes, "task_incremental") == pytest.approx([0.5] * 3)
    c = 1 / 6
    expected = [(0.45 - c) / (0.90 - c), (0.70 - c) / (0.80 - c), 1.0]
    assert chance_corrected_retention(R, chance_levels(classes, "class_incremental")) == pytest.approx(
        expected
    )
    # task-incremental: 0.45 is below chance 0.5 -> clipped to 0; (0.7-0.5)/(0.8-0.5)
    assert chance_corrected_retention(R, chance_levels(classes, "task_incremental")) == pytest.approx(
        [0.0, 2 / 3, 1.0]
    )


def test_clipping_and_single_task():
    assert retention([[0.5, None], [0.9, 0.8]])[0] == 1.0, "positive backward transfer is clipped to 1"
    single = summarize([[0.7]], [[0, 1]], "class_incremental")
    assert single["mean_retention"] == 1.0 and single["bwt"] == 0.0 and single["forgetting"] == 0.0


def test_accuracy_matrix_grows_one_row_per_task():
    m = AccuracyMatrix()
    m.update([0.9])
    m.update([0.6, 0.8])
    assert m.result() == [[0.9, None], [0.6, 0.8]]
    with pytest.raises(ValueError):
        retention([[0.9, None]])


def _always_two() -> TinyTransformer:
    """A head that always says 2, with 1 as its second choice."""
    model = TinyTransformer(ModelConfig())
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.bias[2] = 5.0
        model.head.bias[1] = 1.0
    return model


def test_evaluation_masks_to_allowed_classes():
    """Wrong class-incrementally, right when only the task's classes count."""
    model = _always_two()
    x, y = torch.rand(10, 64), torch.ones(10, dtype=torch.long)
    assert accuracy(model, x, y, list(range(10)), "cpu") == 0.0
    assert accuracy(model, x, y, [0, 1], "cpu") == 1.0


def test_task_accuracies_follow_the_scenario():
    model = _always_two()
    tasks = [
        EvalSet("task_0", (0, 1), torch.rand(8, 64), torch.ones(8, dtype=torch.long)),
        EvalSet("task_1", (2, 3), torch.rand(4, 64), torch.full((4,), 3, dtype=torch.long)),
    ]
    assert task_accuracies(model, tasks, "class_incremental") == {"task_0": 0.0, "task_1": 0.0}
    assert task_accuracies(model, tasks, "task_incremental") == {"task_0": 1.0, "task_1": 0.0}
    # class-incrementally the argmax ranges over the classes the checkpoint has seen, not the tasks passed
    assert task_accuracies(model, tasks[:1], "class_incremental", classes_seen=[0, 1]) == {"task_0": 1.0}
    assert allowed_classes((3, 2), {0, 1, 2, 3}, "task_incremental") == [2, 3]
    with pytest.raises(ValueError, match="unknown scenario"):
        allowed_classes((0,), {0}, "domain_incremental")
