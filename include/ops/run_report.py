"""What a ``continual_training`` run learned, in the words operators read where Airflow shows them.

One vocabulary for the ``train`` task's XCom (the learned summaries), the checkpoint Asset event's extra (the
Assets view) and the final line of the ``gate`` task's log: task id, new-task accuracy, min and mean
retention over the old tasks, MLflow run id, and once registered the model version and the gate's alias.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from include.ops import tracking
from include.ops.settings import Settings
from include.ops.tracking import CHAMPION, finite, min_retention

# the checkpoint Asset event's extra: where the checkpoint is, and what the run learned into it
CHECKPOINT_EXTRA = (
    "task_id",
    "checkpoint_path",
    "checkpoint_sha256",
    "mlflow_run_id",
    "new_task_acc",
    "min_retention",
    "mean_retention",
)


def learned_fields(result: Mapping[str, Any]) -> dict[str, float | None]:
    """New-task accuracy and min retention over the old tasks (None for the first task), JSON-safe."""
    return {
        "new_task_acc": finite((result.get("accuracies") or {}).get(result["task_id"])),
        "min_retention": min_retention(dict(result)),
    }


def checkpoint_extra(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The checkpoint Asset event's extra for one learned summary, with its one-line ``summary``."""
    extra = {key: summary.get(key) for key in CHECKPOINT_EXTRA}
    extra["summary"] = summary_line(extra)
    return extra


def _num(value: Any) -> str:
    number = finite(value)
    return "n/a" if number is None else f"{number:.3f}"


def summary_line(report: Mapping[str, Any], approved: bool = False) -> str:
    """``learned task_2: new-task acc 0.970, min retention 0.950, mean 0.980, gate: champion v3``.

    ``report`` holds :func:`learned_fields`, ``mean_retention`` and ``task_id``; with ``version`` and ``alias`` (a gate decision)
    the gate part follows, with the reasons of a failed gate, or ``(approved)`` when an operator approved."""
    if report.get("min_retention") is None:  # the first task: its mean "retention" of 1.0 says nothing
        kept = "no old task to retain"
    else:
        kept = f"min retention {_num(report.get('min_retention'))}, mean {_num(report.get('mean_retention'))}"
    line = f"learned {report['task_id']}: new-task acc {_num(report.get('new_task_acc'))}, {kept}"
    if report.get("version") is None:
        return line
    if approved:
        return f"{line}, gate: champion v{report['version']} (approved)"
    reasons = "; ".join(report.get("reasons") or [])
    if report.get("passed") and report.get("alias") != CHAMPION:  # CT_PROMOTION_APPROVAL=always
        reasons = "passed, held for approval"
    return f"{line}, gate: {report['alias']} v{report['version']}" + (f" ({reasons})" if reasons else "")


def dag_run_lines(settings: Settings, dag_run_id: str) -> list[str]:
    """:func:`summary_line` of every task a DAG run learned, read back from MLflow with its gate decision."""
    return [
        summary_line({**tracking.run_summary(run), **tracking.gate_decision(settings, run.info.run_id)})
        for run in tracking.learned_runs_of(settings, dag_run_id)
    ]
