"""Human approval of a promotion: which versions wait for a decision, what the decision was, what it does.

``CT_PROMOTION_APPROVAL`` (``Settings.promotion_approval``) and the ``continual_training`` param
``require_approval`` choose the mode of a run: ``off`` (a failed gate fails the run, as in ``dag.test()``, CI
and the demo), ``on`` (a failed gate waits for an operator) or ``always`` (every promotion waits: the gate
leaves a passing version ``challenger``, ``tracking.apply_gate``). The Airflow side (an ``ApprovalOperator``)
is ``include/airflow_glue/approval.py``; this module is Airflow-free.

A decision is ``approved`` (Approve with a non-empty comment: ``champion`` moves to the version, an
``approval`` entry in the alias history names the approver), ``rejected`` (Reject, or Approve without a
comment) or ``timeout`` (nobody answered within ``CT_PROMOTION_APPROVAL_TIMEOUT_H``: the request's default,
Reject, recorded with no user). Every decision becomes model-version tags ``approval``, ``approval.user``,
``approval.comment``, ``approval.time``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from include.ops import tracking
from include.ops.settings import Settings

log = logging.getLogger(__name__)

APPROVE = "Approve"
REJECT = "Reject"
APPROVED, REJECTED, TIMEOUT = "approved", "rejected", "timeout"
APPROVAL_TAG = "approval"  # the value rollback.eligible reads: "approved" may become champion again
RUN_TAG = "approval.dag_run_id"  # the DAG run whose request the decision answered (a retry reuses it)
MAX_COMMENT = 2000
NO_COMMENT = "approval refused: a comment is required to promote a version the gate did not pass"


@dataclass(frozen=True)
class ApprovalDecision:
    """One operator's (or the timeout's) answer to a promotion request."""

    outcome: str  # approved | rejected | timeout
    user: str | None  # None for a timeout
    comment: str
    responded_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (XCom)."""
        return asdict(self)


def run_mode(settings: Settings, require_approval: bool | None) -> str:
    """The approval mode of one run: ``always`` when the param asks for it; False keeps approval for failed
    gates only (when enabled); None follows ``CT_PROMOTION_APPROVAL``."""
    if require_approval is True:
        return "always"
    if require_approval is False:
        return "off" if settings.promotion_approval == "off" else "on"
    return settings.promotion_approval


