"""The gate judges every old task: one task below the threshold fails promotion even when the mean passes."""

from __future__ import annotations

from include.ops.tracking import gate, min_retention, old_task_retention
from tests.ops.result_support import learn_result as _result


def test_one_old_task_below_the_threshold_fails_although_the_mean_passes():
    # retention: task_0 1.0, task_1 0.7 -> mean 0.85 >= 0.8, min 0.7 < 0.8
    result = _result([[1.0, None, None], [1.0, 1.0, None], [1.0, 0.7, 0.95]], mean=0.85)
    assert old_task_retention(result) == {"task_0": 1.0, "task_1": 0.7}
    assert min_retention(result) == 0.7
    passed, reasons = gate(result, retention_threshold=0.8, accuracy_floor=0.5)
    assert not passed
    assert reasons == ["min retention 0.7000 < threshold 0.8 (task_1 0.7000)"]


def test_every_old_task_at_the_threshold_passes_and_the_first_task_has_no_minimum():
    result = _result([[1.0, None], [0.9, 0.95]], mean=0.9)
    assert gate(result, retention_threshold=0.8, accuracy_floor=0.5) == (True, [])
    first = _result([[0.97]], mean=1.0)
    assert min_retention(first) is None and gate(first, 0.8, 0.5) == (True, [])


def test_status_shows_the_minimum_beside_the_mean():
    from include.ops.cli import Palette, format_retention

    state = {
        "retention_threshold": 0.8,
        "retention": [{"task_id": "task_0", "retention": 0.7, "passed": False}],
        "mean_retention": 0.85,
        "min_retention": 0.7,
    }
    lines = format_retention(state, Palette(False))
    assert lines[-2].split()[:3] == ["mean", "0.850", "ok"] and lines[-1].split()[:3] == [
        "min",
        "0.700",
        "BELOW",
    ]
    assert format_retention({**state, "min_retention": None}, Palette(False))[-1].split()[:2] == ["min", "-"]
