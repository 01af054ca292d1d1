"""The promotion approval task of continual_training (include/airflow_glue/approval.py): where it sits in the
DAG, when it skips (approval off: nothing waits on a human), when it asks, and what an answer does."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.ops.test_approval import ALICE, failed_gate, registry


def parse_dag(monkeypatch: pytest.MonkeyPatch, mode: str):
    from airflow.dag_processing.dagbag import DagBag

    from tests.paths import ROOT

    monkeypatch.setenv("CT_PROMOTION_APPROVAL", mode)
    monkeypatch.setenv("CT_PROMOTION_APPROVAL_TIMEOUT_H", "6")
    bag = DagBag(dag_folder=str(ROOT / "dags" / "continual_training.py"))
    assert not bag.import_errors
    return bag.dags["continual_training"]


@pytest.mark.parametrize("mode", ["off", "on"])
def test_the_approval_task_sits_between_register_and_gate(monkeypatch: pytest.MonkeyPatch, mode: str):
    from datetime import timedelta

    from airflow.sdk import TriggerRule

    from include.airflow_glue.approval import PromotionApprovalOperator

    dag = parse_dag(monkeypatch, mode)
    approve = dag.get_task("approve")
    assert isinstance(approve, PromotionApprovalOperator)
    assert approve.upstream_task_ids == {"register"} and approve.downstream_task_ids == {"gate"}
    assert approve.defaults == ["Reject"] and approve.response_timeout == timedelta(hours=6)
    assert set(approve.params) == {"comment"}  # the form asks for the comment only
    assert dag.get_task("gate").trigger_rule == TriggerRule.NONE_FAILED  # runs after a skipped approval
    assert dag.params["require_approval"] is None


def context(decisions: list[dict], conf: dict | None = None):
    ti = SimpleNamespace(id="0199", xcom_pull=lambda task_ids: decisions)
    run = SimpleNamespace(conf=conf or {}, dag_id="continual_training", run_id="manual__1")
    return {"ti": ti, "task_instance": ti, "dag_run": run, "params": {}}


FAILED = {"version": "2", "task_id": "task_1", "passed": False, "alias": "challenger", "reasons": ["low"]}
PASSED = {"version": "2", "task_id": "task_1", "passed": True, "alias": "champion", "reasons": []}


def test_with_approval_off_a_failed_gate_never_waits(monkeypatch: pytest.MonkeyPatch):
    from airflow.sdk.exceptions import AirflowSkipException

    from include.airflow_glue.approval import PromotionApprovalOperator

    monkeypatch.setenv("CT_PROMOTION_APPROVAL", "off")
    op = PromotionApprovalOperator(task_id="approve")
    with pytest.raises(AirflowSkipException, match="approval mode off"):
        op.execute(context([FAILED]))
    monkeypatch.setenv("CT_PROMOTION_APPROVAL", "on")
    with pytest.raises(AirflowSkipException, match="approval mode on"):
        op.execute(context([PASSED]))  # every gate passed: nothing to ask


@pytest.mark.parametrize(
    ("mode", "decisions", "conf"),
    [("on", [FAILED], None), ("off", [{**PASSED, "alias": "challenger"}], {"require_approval": True})],
    ids=["failed-gate", "require_approval"],
)
def test_a_waiting_version_writes_a_request_and_parks_the_task(ct_env, monkeypatch, mode, decisions, conf):
    from airflow.providers.standard.operators import hitl
    from airflow.sdk.exceptions import TaskAwaitingInput

    from include.airflow_glue.approval import PromotionApprovalOperator

    monkeypatch.setenv("CT_PROMOTION_APPROVAL", mode)
    asked = {}
    monkeypatch.setattr(hitl, "upsert_hitl_detail", lambda **kw: asked.update(kw))
    op = PromotionApprovalOperator(task_id="approve")
    with pytest.raises(TaskAwaitingInput):
        op.execute(context(decisions, conf))
    assert asked["options"] == ["Approve", "Reject"] and asked["defaults"] == ["Reject"]
    assert "v2 (task_1)" in asked["subject"] and "comment is required" in asked["body"]
    assert set(asked["params"]) == {"comment"}


def event(option: str, comment: str | None, user: dict | None, timedout: bool = False) -> dict:
    return {"chosen_options": [option], "params_input": {"comment": comment}, "timedout": timedout,
            "responded_at": datetime(2026, 12, 3, 10, tzinfo=UTC), "responded_by_user": user}  # fmt: skip


def test_an_answer_is_recorded_and_decides_the_task(ct_env: Path, monkeypatch: pytest.MonkeyPatch):
    from airflow.sdk.exceptions import AirflowFailException

    from include.airflow_glue.approval import PromotionApprovalOperator

    monkeypatch.setenv("CT_PROMOTION_APPROVAL", "on")
    settings, mlc, results = registry(ct_env, 3)
    op = PromotionApprovalOperator(task_id="approve")
    pending = failed_gate(settings, results[1]).to_dict()
    with pytest.raises(AirflowFailException, match=r"v2: no decision in time, rejected \(timeout\)"):
        op.execute_complete(context([pending]), event("Reject", None, None, timedout=True))
    with pytest.raises(AirflowFailException, match="rejected by Alice"):
        op.execute_complete(context([pending]), event("Approve", "", ALICE))  # no comment: not approved
    assert str(mlc.get_model_version_by_alias(settings.registered_model, "champion").version) == "1"
    pending = failed_gate(settings, results[2]).to_dict()
    out = op.execute_complete(context([pending]), event("Approve", "known label noise", ALICE))
    assert out["decision"]["outcome"] == "approved" and out["versions"][0]["version"] == "3"
    assert str(mlc.get_model_version_by_alias(settings.registered_model, "champion").version) == "3"
    tags = mlc.get_model_version(settings.registered_model, "3").tags
    assert (tags["approval.user"], tags["approval.time"]) == ("Alice (alice)", "2026-12-03T10:00:00+00:00")


def test_a_retry_after_the_answer_never_asks_again(ct_env: Path, monkeypatch: pytest.MonkeyPatch):
    """Seen with a real scheduler: an answer given while the parking workload was still exiting made Airflow
    start a second try, which asked again; the decision recorded for the run is reused instead."""
    from airflow.providers.standard.operators import hitl

    from include.airflow_glue.approval import PromotionApprovalOperator

    monkeypatch.setenv("CT_PROMOTION_APPROVAL", "on")
    settings, mlc, results = registry(ct_env)
    pending = failed_gate(settings, results[1]).to_dict()
    op = PromotionApprovalOperator(task_id="approve")
    op.execute_complete(context([pending]), event("Approve", "known label noise", ALICE))

    def ask_again(**kw):
        raise AssertionError("asked twice")

    monkeypatch.setattr(hitl, "upsert_hitl_detail", ask_again)
    out = op.execute(context([pending]))  # the retry of the same run
    assert out["decision"]["outcome"] == "approved" and out["decision"]["user"] == "Alice (alice)"
    other_run = context([pending])
    other_run["dag_run"].run_id = "manual__2"
    with pytest.raises(AssertionError, match="asked twice"):
        op.execute(other_run)  # another run's request is its own
