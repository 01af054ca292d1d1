"""The promotion approval task of ``continual_training``: the standard provider's ``ApprovalOperator``
(Airflow 3.1+ human-in-the-loop; on 3.3 the task waits in ``awaiting_input``) around ``include.ops.approval``.

The task is always in the DAG; it skips itself when no version waits (approval off, or every gate passed), so
``dag.test()`` never waits on a human. When one waits, the Airflow UI ("Required actions") asks for Approve or
Reject and a comment; ``defaults=["Reject"]`` with ``response_timeout`` rejects when nobody answers (the
scheduler's sweep applies it; ``dag.test()`` never does). The decision is recorded by
``include.ops.approval.apply_decision``; a rejection or a timeout fails the task, so the run fails like a
failed gate.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator
from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from include.ops import approval
from include.ops.settings import Settings, get_settings

COMMENT_PARAM = "comment"


def comment_param() -> Param:
    """The form field: a free-text comment, required (non-empty) to approve."""
    return Param(
        None,
        type=["null", "string"],
        maxLength=approval.MAX_COMMENT,
        description="Why promote (required to approve; recorded with your name on the model version and in "
        f"the alias history). Rule: non-empty text, at most {approval.MAX_COMMENT} characters.",
    )


def require_approval(context: Any) -> bool | None:
    """The run's ``require_approval`` (trigger conf first, then the DAG param); None: from settings."""
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    if "require_approval" in conf:
        return conf["require_approval"]
    return (context.get("params") or {}).get("require_approval")


def run_settings(settings: Settings, require: bool | None) -> Settings:
    """``settings`` with this run's approval mode (the gate holds every promotion under ``always``)."""
    return settings.replace(promotion_approval=approval.run_mode(settings, require))


class PromotionApprovalOperator(ApprovalOperator):
    """Ask an operator to approve the versions the gate did not make ``champion`` (none: skipped)."""

    def __init__(self, *, decisions_task_id: str = "register", settings: Settings | None = None, **kwargs):
        settings = settings or get_settings()
        kwargs.pop("params", None)  # the DAG's params: the form asks for the comment only
        super().__init__(
            subject="Promotion approval",  # replaced at run time by the versions that wait
            defaults=[ApprovalOperator.REJECT],
            response_timeout=timedelta(hours=settings.promotion_approval_timeout_h),
            params={COMMENT_PARAM: comment_param()},
            **kwargs,
        )
        self.decisions_task_id = decisions_task_id

    def pending(self, context: Any) -> tuple[list[dict[str, Any]], str]:
        """The gate decisions that wait for a human in this run, and the run's approval mode."""
        decisions = context["ti"].xcom_pull(task_ids=self.decisions_task_id) or []
        mode = approval.run_mode(get_settings(), require_approval(context))
        return approval.pending_versions(decisions, mode), mode

    def execute(self, context: Any) -> Any:
        """Skip when nothing waits; else write the request and wait for the answer."""
        pending, mode = self.pending(context)
        if not pending:
            raise AirflowSkipException(f"no promotion waits for approval (approval mode {mode})")
        run_id = getattr(context.get("dag_run"), "run_id", None)
        known = approval.recorded_decision(get_settings(), pending, run_id)
        if known is not None:  # a retry after the answer was applied: report it, never ask twice
            self.log.info("decision already recorded for run %s: %s", run_id, known.outcome)
            return self.outcome(known, [{**d, "outcome": known.outcome} for d in pending])
        self.subject, self.body = approval.request_text(pending, get_settings(), mode)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Record the decision; promote when approved, else fail naming who rejected (or the timeout)."""
        response = HITLOperator.execute_complete(self, context, event)  # validates options and form input
        responded_at = response.get("responded_at")
        decision = approval.decide(
            response["chosen_options"], response.get("params_input"), response.get("responded_by_user"),
            timed_out=bool(event.get("timedout")),
            responded_at=responded_at.isoformat() if hasattr(responded_at, "isoformat") else responded_at,
        )  # fmt: skip
        pending, _ = self.pending(context)
        dag_run = context.get("dag_run")
        results = approval.apply_decision(
            get_settings(), pending, decision,
            dag_id=getattr(dag_run, "dag_id", None), dag_run_id=getattr(dag_run, "run_id", None),
        )  # fmt: skip
        return self.outcome(decision, results)

    def outcome(self, decision: approval.ApprovalDecision, results: list[dict[str, Any]]) -> dict[str, Any]:
        """The task's result for a decision; AirflowFailException for a rejection or a timeout."""
        versions = ", ".join(f"v{r['version']}" for r in results)
        if decision.outcome == approval.TIMEOUT:
            raise AirflowFailException(
                f"{versions}: no decision in time, rejected (timeout): champion unchanged"
            )
        if decision.outcome == approval.REJECTED:
            raise AirflowFailException(f"{versions} rejected by {decision.user}: {decision.comment}")
        self.log.info("%s approved by %s: %s", versions, decision.user, decision.comment)
        return {"decision": decision.to_dict(), "versions": results}
