"""Continual-learning metrics over the accuracy matrix R (R[i][j] = accuracy on task j after learning task i).

Pure functions of a lower-triangular matrix given as lists (upper triangle None/NaN), plus an
avalanche-style ``AccuracyMatrix`` (update/result/reset). ``T`` below is the last row index.

Conventions (documented because the literature varies):
- Retention of task j: R[T][j] / R[j][j], clipped to [0, 1]; 0.0 when R[j][j] is 0 (nothing was learned).
- Chance-corrected retention: (R[T][j] - c_j) / (R[j][j] - c_j), clipped to [0, 1]; 0.0 when R[j][j] <= c_j.
  c_j is the accuracy of a uniform random guess at the FINAL evaluation of task j: 1 / (classes seen after
  task T) class-incrementally (the guess ranges over every seen class), 1 / (classes of task j)
  task-incrementally. So forgetting down to guessing counts as 0 retention and keeping R[j][j] as 1.
- Means over earlier tasks (j < T): with a single task learned there is nothing to forget, so mean
  retention is 1.0 and backward transfer / forgetting are 0.0.

Measuring accuracy (``task_accuracies``, the one evaluation of the project: learner, training, backup and
restore drills) is scenario-aware: the prediction is the argmax over the classes seen so far class-incrementally
(no task id at test time), over the task's own classes task-incrementally (the task id is given).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from model.training import masked_logits

Matrix = Sequence[Sequence[float | None]]
SCENARIOS = ("class_incremental", "task_incremental")
EVAL_BATCH = 1024  # rows per forward when measuring accuracy


def _value(v: float | None) -> float:
    return float("nan") if v is None else float(v)


def _check_square(matrix: Matrix) -> int:
    """Return T (last row index); ValueError unless the matrix is square and non-empty."""
    n = len(matrix)
    if n == 0 or any(len(row) != n for row in matrix):
        raise ValueError(
            f"accuracy matrix must be square and non-empty, got rows of {[len(r) for r in matrix]}"
        )
    return n - 1


def _clip01(v: float) -> float:
    return min(1.0, max(0.0, v))


def final_accuracies(matrix: Matrix) -> list[float]:
    """Last row: accuracy on every task after the last one was learned."""
    t = _check_square(matrix)
    return [_value(v) for v in matrix[t]]


def average_accuracy(matrix: Matrix) -> float:
    """Mean of R[T][j] over all learned tasks j <= T."""
    return sum(final_accuracies(matrix)) / len(matrix)


def retention(matrix: Matrix) -> list[float]:
    """R[T][j] / R[j][j] per task j <= T, clipped to [0, 1] (the last entry is 1.0 by construction)."""
    t = _check_square(matrix)
    out = []
    for j in range(t + 1):
        diag, final = _value(matrix[j][j]), _value(matrix[t][j])
        out.append(_clip01(final / diag) if diag > 0 else 0.0)
    return out


def chance_corrected_retention(matrix: Matrix, chance: Sequence[float]) -> list[float]:
    """(R[T][j] - c_j) / (R[j][j] - c_j) per task j, clipped to [0, 1]; 0.0 if R[j][j] <= c_j."""
    t = _check_square(matrix)
    if len(chance) != t + 1:
        raise ValueError(f"need one chance level per task ({t + 1}), got {len(chance)}")
    out = []
    for j in range(t + 1):
        diag, final, c = _value(matrix[j][j]), _value(matrix[t][j]), float(chance[j])
        out.append(_clip01((final - c) / (diag - c)) if diag > c else 0.0)
    return out


def chance_levels(task_classes: Sequence[Sequence[int]], scenario: str) -> list[float]:
    """Chance accuracy c_j per learned task at the final evaluation (see the module docstring)."""
    if scenario == "class_incremental":
        seen = len({c for classes in task_classes for c in classes})
        return [1.0 / seen for _ in task_classes]
    if scenario == "task_incremental":
        return [1.0 / len(classes) for classes in task_classes]
    raise ValueError(f"unknown scenario {scenario!r}")


def mean_over_earlier(values: Sequence[float]) -> float:
    """Mean of ``values[:-1]`` (tasks before the last); 1.0 when only one task was learned."""
    earlier = list(values[:-1])
    return sum(earlier) / len(earlier) if earlier else 1.0


def backward_transfer(matrix: Matrix) -> float:
    """BWT = mean over j < T of R[T][j] - R[j][j]; 0.0 with one task."""
    t = _check_square(matrix)
    if t == 0:
        return 0.0
    return sum(_value(matrix[t][j]) - _value(matrix[j][j]) for j in range(t)) / t


def forgetting(matrix: Matrix) -> float:
    """Mean over j < T of max_{j <= i < T} R[i][j] - R[T][j] (Chaudhry et al. 2018); 0.0 with one task."""
    t = _check_square(matrix)
    if t == 0:
        return 0.0
    drops = [max(_value(matrix[i][j]) for i in range(j, t)) - _value(matrix[t][j]) for j in range(t)]
    return sum(drops) / t


def summarize(matrix: Matrix, task_classes: Sequence[Sequence[int]], scenario: str) -> dict:
    """Every metric above for one matrix, as a dict of floats and per-task lists."""
    ret = retention(matrix)
    ret_cc = chance_corrected_retention(matrix, chance_levels(task_classes, scenario))
    return {
        "final_accuracies": final_accuracies(matrix),
        "avg_acc": average_accuracy(matrix),
        "retention": ret,
        "retention_chance_corrected": ret_cc,
        "mean_retention": mean_over_earlier(ret),
        "mean_retention_chance_corrected": mean_over_earlier(ret_cc),
        "bwt": backward_transfer(matrix),
        "forgetting": forgetting(matrix),
    }


class AccuracyMatrix:
    """Grows R one row per learned task (update/result/reset, avalanche-style)."""

    def __init__(self, rows: Sequence[Sequence[float | None]] | None = None) -> None:
        self.rows: list[list[float]] = []
        for i, row in enumerate(rows or []):
            self.update([_value(v) for v in row[: i + 1]])  # rows may come padded with None (``result()``)

    def update(self, accuracies: Sequence[float]) -> None:
        """Append the row measured after learning the next task: accuracies on tasks 0..i, in learning order."""
        i = len(self.rows)
        if len(accuracies) != i + 1:
            raise ValueError(f"row {i} needs {i + 1} accuracies, got {len(accuracies)}")
        self.rows.append([float(a) for a in accuracies])

    def result(self) -> list[list[float | None]]:
        """Square matrix with None above the diagonal (tasks not yet learned)."""
        n = len(self.rows)
        return [row + [None] * (n - len(row)) for row in self.rows]

    def reset(self) -> None:
        """Forget every row."""
        self.rows = []


@dataclass(frozen=True)
class EvalSet:
    """The test split of one task: its id, its classes (from the manifest) and the tensors."""

    task_id: str
    classes: Sequence[int]
    x: torch.Tensor  # (N, num_features)
    y: torch.Tensor  # (N,)


def allowed_classes(task_classes: Sequence[int], classes_seen: Collection[int], scenario: str) -> list[int]:
    """Classes the prediction for one task ranges over: every class seen (class-IL) or the task's (task-IL)."""
    if scenario == "class_incremental":
        return sorted(classes_seen)
    if scenario == "task_incremental":
        return sorted(task_classes)
    raise ValueError(f"unknown scenario {scenario!r} (one of {SCENARIOS})")


