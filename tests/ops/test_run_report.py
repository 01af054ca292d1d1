"""What a run learned, as the gate's log line, the XCom and the checkpoint Asset event say it (no scheduler)."""

from __future__ import annotations

import json
from pathlib import Path

from include.ops.run_report import checkpoint_extra, learned_fields, summary_line
from tests.ops.alias_history_support import registry
from tests.ops.result_support import learn_result


def _result(matrix: list[list[float | None]], mean: float) -> dict:
    return learn_result(
        matrix, mean, mlflow_run_id="abc123", checkpoint_path="/ckpt/task_002.pt", checkpoint_sha256="f" * 64
    )


THIRD = _result([[1.0, None, None], [0.98, 0.99, None], [0.95, 0.99, 0.97]], mean=0.975)


def test_learned_fields_new_task_accuracy_and_min_retention_over_old_tasks():
    assert learned_fields(THIRD) == {"new_task_acc": 0.97, "min_retention": 0.95}
    assert learned_fields(_result([[0.9]], mean=1.0)) == {"new_task_acc": 0.9, "min_retention": None}


def test_summary_line_of_a_champion_a_failed_gate_an_approval_and_the_first_task():
    fields = {"task_id": "task_2", "mean_retention": 0.975, **learned_fields(THIRD)}
    champion = {**fields, "version": "3", "alias": "champion", "passed": True, "reasons": []}
    assert summary_line(champion) == (
        "learned task_2: new-task acc 0.970, min retention 0.950, mean 0.975, gate: champion v3"
    )
    failed = {**champion, "alias": "challenger", "passed": False, "reasons": ["min retention 0.7000 < 0.8"]}
    assert summary_line(failed).endswith("gate: challenger v3 (min retention 0.7000 < 0.8)")
    assert summary_line(failed, approved=True).endswith("gate: champion v3 (approved)")
    held = {
        **champion,
        "alias": "challenger",
    }  # passed, waiting for an operator (CT_PROMOTION_APPROVAL=always)
    assert summary_line(held).endswith("gate: challenger v3 (passed, held for approval)")
    first = {"task_id": "task_0", "new_task_acc": 0.991, "min_retention": None, "mean_retention": 1.0}
    assert summary_line(first) == "learned task_0: new-task acc 0.991, no old task to retain"


def test_checkpoint_extra_is_json_with_the_checkpoint_the_metrics_and_the_line():
    summary = {**THIRD, **learned_fields(THIRD)}
    extra = checkpoint_extra(summary)
    assert json.loads(json.dumps(extra)) == extra
    assert extra["checkpoint_sha256"] == "f" * 64 and extra["mlflow_run_id"] == "abc123"
    assert (extra["new_task_acc"], extra["min_retention"], extra["mean_retention"]) == (0.97, 0.95, 0.975)
    assert extra["summary"] == "learned task_2: new-task acc 0.970, min retention 0.950, mean 0.975"
    assert "acc_matrix" not in extra, "the event stays small"


def test_apply_gate_returns_the_decision_with_what_was_learned(ct_env: Path):
    from include.ops import tracking

    settings, _, results = registry(ct_env, n=1)
    result = {**THIRD, "task_id": "task_2", "version": results[0]["version"]}
    decision = tracking.apply_gate(settings, results[0]["version"], result, 0.8, 0.9).to_dict()
    assert decision["passed"] and decision["alias"] == "champion"
    assert (decision["new_task_acc"], decision["min_retention"], decision["mean_retention"]) == (
        0.97,
        0.95,
        0.975,
    )
    assert decision["mlflow_run_id"] == "abc123"
    assert summary_line(decision).endswith(f"gate: champion v{results[0]['version']}")
