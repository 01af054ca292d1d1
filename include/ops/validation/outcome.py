"""What validating one landed file produces: the ``BatchResult``, its summary, and failure reports.

Every report reads the same way: a pre-check or commit-time leakage failure is written in GX's
validation-result layout, like a failed suite run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.ops.validation.config import SUITE_NAME
from include.ops.validation.prechecks import PrecheckFailure
from include.ops.validation.store import utc_now

if TYPE_CHECKING:
    import pandas as pd

    from include.ops.validation.gx_suite import SuiteOutcome
    from model.data import TaskManifest, TaskSpec

LEAKAGE_TYPE = "expect_table_train_rows_to_be_disjoint_from_test_rows"
# the batch against its stream: rows repeating another task's (row index), images unlike the stream's
STREAM_CHECKS = ("duplicate_rows", "image_distribution")


class ValidationSetupError(RuntimeError):
    """Validation cannot run (no or malformed manifest, unreadable suite); no file is judged."""


@dataclass
class BatchResult:
    """Outcome of one landed file; ``asset_extra()`` is the ``validated_task_batch`` event extra."""

    name: str
    status: str  # validated | rejected | skipped
    checksum: str
    size_bytes: int
    source: str
    task_id: str | None = None
    rows: int | None = None
    stage: str | None = None  # precheck | expectations | publish (rejected only)
    failed_checks: list[str] = field(default_factory=list)
    reason: str = ""
    path: str | None = None  # validated copy, or the quarantined file
    report_path: str | None = None
    data_docs: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def asset_extra(self) -> dict[str, Any]:
        """``{task_id, path, checksum, rows, summary}`` of a validated batch (JSON-serialisable)."""
        if self.status != "validated":
            raise ValueError(f"{self.name} is {self.status}, only validated batches emit an asset event")
        return {
            "task_id": self.task_id,
            "path": self.path,
            "checksum": self.checksum,
            "rows": self.rows,
            "summary": self.summary,
        }

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-serialisable."""
        return asdict(self)

    def replace(self, **changes: Any) -> BatchResult:
        """A copy with ``changes`` applied (the stages derive each outcome from the identified file)."""
        return BatchResult(**{**self.to_dict(), **changes})


@dataclass(frozen=True)
class Rejection:
    """Why a file is rejected: the stage, the failed check types, a one-line reason, the result document."""

    stage: str  # precheck | expectations | publish
    failed: list[str]
    reason: str
    result: dict[str, Any]
    data_docs: str | None = None


def single_failure_result(
    kind: str, kwargs: dict[str, Any], meta: dict[str, Any], observed: Any, details: Any
) -> dict[str, Any]:
    """A GX validation result holding one failed expectation of type ``kind``."""
    return {
        "success": False,
        "results": [
            {
                "success": False,
                "expectation_config": {"type": kind, "kwargs": kwargs, "meta": meta},
                "result": {"observed_value": observed, "details": details},
                "exception_info": {
                    "raised_exception": False,
                    "exception_message": None,
                    "exception_traceback": None,
                },
            }
        ],
        "statistics": {
            "evaluated_expectations": 1,
            "successful_expectations": 0,
            "unsuccessful_expectations": 1,
        },
    }


def precheck_result(failure: PrecheckFailure, name: str) -> dict[str, Any]:
    """A pre-check failure in GX's validation-result layout, so every report reads the same way."""
    return single_failure_result(
        f"precheck.{failure.check}",
        {"file_name": name},
        {"check": failure.check},
        failure.observed or None,
        failure.detail,
    )


def leakage_result(report: dict[str, Any], validated_dir: Path) -> dict[str, Any]:
    """A commit-time leakage finding in GX's validation-result layout (same type as the suite's expectation)."""
    return single_failure_result(
        LEAKAGE_TYPE,
        {"reference_dir": str(validated_dir)},
        {"check": "leakage", "stage": "publish"},
        report.get("leaked_rows"),
        report,
    )


