"""Continual-learning metrics against a matrix computed by hand."""

from __future__ import annotations

import pytest

from model.metrics import (
    AccuracyMatrix,
    average_accuracy,
    backward_transfer,
    chance_corrected_retention,
    chance_levels,
    forgetting,
    mean_over_earlier,
    retention,
    summarize,
)

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
