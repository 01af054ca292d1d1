"""A LearnResult-shaped dict from an accuracy matrix, for the gate and run-report tests."""

from __future__ import annotations

from typing import Any


def learn_result(matrix: list[list[float | None]], mean: float, **extra: Any) -> dict[str, Any]:
    """The fields the gate and the run report read: task ids, matrix, last row as accuracies, mean retention."""
    ids = [f"task_{i}" for i in range(len(matrix))]
    return {
        "task_id": ids[-1],
        "task_ids": ids,
        "acc_matrix": matrix,
        "accuracies": dict(zip(ids, matrix[-1], strict=True)),
        "mean_retention": mean,
        **extra,
    }