@torch.no_grad()
def accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, allowed: Sequence[int], device: torch.device | str
) -> float:
    """Accuracy of the argmax over ``allowed`` classes on (x, y); NaN for an empty set. Restores train mode."""
    if len(y) == 0:
        return float("nan")
    assert len(allowed) > 0, "accuracy needs at least one allowed class"
    was_training = model.training
    model.eval()
    mask = torch.zeros(model.cfg.num_classes, dtype=torch.bool, device=device)  # type: ignore[union-attr]
    mask[list(allowed)] = True
    correct = 0
    for start in range(0, len(y), EVAL_BATCH):
        xb = x[start : start + EVAL_BATCH].to(device)
        yb = y[start : start + EVAL_BATCH].to(device)
        logits = masked_logits(model(xb).float(), mask)  # (B, num_classes)
        correct += int((logits.argmax(dim=1) == yb).sum())
    model.train(was_training)
    return correct / len(y)


def task_accuracies(
    model: nn.Module,
    tasks: Sequence[EvalSet],
    scenario: str,
    device: torch.device | str = "cpu",
    classes_seen: Collection[int] | None = None,
) -> dict[str, float]:
    """Test accuracy per task, in the order given, under ``scenario`` (see the module docstring).

    ``classes_seen`` (what a class-incremental argmax ranges over) defaults to the union of the tasks' classes;
    pass the checkpoint's own when ``tasks`` also holds tasks it has not learned yet.
    """
    if classes_seen is None:
        classes_seen = {c for t in tasks for c in t.classes}
    return {
        t.task_id: accuracy(model, t.x, t.y, allowed_classes(t.classes, classes_seen, scenario), device)
        for t in tasks
    }