def precheck_rejection(failure: PrecheckFailure, name: str) -> Rejection:
    """The rejection of a file that failed a pre-check (before the suite ran)."""
    return Rejection(
        stage="precheck",
        failed=[f"precheck.{failure.check}"],
        reason=f"pre-check {failure.check} failed: {failure.detail}",
        result=precheck_result(failure, name),
    )


def stream_rejection(failure: PrecheckFailure, name: str, stage: str, data_docs: str | None) -> Rejection:
    """The rejection of a file whose rows repeat another task's or whose images are unlike the stream's."""
    return Rejection(
        stage=stage,
        failed=[failure.check],
        reason=f"{failure.check} failed: {failure.detail}",
        result=single_failure_result(
            failure.check,
            {"file_name": name},
            {"check": failure.check, "stage": stage},
            failure.observed.get("duplicate_rows", failure.observed.get("failed")),
            failure.observed,
        ),
        data_docs=data_docs,
    )


def suite_rejection(outcome: SuiteOutcome) -> Rejection:
    """The rejection of a file the committed suite failed."""
    return Rejection(
        stage="expectations",
        failed=outcome.failed_types,
        reason=outcome.reason(),
        result=outcome.result,
        data_docs=outcome.data_docs,
    )


def publish_rejection(
    failure: PrecheckFailure, name: str, validated_dir: Path, data_docs: str | None
) -> Rejection:
    """The rejection of a file refused at commit time (a late leak, or a store check under the lock)."""
    if failure.check in STREAM_CHECKS:
        return stream_rejection(failure, name, "publish", data_docs)
    if failure.check == LEAKAGE_TYPE:
        kind, result = LEAKAGE_TYPE, leakage_result(failure.observed, validated_dir)
    else:
        kind, result = f"precheck.{failure.check}", precheck_result(failure, name)
    return Rejection(
        stage="publish",
        failed=[kind],
        reason=f"{kind} failed: {failure.detail}",
        result=result,
        data_docs=data_docs,
    )


def rejection_report(base: BatchResult, rejection: Rejection) -> dict[str, Any]:
    """The ``report.json`` written beside a quarantined file."""
    return {
        "name": base.name,
        "source": base.source,
        "sha256": base.checksum,
        "size_bytes": base.size_bytes,
        "task_id": base.task_id,
        "rows": base.rows,
        "status": "rejected",
        "stage": rejection.stage,
        "check": rejection.failed[0] if rejection.failed else rejection.stage,
        "failed_checks": rejection.failed,
        "reason": rejection.reason,
        "suite": SUITE_NAME,
        "data_docs": rejection.data_docs,
        "validated_at": utc_now(),
        "result": rejection.result,
    }


def batch_summary(
    frame: pd.DataFrame,
    spec: TaskSpec,
    manifest: TaskManifest,
    outcome: SuiteOutcome,
    report_path: Path,
    source: str,
) -> dict[str, Any]:
    """The summary of a passing batch: class and split counts, suite statistics, where its report is."""
    counts = frame["label"].value_counts().sort_index()
    split = frame["split"].value_counts()
    stats = outcome.statistics
    return {
        "task_index": manifest.index(spec.task_id),
        "classes": list(spec.classes),
        "class_counts": {str(int(k)): int(v) for k, v in counts.items()},
        "train_rows": int(split.get("train", 0)),
        "test_rows": int(split.get("test", 0)),
        "expectations_evaluated": int(stats.get("evaluated_expectations", 0)),
        "expectations_successful": int(stats.get("successful_expectations", 0)),
        **{k: outcome.observed.get(k) for k in ("duplicate_rows", "leaked_rows", "max_class_share")},
        "suite": SUITE_NAME,
        "report": str(report_path),
        "data_docs": outcome.data_docs,
        "source": source,
        "validated_at": utc_now(),
    }