def pending_versions(decisions: list[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    """The gate decisions that wait for a human: every version not made ``champion`` (failed, or held under
    ``always``); none when approval is off."""
    if mode == "off":
        return []
    return [d for d in decisions if not d["passed"] or d["alias"] != tracking.CHAMPION]


def user_name(user: dict[str, Any] | None) -> str | None:
    """``name (id)`` of an Airflow HITL user, None for none (a timeout)."""
    if not user:
        return None
    name, uid = str(user.get("name") or "").strip(), str(user.get("id") or "").strip()
    if name and uid and name != uid:
        return f"{name} ({uid})"
    return name or uid or None


def decide(
    chosen_options: list[str], params_input: dict[str, Any] | None, user: dict[str, Any] | None, *,
    timed_out: bool = False, responded_at: str | None = None,
) -> ApprovalDecision:  # fmt: skip
    """The decision in a HITL response: no user (or ``timed_out``) is a timeout, whatever the default chose;
    Approve needs a non-empty comment, else it is a rejection naming why."""
    comment = str((params_input or {}).get("comment") or "").strip()[:MAX_COMMENT]
    who = user_name(user)
    if timed_out or who is None:
        return ApprovalDecision(
            TIMEOUT, None, comment or "no decision before the approval timeout", responded_at
        )
    if list(chosen_options) == [APPROVE]:
        if comment:
            return ApprovalDecision(APPROVED, who, comment, responded_at)
        return ApprovalDecision(REJECTED, who, NO_COMMENT, responded_at)
    return ApprovalDecision(REJECTED, who, comment, responded_at)


def request_text(pending: list[dict[str, Any]], settings: Settings, mode: str) -> tuple[str, str]:
    """Subject and Markdown body of the approval request shown in the Airflow UI."""
    versions = ", ".join(f"v{d['version']} ({d['task_id']})" for d in pending)
    subject = f"Promote {versions} of {settings.registered_model} to champion?"
    lines = [
        "The promotion gate did not make these versions `champion`:" if mode != "always"
        else "Every promotion waits for approval (`require_approval` / `CT_PROMOTION_APPROVAL=always`):",
        "",
    ]  # fmt: skip
    for d in pending:
        why = "; ".join(d.get("reasons") or []) or "gate passed"
        lines.append(f"- **v{d['version']}** ({d['task_id']}): {why}")
    lines += [
        "",
        "**Approve** moves `champion` to the version (a comment is required: it is recorded with your name).",
        f"**Reject**, or no answer within {settings.promotion_approval_timeout_h:g} h, keeps the current "
        "champion; the run fails.",
    ]
    return subject, "\n".join(lines)


def decision_tags(decision: ApprovalDecision, dag_run_id: str | None = None) -> dict[str, str]:
    """The model-version tags recording a decision (no ``approval.user`` for a timeout)."""
    tags = {
        APPROVAL_TAG: decision.outcome,
        "approval.comment": decision.comment,
        "approval.time": decision.responded_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if decision.user:
        tags["approval.user"] = decision.user
    if dag_run_id:
        tags[RUN_TAG] = dag_run_id
    return tags


def recorded_decision(
    settings: Settings, pending: list[dict[str, Any]], dag_run_id: str | None
) -> ApprovalDecision | None:
    """The decision DAG run ``dag_run_id`` already recorded on every pending version (a retry of the approval
    task after the answer was applied: never ask twice), else None."""
    if not dag_run_id or not pending or tracking.sqlite_store_missing(settings.mlflow_tracking_uri):
        return None
    mlc = tracking.mlflow_client(settings, read_only=True)
    found = None
    for d in pending:
        tags = dict(mlc.get_model_version(settings.registered_model, str(d["version"])).tags or {})
        if tags.get(RUN_TAG) != dag_run_id or APPROVAL_TAG not in tags:
            return None
        found = ApprovalDecision(
            tags[APPROVAL_TAG],
            tags.get("approval.user"),
            tags.get("approval.comment", ""),
            tags.get("approval.time"),
        )
    return found


def apply_decision(
    settings: Settings, pending: list[dict[str, Any]], decision: ApprovalDecision, *,
    dag_id: str | None = None, dag_run_id: str | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Tag each pending version with the decision; when approved, move ``champion`` to each in order (the
    newest ends champion), verifying its checkpoint and appending an ``approval`` alias-history entry."""
    out = []
    for d in pending:
        tracking.set_version_tags(settings, d["version"], decision_tags(decision, dag_run_id))
        seq = None
        if decision.outcome == APPROVED:
            seq = promote(settings, d, decision, dag_id=dag_id, dag_run_id=dag_run_id)
        out.append(
            {
                "task_id": d["task_id"],
                "version": d["version"],
                "outcome": decision.outcome,
                "history_seq": seq,
            }
        )
        log.info("approval of v%s (%s): %s by %s: %s", d["version"], d["task_id"], decision.outcome,
                 decision.user or "timeout", decision.comment)  # fmt: skip
    return out


def promote(
    settings: Settings, pending: dict[str, Any], decision: ApprovalDecision, *,
    dag_id: str | None = None, dag_run_id: str | None = None,
) -> int:  # fmt: skip
    """Move ``champion`` to an approved version (checkpoint checked against its tag first); returns the
    alias-history entry's seq."""
    from include.ops import alias_history
    from include.ops.rollback import verify_checkpoint

    mlc = tracking.mlflow_client(settings)
    name, version = settings.registered_model, str(pending["version"])
    tags = dict(mlc.get_model_version(name, version).tags or {})
    path, sha = verify_checkpoint(version, tags)
    before = alias_history.current_alias(mlc, name, tracking.CHAMPION)
    mlc.set_registered_model_alias(name, tracking.CHAMPION, version)
    gate_why = "; ".join(pending.get("reasons") or []) or "gate passed"
    entry = alias_history.append_move(
        settings, tracking.CHAMPION, before, version, "approval",
        f"approved by {decision.user}: {decision.comment} (gate: {gate_why})",
        dag_id=dag_id, dag_run_id=dag_run_id, approver=decision.user, checkpoint_sha256=sha,
        metrics={"mean_retention": tags.get("mean_retention"), "new_task_acc": tags.get("new_task_acc")},
    )  # fmt: skip
    alias_history.write_champion_from(settings, entry, path, tags.get("task_id"))
    return entry.seq
